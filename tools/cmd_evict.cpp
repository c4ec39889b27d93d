// dscache evict: drops cached bytes. The files stay listed (as placeholders)
// and are fetched again on their next use; a file a process has open keeps
// its bytes until it is closed. The walk is warmup's (warmup --evict).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli_common.h"
#include "commands.h"

namespace dscache::cli {
namespace {

int run_warmup_evict(const std::vector<std::string>& extra, int argc, char** argv) {
  std::vector<std::string> args{std::string("warmup"), "--evict"};
  args.insert(args.end(), extra.begin(), extra.end());
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  std::vector<char*> raw;
  for (std::string& a : args) raw.push_back(a.data());
  raw.push_back(nullptr);
  return cmd_warmup(static_cast<int>(args.size()), raw.data());
}

bool wants_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) return true;
  }
  return false;
}

}  // namespace

int cmd_evict(int argc, char** argv) {
  if (wants_help(argc, argv) || argc < 2) {
    std::fputs("usage: dscache evict [--json] [--quiet] [--concurrency N] PATH|s3://URL...\n\n"
               "Drops the cached bytes of every file under each PATH (they stay listed, and are\n"
               "fetched again on next use). A file open in a program keeps its bytes until closed;\n"
               "a large file being read or filled is skipped with a message.\n",
               argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  return run_warmup_evict({}, argc, argv);
}

}  // namespace dscache::cli
