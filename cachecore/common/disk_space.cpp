#include "common/disk_space.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

namespace dscache {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7') {
      out += static_cast<char>(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string existing_ancestor(std::string path) {
  struct stat st {};
  while (!path.empty() && ::stat(path.c_str(), &st) != 0) {
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
  return path.empty() ? "." : path;
}

}  // namespace

std::string human_bytes(uint64_t bytes) {
  const char* units = "BKMGTPE";
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f%c", v, units[u]);
  }
  return buf;
}

std::string describe_file_system(const std::string& path) {
  const std::string at = existing_ancestor(path);
  struct stat st {};
  if (::stat(at.c_str(), &st) != 0) return path;
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  const std::string dev = std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
  // The longest mount point of this device that holds `at` (the last such
  // line: a later mount of the same device covers an earlier one).
  std::string fallback;
  size_t best = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mount_point;
    if (!(fields >> id >> parent >> device >> root >> mount_point) || device != dev) continue;
    std::string word, type, source;
    while (fields >> word && word != "-") {
    }
    fields >> type >> source;
    mount_point = unescape(mount_point);
    source = unescape(source);
    const std::string what = " (" + type + (source.empty() || source == type ? "" : " " + source) + ")";
    const bool holds = mount_point == "/" || at == mount_point ||
                       (at.compare(0, mount_point.size(), mount_point) == 0 && at.size() > mount_point.size() &&
                        at[mount_point.size()] == '/');
    if (holds && mount_point.size() >= best) {
      best = mount_point.size();
      found = mount_point + what;
    } else if (!holds) {
      fallback = path + what;  // seen through a bind mount elsewhere: at least the type
    }
  }
  if (found.empty()) found = fallback;
  return found.empty() ? path : found;
}

std::string no_inodes_message(const std::string& path) {
  struct statvfs fs {};
  std::string counts;
  if (::statvfs(existing_ancestor(path).c_str(), &fs) == 0 && fs.f_files > 0) {
    counts = ": " + std::to_string(fs.f_favail) + " of " + std::to_string(fs.f_files) + " inodes free";
  }
  return "no free inodes on " + describe_file_system(path) + counts;
}

std::string no_space_message(const std::string& path, int err) {
  struct statvfs fs {};
  const bool known = ::statvfs(existing_ancestor(path).c_str(), &fs) == 0;
  if (err == EDQUOT) return "disk quota exceeded on " + describe_file_system(path);
  // Out of inodes: free blocks may remain, but no file can be made.
  if (known && fs.f_files > 0 && fs.f_favail == 0) return no_inodes_message(path);
  std::string counts;
  if (known && fs.f_blocks > 0) {
    counts = ": " + human_bytes(static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize) + " of " +
             human_bytes(static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize) + " free";
  }
  return "no space left on " + describe_file_system(path) + counts;
}

}  // namespace dscache
