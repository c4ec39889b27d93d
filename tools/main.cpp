// dscache: the command-line front end. A table of subcommands, each in its own file.
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "cache/guard_keeper.h"
#include "commands.h"
#include "common/env.h"
#include "common/log.h"

namespace dscache::cli {
namespace {

struct Command {
  const char* name;
  int (*run)(int argc, char** argv);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"clear", cmd_clear, "drop the cached bytes of every mount (the namespace stays)"},
    {"daemon", cmd_daemon, "run the node daemon in the foreground, or stop it (--stop)"},
    {"du", cmd_du, "cached bytes and share per directory under a path"},
    {"evict", cmd_evict, "drop the cached bytes of the files under a path"},
    {"fsck", cmd_fsck, "check every cached byte against its checksum (--repair)"},
    {"ls", cmd_ls, "list a directory with the cached share of each file"},
    {"run", cmd_run, "run a program with the cache preloaded; prints a summary of its reads at the end"},
    {"stats", cmd_stats, "hit ratio, throughput, fetch latency and cache use per mount (--watch, --json)"},
    {"status", cmd_status, "whether the daemon runs; its cache directory, mounts and capacity"},
    {"store", cmd_store, "talk to an object store directly, without the cache (ls, stat, cat)"},
    {"warmup", cmd_warmup, "fill the cache with everything under the given paths"},
    {"version", cmd_version, "print the version"},
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: dscache COMMAND [ARGS...]\n\n"
               "dscache is a node-local data cache for deep-learning training: programs run with\n"
               "LD_PRELOAD=libdscache.so read s3:// datasets as local files.\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out, "\n`dscache COMMAND --help` describes a command; docs/cli.md has more.\n");
}

}  // namespace

int fail(const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  std::fputs("dscache: ", stderr);
  std::vfprintf(stderr, format, args);
  std::fputc('\n', stderr);
  va_end(args);
  return 1;
}

int cmd_version(int, char**) {
  std::printf("dscache 0.1.0\n");
  return 0;
}

}  // namespace dscache::cli

int main(int argc, char** argv) {
  using namespace dscache::cli;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) return cmd_version(argc, argv);
  if (auto s = dscache::log_configure(dscache::Env::process()); !s.ok()) return fail("%s", s.message().c_str());
  // The daemon's guard keeper (cache/guard_keeper.h): internal, not listed.
  if (std::strcmp(argv[1], dscache::kGuardKeeperCommand) == 0) return dscache::run_guard_keeper(argc - 1, argv + 1);
  for (const Command& c : kCommands) {
    if (std::string_view(argv[1]) == c.name) return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "dscache: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
