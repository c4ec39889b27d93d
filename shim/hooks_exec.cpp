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
// terms: a relative path against where the earlier chdir and fchdir actions
// leave the child (tracked here, with the fds the earlier open and dup2
// actions give it), else against the parent's cwd. A directory to change
// into is the mirror's, listed; a file to read is made complete and added by
// its mirror path, and the spawn keeps it from eviction (a pin) until the
// child has opened it; an open the mount refuses (EROFS to write, ENOENT) is
// remembered and the spawn returns it without running, as glibc returns the
// errno of an open that failed in its child. What was resolved against
// something that may change before the spawn (the parent's cwd, an fd of
// the parent's) is checked again at the spawn: changed, the spawn fails
// (EINVAL, one line) rather than run on paths resolved elsewhere.

constexpr int kSpawnRecords = 64;   // actions objects touching mounts or changing directory, alive at once
constexpr int kSpawnFiles = 256;    // files under mounts all those open, pinned at their spawns
constexpr int kSpawnFdPaths = 16;   // fds an object's open and dup2 actions give the child, with their paths

struct SpawnRecord {
  std::atomic<const void*> actions{nullptr};
  int error = 0;         // the spawn's result, if not 0 (the first refused action's)
  bool has_cwd = false;  // a chdir action came: `cwd` is where it leaves the child
  char cwd[dscache::kMaxPathLength];
  // The parent's cwd a relative path was resolved against (checked at the spawn).
  bool used_parent_cwd = false;
  char parent_cwd[dscache::kMaxPathLength];
  // An fchdir to a parent's fd, and the path it had (checked at the spawn).
  int fchdir_fd = -1;
  char fchdir_path[dscache::kMaxPathLength];
  // The child's fds set by earlier actions: fd -> the program's path (or "" unknown).
  int fd_count = 0;
  int fds[kSpawnFdPaths];
  char fd_paths[kSpawnFdPaths][dscache::kMaxPathLength];
};
SpawnRecord g_spawn_records[kSpawnRecords];
std::atomic<int> g_spawn_record_count{0};

struct SpawnFile {
  std::atomic<const void*> actions{nullptr};
  int mount = 0;
  char rel[dscache::kMaxPathLength];
};
SpawnFile g_spawn_files[kSpawnFiles];
std::atomic<int> g_spawn_file_count{0};

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
      r.used_parent_cwd = false;
      r.fchdir_fd = -1;
      r.fd_count = 0;
      return &r;
    }
  }
  return nullptr;
}

bool add_spawn_file(const void* actions, int mount, const char* rel) {
  if (std::strlen(rel) >= sizeof g_spawn_files[0].rel) return false;
  for (SpawnFile& f : g_spawn_files) {
    const void* expected = nullptr;
    if (f.actions.compare_exchange_strong(expected, reinterpret_cast<const void*>(1))) {
      f.mount = mount;
      std::memcpy(f.rel, rel, std::strlen(rel) + 1);
      f.actions.store(actions, std::memory_order_release);
      g_spawn_file_count.fetch_add(1);
      return true;
    }
  }
  return false;
}

void forget_spawn_record(const void* actions) {
  if (SpawnRecord* r = record_of(actions, false)) {
    r->actions.store(nullptr, std::memory_order_release);
    g_spawn_record_count.fetch_sub(1);
  }
  if (g_spawn_file_count.load(std::memory_order_relaxed) == 0) return;
  for (SpawnFile& f : g_spawn_files) {
    if (f.actions.load(std::memory_order_acquire) != actions) continue;
    f.actions.store(nullptr, std::memory_order_release);
    g_spawn_file_count.fetch_sub(1);
  }
}

void refuse(SpawnRecord* r, int error) {
  if (r->error == 0) r->error = error;
}

// The program's path of the parent's fd (a mirror's shown as the mount's), "" if none.
void path_of_fd(int fd, char* out, size_t size) {
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, out, size - 1);  // the hook: mirror paths translated
  out[n > 0 ? n : 0] = '\0';
}

// The child's fd `fd` as the earlier actions set it (a path, or "" for one
// they closed or made unknown); false if they did not touch it.
bool child_fd_path(const SpawnRecord* r, int fd, const char** path) {
  for (int i = r != nullptr ? r->fd_count - 1 : -1; i >= 0; --i) {
    if (r->fds[i] == fd) {
      *path = r->fd_paths[i];
      return true;
    }
  }
  return false;
}

