// dscache fsck: the daemon checks every cached byte against the checksum it
// recorded when the bytes arrived (whole files and each block of large ones).
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli_common.h"
#include "commands.h"

namespace dscache::cli {

int cmd_fsck(int argc, char** argv) {
  bool repair = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::puts("usage: dscache fsck [--repair]\n\n"
                "Checks every cached file, and every present block of large files, against the\n"
                "checksum recorded when its bytes arrived. --repair makes what is bad absent, so\n"
                "that it is fetched again on next use. Each bad file is named in daemon.log.\n"
                "Exit status: 0 when all is good (or was repaired), 1 otherwise.");
      return 0;
    }
    if (std::strcmp(argv[i], "--repair") == 0) {
      repair = true;
    } else {
      std::fprintf(stderr, "dscache fsck: unexpected argument '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  Config& config = global_config();
  if (!load_config(config)) return 1;
  ipc::DaemonClient client;
  if (!connect_daemon(config, client)) return 1;
  if (config.mount_count == 0) return fail("no mounts in DSCACHE_MOUNTS: the daemon checks the mounts it serves");
  std::string reason;
  uint64_t bad = 0;
  int rc = request(config, client, ipc::MessageType::verify, config.mounts[0], "", repair ? ipc::kFlagRepair : 0,
                   reason, &bad);
  if (rc != 0) return fail("fsck: %s", reason.c_str());
  std::printf("fsck: %s", reason.empty() ? "done\n" : reason.c_str());
  return bad == 0 || repair ? 0 : 1;
}

}  // namespace dscache::cli
