// dscache daemon: runs the node daemon in the foreground (systemd, a
// Kubernetes DaemonSet), or stops the running one.
#include <cstdio>
#include <cstring>

#include "cli_common.h"
#include "commands.h"
#include "common/env.h"
#include "common/log.h"
#include "daemon/daemon_server.h"

namespace dscache::cli {

namespace {
constexpr const char* kUsage =
    "usage: dscache daemon [--stop]\n\n"
    "Runs the node daemon for DSCACHE_CACHE_DIR in the foreground, logging to stderr (for\n"
    "systemd or a Kubernetes DaemonSet). Programs started with libdscache.so and dscache\n"
    "commands start one on demand when none runs; exactly one runs per cache directory.\n"
    "It exits after DSCACHE_IDLE_TIMEOUT without clients or work, and cleanly on SIGTERM.\n"
    "  --stop   stop the running daemon and wait for it\n";
}  // namespace

int cmd_daemon(int argc, char** argv) {
  bool stop = false, detached = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--stop") == 0) {
      stop = true;
    } else if (std::strcmp(argv[i], "--detached") == 0) {
      detached = true;  // started on demand by a client (internal)
    } else if (std::strcmp(argv[i], "--help") == 0) {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "dscache daemon: unexpected argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }
  Config& config = global_config();
  if (!load_config(config)) return 1;
  if (stop) {
    if (stop_daemon(config, 60000) != 0) return fail("the daemon of %s did not stop", config.cache_dir);
    return 0;
  }
  if (detached) {
    // A daemon started on demand tells what it does in its log.
    if (!log_enabled(LogLevel::info)) (void)log_configure(Env::from_map({{"DSCACHE_LOG", "info"}}));
  }
  return run_daemon(config, Env::process_taking_secrets(), DaemonOptions{detached});
}

int cmd_status(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--help") == 0) {
    std::puts("usage: dscache status\n\nWhether the daemon runs, its pid, cache directory, mounts, capacity and index use.");
    return 0;
  }
  Config& config = global_config();
  if (!load_config(config)) return 1;
  int pid = daemon_pid(config);
  if (pid == 0) {
    std::printf("daemon:      not running (cache dir %s)\n", config.cache_dir);
    return 0;
  }
  ipc::DaemonClient client;
  char error[512];
  if (client.connect(config, nullptr, 0, error, sizeof error) != 0) return fail("%s", error);
  char text[8192];
  int rc = client.call(ipc::MessageType::status, 0, "", 0, 0, 0, nullptr, text, sizeof text);
  if (rc != 0) return fail("status: %s", rc < 0 && text[0] == '\0' ? std::strerror(-rc) : text);
  std::printf("daemon:      running (pid %d)\n%s", pid, text);
  return 0;
}

}  // namespace dscache::cli
