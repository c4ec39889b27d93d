// exec and spawn: partial files are completed first (the new program's reads
// are not checked until it loads the shim itself), and the environment keeps
// LD_PRELOAD and the DSCACHE_* settings even when the caller passes its own.
#include <alloca.h>

#include <cstdarg>

#include "core.h"
#include "real.h"

using namespace dscache::shim;

namespace {

// execl's variadic arguments as an argv on the stack (exec replaces the stack
// anyway). glibc's own execl* call its execve internally, past our hook.
constexpr int kMaxExeclArgs = 8192;

bool collect_args(const char* first, va_list args, char** argv) {
  argv[0] = const_cast<char*>(first);
  for (int i = 1; i < kMaxExeclArgs; ++i) {
    argv[i] = va_arg(args, char*);
    if (argv[i] == nullptr) return true;
  }
  errno = E2BIG;
  return false;
}

// Before any exec or spawn from the program: partial files completed, and
// the environment it passes keeps the shim's settings.
// 0, or -errno when an inherited partial file could not be completed: the
// program must not run, it would read the file's holes as data.
int before_run(bool every_open_fd = false) {
  if (t_depth != 0 || !active()) return 0;
  return complete_inherited(every_open_fd);
}

// Calls run(env) with the environment the new program gets (exec_env.cpp),
// built on this frame's stack.
template <class Run>
auto with_environment(char* const* envp, Run run) {
  const size_t length = t_depth == 0 ? exec_environment_length(envp) : 0;
  if (length == 0) return run(envp);
  auto** out = static_cast<char**>(alloca((length + 1) * sizeof(char*)));
  return run(build_exec_environment(envp, out, length));
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int execve(const char* path, char* const argv[], char* const envp[]) noexcept {
  if (int rc = before_run(); rc != 0) return fail(rc);
  return with_environment(envp, [&](char* const* env) { return REAL(execve)(path, argv, env); });
}
__attribute__((visibility("default"))) int execv(const char* path, char* const argv[]) noexcept {
  if (int rc = before_run(); rc != 0) return fail(rc);
  return REAL(execv)(path, argv);
}
__attribute__((visibility("default"))) int execvp(const char* file, char* const argv[]) noexcept {
  if (int rc = before_run(); rc != 0) return fail(rc);
  return REAL(execvp)(file, argv);
}
__attribute__((visibility("default"))) int execvpe(const char* file, char* const argv[], char* const envp[]) noexcept {
  if (int rc = before_run(); rc != 0) return fail(rc);
  return with_environment(envp, [&](char* const* env) { return REAL(execvpe)(file, argv, env); });
}
__attribute__((visibility("default"))) int fexecve(int fd, char* const argv[], char* const envp[]) noexcept {
  if (int rc = before_run(); rc != 0) return fail(rc);
  return with_environment(envp, [&](char* const* env) { return REAL(fexecve)(fd, argv, env); });
}
__attribute__((visibility("default"))) int execveat(int dirfd, const char* path, char* const argv[],
                                                    char* const envp[], int flags) noexcept {
  if (int rc = before_run(); rc != 0) return fail(rc);
  return with_environment(envp, [&](char* const* env) { return REAL(execveat)(dirfd, path, argv, env, flags); });
}
__attribute__((visibility("default"))) int posix_spawn(pid_t* pid, const char* path,
                                                       const posix_spawn_file_actions_t* actions,
                                                       const posix_spawnattr_t* attr, char* const argv[],
                                                       char* const envp[]) {
  if (int rc = before_run(actions != nullptr); rc != 0) return -rc;
  return with_environment(envp, [&](char* const* env) { return REAL(posix_spawn)(pid, path, actions, attr, argv, env); });
}
__attribute__((visibility("default"))) int posix_spawnp(pid_t* pid, const char* file,
                                                        const posix_spawn_file_actions_t* actions,
                                                        const posix_spawnattr_t* attr, char* const argv[],
                                                        char* const envp[]) {
  if (int rc = before_run(actions != nullptr); rc != 0) return -rc;
  return with_environment(envp, [&](char* const* env) { return REAL(posix_spawnp)(pid, file, actions, attr, argv, env); });
}

// glibc's system() and popen() spawn the shell through internal calls.
__attribute__((visibility("default"))) int system(const char* command) {
  if (int rc = before_run(); rc != 0) return fail(rc);
  return REAL(system)(command);
}
__attribute__((visibility("default"))) FILE* popen(const char* command, const char* type) {
  if (int rc = before_run(); rc != 0) return errno = -rc, nullptr;
  return REAL(popen)(command, type);
}

__attribute__((visibility("default"))) int execl(const char* path, const char* arg, ...) noexcept {
  char* argv[kMaxExeclArgs];
  va_list args;
  va_start(args, arg);
  bool ok = collect_args(arg, args, argv);
  va_end(args);
  return ok ? execve(path, argv, environ) : -1;
}
__attribute__((visibility("default"))) int execlp(const char* file, const char* arg, ...) noexcept {
  char* argv[kMaxExeclArgs];
  va_list args;
  va_start(args, arg);
  bool ok = collect_args(arg, args, argv);
  va_end(args);
  return ok ? execvp(file, argv) : -1;
}
__attribute__((visibility("default"))) int execle(const char* path, const char* arg, ...) noexcept {
  char* argv[kMaxExeclArgs];
  va_list args;
  va_start(args, arg);
  bool ok = collect_args(arg, args, argv);
  char* const* envp = ok ? va_arg(args, char* const*) : nullptr;
  va_end(args);
  return ok ? execve(path, argv, envp) : -1;
}

}  // extern "C"
