// dscache du: per directory under a path, the bytes the cache holds against
// the bytes of its files, from the mirror and the shared index. Directories are
// listed through the daemon as the walk reaches them (metadata only).
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

}  // namespace

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
    ListedPath t;
    if (!resolve_listed(config, p, client, t)) {
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
