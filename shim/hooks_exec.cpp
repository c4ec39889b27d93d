// exec and spawn: partial files are completed first (the new program's reads
// are not checked until it loads the shim itself), and the environment keeps
// LD_PRELOAD and the DSCACHE_* settings even when the caller passes its own.
#include <alloca.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>

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

// ---- posix_spawn's file actions ------------------------------------------
//
// glibc performs them in the child through internal calls no hook sees, so a
// path under a mount is resolved when the action is added. An open to read
// is made there and then, the file complete (the child reads it unchecked),
// and the action opens that very file again in the child through
// /proc/self/fd/N: glibc's child has the parent's fds until it execs, and the
// open fd keeps the bytes however the cache changes meanwhile. An open the
// mount refuses (EROFS, ENOENT, ...) is remembered, and the spawn returns it,
// as glibc returns the errno of an open that failed in the child.

struct SpawnAction {
  std::atomic<const void*> actions{nullptr};
  int fd = -1;     // held for the action, closed with the actions object
  int error = 0;   // the spawn's result, if not 0
};
constexpr int kSpawnActions = 64;
SpawnAction g_spawn_actions[kSpawnActions];
std::atomic<int> g_spawn_action_count{0};

// A free entry, claimed (its `actions` set by the caller once filled in).
SpawnAction* add_spawn_action() {
  for (SpawnAction& a : g_spawn_actions) {
    const void* expected = nullptr;
    if (a.actions.compare_exchange_strong(expected, reinterpret_cast<const void*>(1))) {  // claimed
      g_spawn_action_count.fetch_add(1);
      a.fd = -1;
      a.error = 0;
      return &a;
    }
  }
  return nullptr;
}

void forget_spawn_actions(const void* actions) {
  if (g_spawn_action_count.load(std::memory_order_relaxed) == 0) return;
  for (SpawnAction& a : g_spawn_actions) {
    if (a.actions.load(std::memory_order_acquire) != actions) continue;
    if (a.fd >= 0) {
      Guard guard;
      REAL(close)(a.fd);
    }
    a.fd = -1;
    a.actions.store(nullptr, std::memory_order_release);
    g_spawn_action_count.fetch_sub(1);
  }
}

// The error a spawn with these actions returns without running (0: none).
int spawn_refusal(const void* actions) {
  if (actions == nullptr || g_spawn_action_count.load(std::memory_order_relaxed) == 0) return 0;
  for (const SpawnAction& a : g_spawn_actions) {
    if (a.actions.load(std::memory_order_acquire) == actions && a.error != 0) return a.error;
  }
  return 0;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int posix_spawn_file_actions_init(posix_spawn_file_actions_t* actions) noexcept {
  forget_spawn_actions(actions);
  return REAL(posix_spawn_file_actions_init)(actions);
}

__attribute__((visibility("default"))) int posix_spawn_file_actions_destroy(
    posix_spawn_file_actions_t* actions) noexcept {
  forget_spawn_actions(actions);
  return REAL(posix_spawn_file_actions_destroy)(actions);
}

__attribute__((visibility("default"))) int posix_spawn_file_actions_addopen(posix_spawn_file_actions_t* actions,
                                                                            int fd, const char* path, int flags,
                                                                            mode_t mode) noexcept {
  Target t;
  if (route(AT_FDCWD, path, t) != Route::mapped && !t.synthetic) {
    return REAL(posix_spawn_file_actions_addopen)(actions, fd, pass_path(t, path), flags, mode);
  }
  SpawnAction* a = add_spawn_action();
  if (a == nullptr) return ENOMEM;  // as glibc answers when it cannot record an action
  int opened;
  if (t.synthetic) {
    // A stand-in above the mounts: readable as it is, never changed.
    const bool writes = (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)) != 0;
    Guard guard;
    opened = writes ? -EROFS : REAL(open)(t.real_path, (flags & ~O_CREAT) | O_CLOEXEC, 0);
    if (opened == -1) opened = -errno;
  } else {
    opened = open_mapped(t, flags | O_CLOEXEC, mode, true);
    if (opened >= 0) forget_fd(opened);  // complete: a plain fd, the shim's until the actions go
  }
  char proc[64];
  if (opened < 0) {
    a->error = -opened;
  } else {
    a->fd = opened;
    std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", opened);
  }
  a->actions.store(actions, std::memory_order_release);
  // The action is recorded all the same: a refused one never runs (the spawn returns its error).
  return REAL(posix_spawn_file_actions_addopen)(actions, fd, opened >= 0 ? proc : path, flags & ~O_CREAT, mode);
}

__attribute__((visibility("default"))) int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t* actions,
                                                                                const char* path) noexcept {
  Target t;
  if (route(AT_FDCWD, path, t) != Route::mapped) {
    return REAL(posix_spawn_file_actions_addchdir_np)(actions, pass_path(t, path));
  }
  // (Rust's Command::current_dir): the child changes into the mirror
  // directory, listed now; the new program's shim shows it as the mount's.
  if (int rc = prepare_directory(t); rc != 0) {
    SpawnAction* a = add_spawn_action();
    if (a == nullptr) return ENOMEM;
    a->error = -rc;
    a->actions.store(actions, std::memory_order_release);
  }
  return REAL(posix_spawn_file_actions_addchdir_np)(actions, t.mirror);
}

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
  if (int refused = spawn_refusal(actions); refused != 0) return refused;
  return with_environment(envp, [&](char* const* env) { return REAL(posix_spawn)(pid, path, actions, attr, argv, env); });
}
__attribute__((visibility("default"))) int posix_spawnp(pid_t* pid, const char* file,
                                                        const posix_spawn_file_actions_t* actions,
                                                        const posix_spawnattr_t* attr, char* const argv[],
                                                        char* const envp[]) {
  if (int rc = before_run(actions != nullptr); rc != 0) return -rc;
  if (int refused = spawn_refusal(actions); refused != 0) return refused;
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
