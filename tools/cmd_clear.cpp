// dscache clear: dscache evict on every mount of DSCACHE_MOUNTS; --remove
// deletes the whole cache directory.
#include <cstdio>
#include <cerrno>
#include <cstring>

#include <unistd.h>
#include <string>
#include <vector>

#include "cache/mirror.h"
#include "cli_common.h"
#include "commands.h"
#include "daemon/daemon_server.h"
#include "ipc/client.h"

namespace dscache::cli {

int cmd_clear(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::puts("usage: dscache clear [--json] [--quiet]\n"
              "       dscache clear --remove\n\n"
              "Drops the cached bytes of every file of every mount in DSCACHE_MOUNTS (the namespace\n"
              "stays). The same as `dscache evict` on each mount's prefix.\n"
              "  --remove   stop the daemon and delete the whole cache directory (DSCACHE_CACHE_DIR);\n"
              "             `rm -rf` cannot, as the mirror in it is read-only for its owner too");
    return 0;
  }
  Config& config = global_config();
  if (!load_config(config)) return 1;
  if (argc > 1 && std::strcmp(argv[1], "--remove") == 0) {
    char error[1024];
    if (int rc = ipc::check_cache_dir(config, false, error, sizeof error); rc != 0) {
      return rc == -ENOENT ? 0 : fail("%s", error);
    }
    if (stop_daemon(config, 60000) != 0) return fail("the daemon of %s did not stop", config.cache_dir);
    remove_tree(config.cache_dir);
    if (::access(config.cache_dir, F_OK) == 0) return fail("%s: could not remove all of it", config.cache_dir);
    return 0;
  }
  if (config.mount_count == 0) return fail("no mounts in DSCACHE_MOUNTS: nothing to clear");
  std::vector<std::string> prefixes;
  for (int i = 0; i < config.mount_count; ++i) prefixes.emplace_back(config.mounts[i].prefix);
  std::vector<std::string> args{std::string("evict")};
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  args.insert(args.end(), prefixes.begin(), prefixes.end());
  std::vector<char*> raw;
  for (std::string& a : args) raw.push_back(a.data());
  raw.push_back(nullptr);
  return cmd_evict(static_cast<int>(args.size()), raw.data());
}

}  // namespace dscache::cli
