// dscache clear: dscache evict on every mount of DSCACHE_MOUNTS.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli_common.h"
#include "commands.h"

namespace dscache::cli {

int cmd_clear(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::puts("usage: dscache clear [--json] [--quiet]\n\n"
              "Drops the cached bytes of every file of every mount in DSCACHE_MOUNTS (the namespace\n"
              "stays). The same as `dscache evict` on each mount's prefix.");
    return 0;
  }
  Config& config = global_config();
  if (!load_config(config)) return 1;
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
