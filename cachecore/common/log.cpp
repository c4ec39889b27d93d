#include "common/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <string>

namespace dscache {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::warn)};
std::atomic<int> g_fd{STDERR_FILENO};

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::error: return "error";
    case LogLevel::warn: return "warn";
    case LogLevel::info: return "info";
    case LogLevel::debug: return "debug";
  }
  return "?";
}

}  // namespace

Status log_configure(const Env& env) {
  if (auto file = env.get("DSCACHE_LOG_FILE")) {
    // Never through a link, never into a FIFO (it would block) or another
    // user's file: a log in a shared /tmp is a common setting.
    int fd = ::open(file->c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (fd < 0) {
      const int err = errno;
      struct stat link {};
      const bool exists = ::lstat(file->c_str(), &link) == 0;
      return Status::error(err, "DSCACHE_LOG_FILE=" + *file + ": cannot open: " +
                                    (exists && S_ISLNK(link.st_mode)    ? std::string("it is a symbolic link")
                                     : exists && !S_ISREG(link.st_mode) ? std::string("not a regular file")
                                                                        : errno_name(err)));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
      ::close(fd);
      return Status::error(EPERM, "DSCACHE_LOG_FILE=" + *file + ": not a regular file of this user (uid " +
                                      std::to_string(::geteuid()) + "): not writing to it");
    }
    ::fcntl(fd, F_SETFL, O_APPEND);  // blocking writes, as to stderr
    int old = g_fd.exchange(fd);
    if (old != STDERR_FILENO) ::close(old);
  }
  if (auto level = env.get("DSCACHE_LOG")) {
    for (int l = 0; l <= static_cast<int>(LogLevel::debug); ++l) {
      if (*level == level_name(static_cast<LogLevel>(l))) {
        g_level.store(l);
        return {};
      }
    }
    return Status::error(EINVAL, "DSCACHE_LOG='" + *level + "': expected error, warn, info or debug");
  }
  return {};
}

bool log_enabled(LogLevel level) noexcept {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

std::string log_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out.append(hex, 4);
    } else if (c == '\\') {
      out.append("\\\\", 2);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void log_line(LogLevel level, std::string_view message) noexcept {
  char head[64];
  int n = std::snprintf(head, sizeof head, "dscache[%d] %s: ", static_cast<int>(::getpid()), level_name(level));
  std::string line;
  try {
    const std::string escaped = log_escape(message);
    line.reserve(static_cast<size_t>(n) + escaped.size() + 1);
    line.append(head, static_cast<size_t>(n)).append(escaped).push_back('\n');
  } catch (...) {
    return;
  }
  // One write() per line so that lines from many processes do not interleave.
  [[maybe_unused]] ssize_t written = ::write(g_fd.load(std::memory_order_relaxed), line.data(), line.size());
}

void logf(LogLevel level, const char* format, ...) noexcept {
  char buf[2048];
  va_list args;
  va_start(args, format);
  int n = std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  if (n < 0) return;
  log_line(level, std::string_view(buf, std::min(static_cast<size_t>(n), sizeof buf - 1)));
}

}  // namespace dscache
