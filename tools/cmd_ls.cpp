// dscache ls: a directory's entries with the cached share of each file, from
// the mirror and the shared index. No data is fetched; the directory is
// listed through the daemon first (metadata only), so sizes are the store's.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cache/mirror.h"
#include "cli_common.h"
#include "commands.h"

namespace dscache::cli {

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
    ListedPath t;
    if (!resolve_listed(config, p, client, t)) {
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
      std::printf("%6.1f%% %10s  %s\n", complete ? 100.0 : std::min(99.9, 100.0 * static_cast<double>(cached) / static_cast<double>(std::max<uint64_t>(size, 1))),
                  human_bytes(static_cast<double>(size)).c_str(), name.c_str());
    }
  }
  return status;
}

}  // namespace dscache::cli
