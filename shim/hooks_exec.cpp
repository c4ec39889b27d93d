// exec and spawn: partial files are completed first (the new program's reads
// are not checked until it loads the shim itself), and the environment keeps
// LD_PRELOAD and the DSCACHE_* settings even when the caller passes its own.
#include <alloca.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstring>

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
// path under a mount is resolved when the action is added, in the child's
// terms: a relative path against where the earlier chdir actions leave the
// child (tracked here), not the parent's cwd. A directory to change into is
// the mirror's, listed; a file to read is made complete and opened by its
// mirror path, and the spawn keeps it from eviction (a pin) until the child
// has opened it; an open the mount refuses (EROFS to write, ENOENT) is
// remembered and the spawn returns it without running, as glibc returns the
// errno of an open that failed in its child. Nothing depends on fd numbers
// the program or other actions could change.

constexpr int kSpawnRecords = 64;  // actions objects touching mounts, alive at once
constexpr int kSpawnFiles = 8;     // files under mounts one object opens

struct SpawnRecord {
  std::atomic<const void*> actions{nullptr};
  int error = 0;         // the spawn's result, if not 0 (the first refused action's)
  bool has_cwd = false;  // a chdir action came: `cwd` is where it leaves the child
  char cwd[dscache::kMaxPathLength];
  int files = 0;
  int mount[kSpawnFiles];
  char rel[kSpawnFiles][dscache::kMaxPathLength];
};
SpawnRecord g_spawn_records[kSpawnRecords];
std::atomic<int> g_spawn_record_count{0};

SpawnRecord* record_of(const void* actions, bool create) {
  if (actions == nullptr) return nullptr;
  if (g_spawn_record_count.load(std::memory_order_relaxed) != 0) {
    for (SpawnRecord& r : g_spawn_records) {
      if (r.actions.load(std::memory_order_acquire) == actions) return &r;
    }
  }
  if (!create) return nullptr;
  for (SpawnRecord& r : g_spawn_records) {
    const void* expected = nullptr;
    if (r.actions.compare_exchange_strong(expected, actions)) {
      g_spawn_record_count.fetch_add(1);
      r.error = 0;
      r.has_cwd = false;
      r.files = 0;
      return &r;
    }
  }
  return nullptr;
}

void forget_spawn_record(const void* actions) {
  if (SpawnRecord* r = record_of(actions, false)) {
    r->actions.store(nullptr, std::memory_order_release);
    g_spawn_record_count.fetch_sub(1);
  }
}

void refuse(SpawnRecord* r, int error) {
  if (r->error == 0) r->error = error;
}

// `path` as the child will resolve it: against the cwd its chdir actions
// leave it in, when relative and there were some. (`buf` may be returned.)
const char* in_child(const SpawnRecord* r, const char* path, char* buf, size_t size) {
  if (path == nullptr || path[0] == '/' || r == nullptr || !r->has_cwd) return path;
  std::snprintf(buf, size, "%s/%s", r->cwd, path);
  return buf;
}

// Pins (on) the files a spawn's actions open, each complete, or unpins them.
int hold_files(const SpawnRecord* r, bool on) {
  if (r == nullptr) return 0;
  for (int i = 0; i < r->files; ++i) {
    if (int rc = hold_for_spawn(r->mount[i], r->rel[i], on); rc != 0) {
      for (int j = 0; j < i; ++j) (void)hold_for_spawn(r->mount[j], r->rel[j], false);
      return rc;
    }
  }
  return 0;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int posix_spawn_file_actions_init(posix_spawn_file_actions_t* actions) noexcept {
  forget_spawn_record(actions);
  return REAL(posix_spawn_file_actions_init)(actions);
}

__attribute__((visibility("default"))) int posix_spawn_file_actions_destroy(
    posix_spawn_file_actions_t* actions) noexcept {
  forget_spawn_record(actions);
  return REAL(posix_spawn_file_actions_destroy)(actions);
}

__attribute__((visibility("default"))) int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t* actions,
                                                                                const char* path) noexcept {
  if (t_depth != 0 || !active()) return REAL(posix_spawn_file_actions_addchdir_np)(actions, path);
  // Every chdir is followed: a later relative open resolves against it.
  SpawnRecord* r = record_of(actions, true);
  if (r == nullptr) return ENOMEM;  // as glibc answers when it cannot record an action
  char joined[2 * dscache::kMaxPathLength];
  const char* where = in_child(r, path, joined, sizeof joined);
  char cwd[dscache::kMaxPathLength];
  if (where[0] != '/') {  // the first chdir, relative to the parent's cwd (the program's path of it)
    if (getcwd(cwd, sizeof cwd) == nullptr) return errno;
    std::snprintf(joined, sizeof joined, "%s/%s", cwd, path);
    where = joined;
  }
  if (std::strlen(where) >= sizeof r->cwd) return ENAMETOOLONG;
  Target t;
  const Route route_taken = route(AT_FDCWD, where, t);
  std::memcpy(r->cwd, where, std::strlen(where) + 1);
  r->has_cwd = true;
  if (route_taken != Route::mapped) return REAL(posix_spawn_file_actions_addchdir_np)(actions, pass_path(t, where));
  // (Rust's Command::current_dir): the mirror directory, listed now; the new
  // program's shim shows it as the mount's.
  if (int rc = prepare_directory(t); rc != 0) refuse(r, -rc);
  return REAL(posix_spawn_file_actions_addchdir_np)(actions, t.mirror);
}