void set_child_fd(SpawnRecord* r, int fd, const char* path) {
  if (r->fd_count == kSpawnFdPaths) {  // the oldest goes: an fchdir to it is then checked at the spawn
    std::memmove(r->fds, r->fds + 1, sizeof r->fds[0] * (kSpawnFdPaths - 1));
    std::memmove(r->fd_paths, r->fd_paths + 1, sizeof r->fd_paths[0] * (kSpawnFdPaths - 1));
    --r->fd_count;
  }
  r->fds[r->fd_count] = fd;
  std::snprintf(r->fd_paths[r->fd_count], sizeof r->fd_paths[0], "%s", path);
  ++r->fd_count;
}

// `path` as the child will resolve it: against the cwd its chdir actions
// leave it in, else against the parent's cwd (noted, to be checked at the
// spawn). Absolute in `buf` when relative; "" when it cannot be known.
const char* in_child(SpawnRecord* r, const char* path, char* buf, size_t size) {
  if (path[0] == '/') return path;
  if (r != nullptr && r->has_cwd) {
    if (r->cwd[0] == '\0') return "";
    std::snprintf(buf, size, "%s/%s", r->cwd, path);
    return buf;
  }
  char cwd[dscache::kMaxPathLength];
  if (getcwd(cwd, sizeof cwd) == nullptr) return path;
  if (r != nullptr && !r->used_parent_cwd) {
    std::snprintf(r->parent_cwd, sizeof r->parent_cwd, "%s", cwd);
    r->used_parent_cwd = true;
  }
  std::snprintf(buf, size, "%s/%s", cwd, path);
  return buf;
}

// At the spawn: what was resolved against the parent's cwd or one of its
// fds still holds. 0 or EINVAL (with one line).
int still_valid(const SpawnRecord* r) {
  if (r == nullptr) return 0;
  char now[dscache::kMaxPathLength];
  if (r->used_parent_cwd && (getcwd(now, sizeof now) == nullptr || std::strcmp(now, r->parent_cwd) != 0)) {
    log_line("dscache: posix_spawn: its file actions' relative paths were resolved in %s, and the working "
             "directory changed since: not run (EINVAL)", r->parent_cwd);
    return EINVAL;
  }
  if (r->fchdir_fd >= 0) {
    path_of_fd(r->fchdir_fd, now, sizeof now);
    if (std::strcmp(now, r->fchdir_path) != 0) {
      log_line("dscache: posix_spawn: fd %d of its fchdir action was %s, and is now %s: not run (EINVAL)",
               r->fchdir_fd, r->fchdir_path, now[0] != '\0' ? now : "closed");
      return EINVAL;
    }
  }
  return 0;
}

// Pins (on) the files a spawn's actions open, each complete, or unpins them.
int hold_files(const void* actions, bool on) {
  if (actions == nullptr || g_spawn_file_count.load(std::memory_order_relaxed) == 0) return 0;
  for (int i = 0; i < kSpawnFiles; ++i) {
    const SpawnFile& f = g_spawn_files[i];
    if (f.actions.load(std::memory_order_acquire) != actions) continue;
    if (int rc = hold_for_spawn(f.mount, f.rel, on); rc != 0 && on) {
      for (int j = 0; j < i; ++j) {
        const SpawnFile& g = g_spawn_files[j];
        if (g.actions.load(std::memory_order_acquire) == actions) (void)hold_for_spawn(g.mount, g.rel, false);
      }
      return rc;
    }
  }
  return 0;
}

