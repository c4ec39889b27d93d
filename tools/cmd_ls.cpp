// dscache ls and dscache du: what the cache holds under a path, from the
// mirror and the shared index. No data is fetched; the directories shown are
// listed through the daemon first (metadata only), so sizes are the store's.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cache/mirror.h"
#include "cli_common.h"
#include "commands.h"

namespace dscache::cli {
namespace {

struct Target {
  const MountConfig* mount = nullptr;
  std::string rel;
  std::string mirror;
  bool directory = false;
};

// Resolves PATH, lists its directory (or its parent's) through the daemon.
bool prepare(const Config& config, const std::string& path, ipc::DaemonClient& client, Target& t) {
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

struct Usage {
  uint64_t files = 0, complete = 0, bytes = 0, cached = 0;
  void add(const Usage& o) {
    files += o.files;
    complete += o.complete;
    bytes += o.bytes;
    cached += o.cached;
  }
};

double percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? 100.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

void print_usage(const Usage& u, const std::string& shown) {
  std::printf("%10s %10s %6.1f%% %9" PRIu64 "/%-9" PRIu64 " %s\n", human_bytes(static_cast<double>(u.cached)).c_str(),
              human_bytes(static_cast<double>(u.bytes)).c_str(), percent(u.cached, u.bytes), u.complete, u.files,
              shown.c_str());
}

// Sums a mirror directory, listing each through the daemon first (metadata
// only); prints each directory's line (post-order) unless summary_only.
Usage walk(const Config& config, ipc::DaemonClient& client, const IndexReader& index, const MountConfig& mount,
           const std::string& mirror, const std::string& rel, const std::string& shown, bool summary_only) {
  Usage u;
  std::string reason;
  if (request(config, client, ipc::MessageType::ensure_listed, mount, rel, ipc::kFlagBackground, reason) != 0) {
    std::fprintf(stderr, "dscache du: %s: %s\n", shown.c_str(), reason.c_str());
  }
  DIR* d = ::opendir(mirror.c_str());
  if (d == nullptr) return u;
  std::vector<std::string> subdirs;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    struct stat st {};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    const std::string child = rel.empty() ? std::string(e->d_name) : rel + "/" + e->d_name;
    if (S_ISDIR(st.st_mode)) {
      subdirs.emplace_back(e->d_name);
    } else if (S_ISREG(st.st_mode)) {
      bool complete = false;
      ++u.files;
      u.bytes += static_cast<uint64_t>(st.st_size);
      u.cached += cached_bytes(index, mount, child, static_cast<uint64_t>(st.st_size), &complete);
      u.complete += complete ? 1 : 0;
    }
  }
  ::closedir(d);
  std::sort(subdirs.begin(), subdirs.end());
  for (const std::string& s : subdirs) {
    u.add(walk(config, client, index, mount, mirror + "/" + s, rel.empty() ? s : rel + "/" + s, shown + "/" + s,
               summary_only));
  }
  if (!summary_only) {
    print_usage(u, shown);
  }
  return u;
}

int usage_error(const char* usage, const char* arg) {
  std::fprintf(stderr, "dscache: unexpected argument '%s'\n%s", arg, usage);
  return 2;
}

}  // namespace

int cmd_ls(int argc, char** argv) {
  constexpr const char* kUsage =
      "usage: dscache ls PATH...\n\n"
      "Lists a directory under a mount with what the cache holds of each file: the cached\n"
      "share, the size, the name (directories end in '/'; `dscache du` sums them).\n";
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) return std::fputs(kUsage, stdout), 0;
    if (argv[i][0] == '-') return usage_error(kUsage, argv[i]);
    paths.emplace_back(argv[i]);
  }
  if (paths.empty()) return std::fputs(kUsage, stderr), 2;
  Config& config = global_config();
  if (!load_config(config)) return 1;
  ipc::DaemonClient client;
  IndexReader index;
  int status = 0;
  for (const std::string& p : paths) {
    Target t;
    if (!prepare(config, p, client, t)) {
      status = 1;
      continue;
    }
    if (!index.is_open()) index.open(CacheLayout(config.cache_dir).index_path().c_str());
    std::vector<std::pair<std::string, struct stat>> entries;
    if (t.directory) {
      if (paths.size() > 1) std::printf("%s:\n", p.c_str());
      DIR* d = ::opendir(t.mirror.c_str());
      while (d != nullptr) {
        struct dirent* e = ::readdir(d);
        if (e == nullptr) break;
        if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        struct stat st {};
        if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) entries.emplace_back(e->d_name, st);
      }
      if (d != nullptr) ::closedir(d);
      std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    } else {
      struct stat st {};
      ::lstat(t.mirror.c_str(), &st);
      entries.emplace_back(std::string(name_of(t.rel)), st);
    }
    for (const auto& [name, st] : entries) {
      if (S_ISDIR(st.st_mode)) {
        std::printf("%7s %10s  %s/\n", "-", "", name.c_str());
        continue;
      }
      const std::string rel = t.directory ? (t.rel.empty() ? name : t.rel + "/" + name) : t.rel;
      bool complete = false;
      const uint64_t size = static_cast<uint64_t>(st.st_size);
      const uint64_t cached = cached_bytes(index, *t.mount, rel, size, &complete);
      std::printf("%6.1f%% %10s  %s\n", complete ? 100.0 : std::min(99.9, percent(cached, size)),
                  human_bytes(static_cast<double>(size)).c_str(), name.c_str());
    }
  }
  return status;
}

int cmd_du(int argc, char** argv) {
  constexpr const char* kUsage =
      "usage: dscache du [-s] PATH...\n\n"
      "For each directory under PATH (listed from the store as needed), the bytes the cache holds,\n"
      "the bytes of its files, the cached share, and complete/total files. -s: PATH's totals only.\n";
  bool summary_only = false;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) return std::fputs(kUsage, stdout), 0;
    if (std::strcmp(argv[i], "-s") == 0) {
      summary_only = true;
    } else if (argv[i][0] == '-') {
      return usage_error(kUsage, argv[i]);
    } else {
      paths.emplace_back(argv[i]);
    }
  }
  if (paths.empty()) return std::fputs(kUsage, stderr), 2;
  Config& config = global_config();
  if (!load_config(config)) return 1;
  ipc::DaemonClient client;
  IndexReader index;
  int status = 0;
  std::printf("%10s %10s %7s %19s %s\n", "cached", "size", "share", "complete/files", "path");
  for (const std::string& p : paths) {
    Target t;
    if (!prepare(config, p, client, t)) {
      status = 1;
      continue;
    }
    if (!index.is_open()) index.open(CacheLayout(config.cache_dir).index_path().c_str());
    std::string shown = std::string(t.mount->prefix) + (t.rel.empty() ? "" : "/" + t.rel);
    if (!t.directory) {
      struct stat st {};
      ::lstat(t.mirror.c_str(), &st);
      bool complete = false;
      Usage u;
      u.files = 1;
      u.bytes = static_cast<uint64_t>(st.st_size);
      u.cached = cached_bytes(index, *t.mount, t.rel, u.bytes, &complete);
      u.complete = complete ? 1 : 0;
      print_usage(u, shown);
      continue;
    }
    Usage u = walk(config, client, index, *t.mount, t.mirror, t.rel, shown, summary_only);
    if (summary_only) {
      print_usage(u, shown);
    }
  }
  return status;
}

}  // namespace dscache::cli