__attribute__((visibility("default"))) int posix_spawn_file_actions_addfchdir_np(posix_spawn_file_actions_t* actions,
                                                                                 int fd) noexcept {
  if (t_depth == 0 && active()) {
    SpawnRecord* r = record_of(actions, true);
    if (r == nullptr) return ENOMEM;
    char link[64];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    // readlink's hook shows a mirror directory as the program's path.
    const ssize_t n = readlink(link, r->cwd, sizeof r->cwd - 1);
    r->has_cwd = n > 0;
    if (n > 0) r->cwd[n] = '\0';
  }
  return REAL(posix_spawn_file_actions_addfchdir_np)(actions, fd);
}

__attribute__((visibility("default"))) int posix_spawn_file_actions_addopen(posix_spawn_file_actions_t* actions,
                                                                            int fd, const char* path, int flags,
                                                                            mode_t mode) noexcept {
  if (t_depth != 0 || !active()) {
    return REAL(posix_spawn_file_actions_addopen)(actions, fd, path, flags, mode);
  }
  SpawnRecord* r = record_of(actions, false);
  char joined[2 * dscache::kMaxPathLength];
  const char* where = in_child(r, path, joined, sizeof joined);
  Target t;
  if (route(AT_FDCWD, where, t) != Route::mapped && !t.synthetic) {
    return REAL(posix_spawn_file_actions_addopen)(actions, fd, pass_path(t, where), flags, mode);
  }
  if (r == nullptr && (r = record_of(actions, true)) == nullptr) return ENOMEM;
  const bool writes = (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)) != 0;
  if (t.synthetic) {
    // A stand-in above the mounts: readable as it is, never changed.
    if (writes) refuse(r, EROFS);
    return REAL(posix_spawn_file_actions_addopen)(actions, fd, writes ? where : t.real_path, flags, mode);
  }
  if (writes) {
    // Never opened to write: the error a read-only mount gives (the action
    // is recorded all the same, and never runs).
    const int opened = open_mapped(t, flags, mode, false);
    refuse(r, opened < 0 ? -opened : EROFS);
    if (opened >= 0) {
      forget_fd(opened);
      REAL(close)(opened);
    }
    return REAL(posix_spawn_file_actions_addopen)(actions, fd, where, flags, mode);
  }
  if (r->files == kSpawnFiles || std::strlen(t.rel) >= sizeof r->rel[0]) return ENOMEM;
  const int opened = open_mapped(t, flags | O_CLOEXEC, mode, true);  // complete now
  if (opened < 0) {
    refuse(r, -opened);
    return REAL(posix_spawn_file_actions_addopen)(actions, fd, where, flags, mode);
  }
  forget_fd(opened);
  REAL(close)(opened);
  r->mount[r->files] = t.mount;
  std::memcpy(r->rel[r->files], t.rel, std::strlen(t.rel) + 1);
  ++r->files;
  return REAL(posix_spawn_file_actions_addopen)(actions, fd, t.mirror, flags & ~O_CREAT, mode);
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
  const SpawnRecord* r = record_of(actions, false);
  if (r != nullptr && r->error != 0) return r->error;
  if (int rc = hold_files(r, true); rc != 0) return rc;
  const int spawned =
      with_environment(envp, [&](char* const* env) { return REAL(posix_spawn)(pid, path, actions, attr, argv, env); });
  (void)hold_files(r, false);  // the child has opened them (posix_spawn returns once it runs its program)
  return spawned;
}
__attribute__((visibility("default"))) int posix_spawnp(pid_t* pid, const char* file,
                                                        const posix_spawn_file_actions_t* actions,
                                                        const posix_spawnattr_t* attr, char* const argv[],
                                                        char* const envp[]) {
  if (int rc = before_run(actions != nullptr); rc != 0) return -rc;
  const SpawnRecord* r = record_of(actions, false);
  if (r != nullptr && r->error != 0) return r->error;
  if (int rc = hold_files(r, true); rc != 0) return rc;
  const int spawned =
      with_environment(envp, [&](char* const* env) { return REAL(posix_spawnp)(pid, file, actions, attr, argv, env); });
  (void)hold_files(r, false);  // the child has opened them (posix_spawn returns once it runs its program)
  return spawned;
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