// A spawn: partial files completed, its actions' checks, the files they
// open pinned while run(env) spawns with the new program's environment.
template <class Run>
int spawn_with(const posix_spawn_file_actions_t* actions, char* const* envp, Run run) {
  if (int rc = before_run(actions != nullptr); rc != 0) return -rc;
  const SpawnRecord* r = record_of(actions, false);
  if (r != nullptr && r->error != 0) return r->error;
  if (int rc = still_valid(r); rc != 0) return rc;
  if (int rc = hold_files(actions, true); rc != 0) return rc;
  const int spawned = with_environment(envp, run);
  (void)hold_files(actions, false);  // the child has opened them (posix_spawn returns once it runs its program)
  return spawned;
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
  if (std::strlen(where) >= sizeof r->cwd) return ENAMETOOLONG;
  std::memmove(r->cwd, where, std::strlen(where) + 1);
  r->has_cwd = true;
  if (where[0] == '\0') return REAL(posix_spawn_file_actions_addchdir_np)(actions, path);  // unknown: as it is
  Target t;
  if (route(AT_FDCWD, r->cwd, t) != Route::mapped) {
    return REAL(posix_spawn_file_actions_addchdir_np)(actions, pass_path(t, r->cwd));
  }
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
    const char* set = nullptr;
    if (child_fd_path(r, fd, &set)) {
      std::snprintf(r->cwd, sizeof r->cwd, "%s", set);  // an fd an earlier action gave the child
    } else {
      path_of_fd(fd, r->cwd, sizeof r->cwd);  // the parent's fd, checked again at the spawn
      r->fchdir_fd = fd;
      std::memcpy(r->fchdir_path, r->cwd, sizeof r->cwd);
    }
    r->has_cwd = true;
  }
  return REAL(posix_spawn_file_actions_addfchdir_np)(actions, fd);
}

__attribute__((visibility("default"))) int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t* actions,
                                                                            int fd, int new_fd) noexcept {
  if (t_depth == 0 && active() && fd != new_fd) {
    if (SpawnRecord* r = record_of(actions, false)) {
      const char* set = nullptr;
      char parent[dscache::kMaxPathLength];
      if (!child_fd_path(r, fd, &set)) {
        path_of_fd(fd, parent, sizeof parent);
        set = parent;
      }
      set_child_fd(r, new_fd, set);
    }
  }
  return REAL(posix_spawn_file_actions_adddup2)(actions, fd, new_fd);
}

__attribute__((visibility("default"))) int posix_spawn_file_actions_addopen(posix_spawn_file_actions_t* actions,
                                                                            int fd, const char* path, int flags,
                                                                            mode_t mode) noexcept {
  if (t_depth != 0 || !active()) return REAL(posix_spawn_file_actions_addopen)(actions, fd, path, flags, mode);
  // A relative path is the child's cwd's at the spawn: where it was resolved
  // is noted (a record), to be checked then.
  SpawnRecord* r = record_of(actions, path[0] != '/');
  if (r == nullptr && path[0] != '/') return ENOMEM;
  char joined[2 * dscache::kMaxPathLength];
  const char* where = in_child(r, path, joined, sizeof joined);
  if (where[0] == '\0') return REAL(posix_spawn_file_actions_addopen)(actions, fd, path, flags, mode);
  if (r != nullptr) set_child_fd(r, fd, where);  // (an fchdir to it later goes there)
  Target t;
  if (route(AT_FDCWD, where, t) != Route::mapped && !t.synthetic) {
    // Resolved against the parent's cwd: kept relative when nothing about it
    // is near a mount (the child resolves it where it is); else the lexical path.
    const char* given = t.real_path != nullptr ? t.real_path : (r != nullptr && r->has_cwd) ? where : path;
    return REAL(posix_spawn_file_actions_addopen)(actions, fd, given, flags, mode);
  }
  if (r == nullptr) {  // (an absolute path)
    if ((r = record_of(actions, true)) == nullptr) return ENOMEM;
    set_child_fd(r, fd, where);
  }
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
  const int opened = open_mapped(t, flags | O_CLOEXEC, mode, true);  // complete now
  if (opened < 0) {
    refuse(r, -opened);
    return REAL(posix_spawn_file_actions_addopen)(actions, fd, where, flags, mode);
  }
  struct stat st {};
  const bool regular = REAL(fstat)(opened, &st) == 0 && S_ISREG(st.st_mode);
  forget_fd(opened);
  REAL(close)(opened);
  // A file is kept from eviction for the spawn (a directory needs nothing).
  if (regular && !add_spawn_file(actions, t.mount, t.rel)) return ENOMEM;
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
  return spawn_with(actions, envp, [&](char* const* env) { return REAL(posix_spawn)(pid, path, actions, attr, argv, env); });
}
__attribute__((visibility("default"))) int posix_spawnp(pid_t* pid, const char* file,
                                                        const posix_spawn_file_actions_t* actions,
                                                        const posix_spawnattr_t* attr, char* const argv[],
                                                        char* const envp[]) {
  return spawn_with(actions, envp, [&](char* const* env) { return REAL(posix_spawnp)(pid, file, actions, attr, argv, env); });
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
