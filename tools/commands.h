// The dscache subcommands: one file each, dispatched by main.cpp.
#pragma once

namespace dscache::cli {

// Each returns the process exit code: 0 success, 1 failure, 2 usage error.
int cmd_clear(int argc, char** argv);
int cmd_daemon(int argc, char** argv);
int cmd_du(int argc, char** argv);
int cmd_evict(int argc, char** argv);
int cmd_fsck(int argc, char** argv);
int cmd_ls(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_stats(int argc, char** argv);
int cmd_status(int argc, char** argv);
int cmd_store(int argc, char** argv);
int cmd_warmup(int argc, char** argv);
int cmd_version(int argc, char** argv);

// Prints "dscache: <message>" to stderr and returns 1.
int fail(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace dscache::cli
