// exec and spawn: partial files are completed first (the new program's reads
// are not checked until it loads the shim itself), and the environment keeps
// LD_PRELOAD and the DSCACHE_* settings even when the caller passes its own.
#include "core.h"
#include "real.h"

using namespace dscache::shim;

extern "C" {

__attribute__((visibility("default"))) int execve(const char* path, char* const argv[], char* const envp[]) noexcept {
  if (t_depth == 0 && active()) {
    complete_all();
    envp = exec_environment(envp);
  }
  return real_execve(path, argv, envp);
}
__attribute__((visibility("default"))) int execv(const char* path, char* const argv[]) noexcept {
  if (t_depth == 0 && active()) complete_all();
  return real_execv(path, argv);
}
__attribute__((visibility("default"))) int execvp(const char* file, char* const argv[]) noexcept {
  if (t_depth == 0 && active()) complete_all();
  return real_execvp(file, argv);
}
__attribute__((visibility("default"))) int execvpe(const char* file, char* const argv[], char* const envp[]) noexcept {
  if (t_depth == 0 && active()) {
    complete_all();
    envp = exec_environment(envp);
  }
  return real_execvpe(file, argv, envp);
}
__attribute__((visibility("default"))) int fexecve(int fd, char* const argv[], char* const envp[]) noexcept {
  if (t_depth == 0 && active()) {
    complete_all();
    envp = exec_environment(envp);
  }
  return real_fexecve(fd, argv, envp);
}
__attribute__((visibility("default"))) int posix_spawn(pid_t* pid, const char* path,
                                                       const posix_spawn_file_actions_t* actions,
                                                       const posix_spawnattr_t* attr, char* const argv[],
                                                       char* const envp[]) {
  if (t_depth == 0 && active()) {
    complete_all();
    envp = exec_environment(envp);
  }
  return real_posix_spawn(pid, path, actions, attr, argv, envp);
}
__attribute__((visibility("default"))) int posix_spawnp(pid_t* pid, const char* file,
                                                        const posix_spawn_file_actions_t* actions,
                                                        const posix_spawnattr_t* attr, char* const argv[],
                                                        char* const envp[]) {
  if (t_depth == 0 && active()) {
    complete_all();
    envp = exec_environment(envp);
  }
  return real_posix_spawnp(pid, file, actions, attr, argv, envp);
}

}  // extern "C"
