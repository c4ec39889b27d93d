// dscache run: runs a program with libdscache.so preloaded and the mounts set,
// then prints one line on what its reads cost: files opened, hit ratio, bytes
// served and fetched, time spent waiting on the store.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cache/mirror.h"
#include "cli_common.h"
#include "commands.h"
#include "index/index_reader.h"

namespace dscache::cli {
namespace {

constexpr const char* kUsage =
    "usage: dscache run [--mount PREFIX=URL]... [--quiet] [--] COMMAND [ARGS...]\n\n"
    "Runs COMMAND with LD_PRELOAD=libdscache.so, so that it reads the mounts (those of\n"
    "DSCACHE_MOUNTS plus each --mount) as local directories, then prints one summary line\n"
    "on stderr: files opened, hit ratio, bytes served and fetched, time waiting on the\n"
    "store. Starts the daemon first if none runs. Exits with COMMAND's status.\n"
    "The library is found through DSCACHE_LIB, else next to this binary (../lib,\n"
    "../shim, ../lib/dscache). The counters are the node's: another job reading the same\n"
    "mounts at the same time is counted too. --quiet: no summary.\n";

bool readable(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

// The preload library: DSCACHE_LIB, or where an install or a build tree puts it.
std::string find_library(std::string& tried) {
  if (const char* lib = std::getenv("DSCACHE_LIB"); lib != nullptr && lib[0] != '\0') {
    tried = lib;
    return readable(lib) ? lib : "";
  }
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "";
  self[n] = '\0';
  std::string dir(self);
  dir.resize(dir.rfind('/'));
  for (const char* rel : {"/libdscache.so", "/../lib/libdscache.so", "/../lib/dscache/libdscache.so",
                          "/../shim/libdscache.so", "/../lib/x86_64-linux-gnu/libdscache.so"}) {
    std::string candidate = dir + rel;
    tried += (tried.empty() ? "" : ", ") + candidate;
    if (readable(candidate)) {
      char real[PATH_MAX];
      return ::realpath(candidate.c_str(), real) != nullptr ? real : candidate;
    }
  }
  return "";
}

struct Totals {
  uint64_t hits = 0, misses = 0, served = 0, fetched = 0, wait_ns = 0, errors = 0;
};

Totals totals(const IndexReader& index, const Config& config) {
  Totals t;
  if (!index.is_open()) return t;
  for (const MountStats& m : index.stats().mounts) {
    const uint64_t id = m.mount_id.load();
    bool ours = false;
    for (int i = 0; i < config.mount_count; ++i) ours = ours || (id != 0 && config.mounts[i].id == id);
    if (!ours) continue;
    t.hits += m.hits.load();
    t.misses += m.misses.load();
    t.served += m.bytes_served.load();
    t.fetched += m.bytes_fetched.load();
    t.wait_ns += m.wait_ns.load();
    t.errors += m.errors.load();
  }
  return t;
}


}  // namespace

int cmd_run(int argc, char** argv) {
  std::vector<std::string> mounts;
  bool quiet = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--mount" && i + 1 < argc) {
      mounts.push_back(argv[++i]);
    } else if (arg.starts_with("--mount=")) {
      mounts.push_back(arg.substr(8));
    } else if (arg == "--quiet" || arg == "-q") {
      quiet = true;
    } else if (arg == "--") {
      ++i;
      break;
    } else if (arg.starts_with("-")) {
      std::fprintf(stderr, "dscache run: unexpected argument '%s'\n%s", argv[i], kUsage);
      return 2;
    } else {
      break;
    }
  }
  if (i >= argc) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string all_mounts = std::getenv("DSCACHE_MOUNTS") != nullptr ? std::getenv("DSCACHE_MOUNTS") : "";
  for (const std::string& m : mounts) all_mounts += (all_mounts.empty() ? "" : ";") + m;
  if (all_mounts.empty()) return fail("no mounts: set DSCACHE_MOUNTS or give --mount PREFIX=URL");
  ::setenv("DSCACHE_MOUNTS", all_mounts.c_str(), 1);

  Config& config = global_config();
  if (!load_config(config)) return 1;
  std::string tried;
  const std::string lib = find_library(tried);
  if (lib.empty()) return fail("cannot find libdscache.so (tried %s); set DSCACHE_LIB", tried.c_str());

  // The daemon first: its index holds the counters, and a bad store shows here.
  {
    ipc::DaemonClient client;
    if (!connect_daemon(config, client)) return 1;
  }
  IndexReader index;
  index.open(CacheLayout(config.cache_dir).index_path().c_str());
  const Totals before = totals(index, config);

  // After what is preloaded already (a sanitizer's runtime must stay first).
  std::string preload = lib;
  if (const char* old = std::getenv("LD_PRELOAD"); old != nullptr && old[0] != '\0') preload = std::string(old) + " " + lib;
  ::setenv("LD_PRELOAD", preload.c_str(), 1);
  char self[PATH_MAX];
  if (ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1); n > 0 && std::getenv("DSCACHE_BIN") == nullptr) {
    self[n] = '\0';
    ::setenv("DSCACHE_BIN", self, 1);  // the shim starts the daemon with this binary
  }

  const auto started = std::chrono::steady_clock::now();
  pid_t child = ::fork();
  if (child < 0) return fail("fork: %s", std::strerror(errno));
  if (child == 0) {
    ::execvp(argv[i], argv + i);
    std::fprintf(stderr, "dscache: %s: %s\n", argv[i], std::strerror(errno));
    ::_exit(errno == ENOENT ? 127 : 126);
  }
  // The terminal's Ctrl-C reaches the child; this process waits for it.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGQUIT, SIG_IGN);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (!quiet) {
    const Totals after = totals(index, config);
    const uint64_t opens = (after.hits - before.hits) + (after.misses - before.misses);
    char ratio[32] = "-";
    if (opens > 0) {
      std::snprintf(ratio, sizeof ratio, "%.1f%%",
                    100.0 * static_cast<double>(after.hits - before.hits) / static_cast<double>(opens));
    }
    char outcome[48];
    if (WIFEXITED(status)) {
      std::snprintf(outcome, sizeof outcome, code == 0 ? "succeeded" : "failed (exit %d)", code);
    } else {
      std::snprintf(outcome, sizeof outcome, "was killed by signal %d", WTERMSIG(status));
    }
    std::fprintf(stderr,
                 "dscache run: %s %s in %.1f s; %llu files opened, %s hits; %s served, %s fetched from the store; "
                 "%.1f s waiting on the store; %llu fetch errors\n",
                 argv[i], outcome, seconds,
                 static_cast<unsigned long long>(opens), ratio, human_bytes(static_cast<double>(after.served - before.served)).c_str(),
                 human_bytes(static_cast<double>(after.fetched - before.fetched)).c_str(),
                 static_cast<double>(after.wait_ns - before.wait_ns) * 1e-9,
                 static_cast<unsigned long long>(after.errors - before.errors));
  }
  return code;
}

}  // namespace dscache::cli
