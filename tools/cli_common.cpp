#include "cli_common.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <chrono>
#include <cstring>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cache/mirror.h"
#include "commands.h"
#include "index/index_key.h"

namespace dscache::cli {

Config& global_config() {
  static Config config;
  return config;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

uint64_t cached_bytes(const IndexReader& index, const MountConfig& mount, const std::string& rel, uint64_t size,
                      bool* complete) {
  *complete = false;
  SlotSnapshot s;
  if (!index.is_open() || index.find(index_key(mount.id, rel.data(), rel.size()), s, nullptr) != LookupResult::found ||
      s.kind() != SlotKind::file) {
    return 0;
  }
  if (s.state() == FileState::complete) {
    *complete = true;
    return size;
  }
  if (s.state() != FileState::partial || !s.blocks()) return 0;
  const BlockRecord* r = index.block_record(s.aux);
  if (r == nullptr) return 0;
  uint64_t blocks = 0;
  for (uint64_t w = 0; w < BlockRecord::words(r->block_count); ++w) blocks += std::popcount(r->bitmap()[w].load());
  return std::min(size, blocks * r->block_size);
}

int request(const Config& config, ipc::DaemonClient& client, ipc::MessageType type, const MountConfig& mount,
            const std::string& rel, uint32_t flags, std::string& reason, uint64_t* value) {
  char text[ipc::kMaxReplyText];
  // A connection that breaks (a daemon killed while it still accepted, or
  // restarting) is made again a few times with a growing pause, as the shim
  // does: a restart takes well under a second.
  constexpr int kAttempts = 5;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (attempt > 1) std::this_thread::sleep_for(std::chrono::milliseconds(50 << (attempt - 2)));  // 50, 100, 200
    if (!client.connected() && !connect_daemon(config, client)) {
      reason = "no daemon";
      return EIO;
    }
    int rc = client.call(type, mount.id, rel.c_str(), 0, 0, flags, value, text, sizeof text);
    if (rc >= 0) {
      reason = text;  // the error, or a reply's text
      return rc;
    }
    reason = text[0] != '\0' ? text : std::strerror(-rc);
    if (rc == -ETIMEDOUT) return EIO;  // stopped or hung: asking again would wait again
    // The connection broke (a daemon restart?): once more on a new one.
  }
  return EIO;
}

// Resolves PATH, lists its directory (or its parent's) through the daemon.
bool resolve_listed(const Config& config, const std::string& path, ipc::DaemonClient& client, ListedPath& t) {
  MountedPath mp;
  if (!resolve_mounted(config, path, mp)) return false;
  t.mount = mp.mount;
  t.rel = mp.relative;
  t.mirror = CacheLayout(config.cache_dir).mount_dir(*mp.mount) + (t.rel.empty() ? "" : "/" + t.rel);
  std::string reason;
  const std::string parent(t.rel.empty() ? "" : std::string(parent_of(t.rel)));
  if (int rc = request(config, client, ipc::MessageType::ensure_listed, *t.mount, parent, ipc::kFlagBackground, reason);
      rc != 0) {
    fail("%s: %s", path.c_str(), reason.c_str());
    return false;
  }
  struct stat st {};
  if (::lstat(t.mirror.c_str(), &st) != 0) {
    fail("%s: no such file or directory", path.c_str());
    return false;
  }
  t.directory = S_ISDIR(st.st_mode);
  if (t.directory && !t.rel.empty()) {
    if (int rc = request(config, client, ipc::MessageType::ensure_listed, *t.mount, t.rel, ipc::kFlagBackground, reason);
        rc != 0) {
      fail("%s: %s", path.c_str(), reason.c_str());
      return false;
    }
  }
  return true;
}

int usage_error(const char* usage, const char* arg) {
  std::fprintf(stderr, "dscache: unexpected argument '%s'\n%s", arg, usage);
  return 2;
}

bool load_config(Config& config) {
  char error[1024];
  if (!parse_config(config, [](const char* name) -> const char* { return std::getenv(name); }, error, sizeof error)) {
    fail("%s", error);
    return false;
  }
  return true;
}

bool connect_daemon(const Config& config, ipc::DaemonClient& client) {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    fail("cannot find the dscache binary (/proc/self/exe)");
    return false;
  }
  self[n] = '\0';
  char error[1024];
  if (client.connect(config, self, 20000, error, sizeof error) != 0) {
    fail("%s", error);
    return false;
  }
  return true;
}

bool resolve_mounted(const Config& config, const std::string& path, MountedPath& out) {
  std::string absolute = path;
  if (absolute.empty() || absolute[0] != '/') {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof cwd) == nullptr) return fail("cannot read the working directory") == 0;
    absolute = std::string(cwd) + "/" + absolute;
  }
  // Normalise: collapse "//", "." and ".." lexically.
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= absolute.size()) {
    size_t end = absolute.find('/', start);
    if (end == std::string::npos) end = absolute.size();
    std::string segment = absolute.substr(start, end - start);
    if (segment == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!segment.empty() && segment != ".") {
      parts.push_back(segment);
    }
    start = end + 1;
  }
  std::string normal;
  for (const auto& p : parts) normal += "/" + p;
  if (normal.empty()) normal = "/";
  const char* relative = nullptr;
  out.mount = find_mount(config, normal.c_str(), &relative);
  if (out.mount == nullptr) {
    fail("%s is not under any mount in DSCACHE_MOUNTS", normal.c_str());
    return false;
  }
  out.relative = relative;
  return true;
}

}  // namespace dscache::cli
