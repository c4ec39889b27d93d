/* A test helper preloaded after libdscache.so: opening a file whose path
 * ends in "/index" (the cache's shared index, which the shim maps on first
 * use) takes half a second, so that a test can fork while another thread is
 * inside the shim's index initialisation (shim_test
 * test_fork_while_another_thread_maps_the_index). Every other open is the
 * real one. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

static void pause_for_index(const char* path) {
  size_t n = path != NULL ? strlen(path) : 0;
  if (n >= 6 && strcmp(path + n - 6, "/index") == 0) {
    struct timespec half = {0, 500000000};
    nanosleep(&half, NULL);
  }
}

/* The mode argument, present only when the flags ask for one. */
#define MODE_ARG(flags, mode)            \
  do {                                   \
    if ((flags) & (O_CREAT | O_TMPFILE)) { \
      va_list args;                      \
      va_start(args, flags);             \
      mode = (mode_t)va_arg(args, int);  \
      va_end(args);                      \
    }                                    \
  } while (0)

int open(const char* path, int flags, ...) {
  static int (*real)(const char*, int, ...);
  if (real == NULL) real = (int (*)(const char*, int, ...))dlsym(RTLD_NEXT, "open");
  mode_t mode = 0;
  MODE_ARG(flags, mode);
  pause_for_index(path);
  return real(path, flags, mode);
}

int openat(int dirfd, const char* path, int flags, ...) {
  static int (*real)(int, const char*, int, ...);
  if (real == NULL) real = (int (*)(int, const char*, int, ...))dlsym(RTLD_NEXT, "openat");
  mode_t mode = 0;
  MODE_ARG(flags, mode);
  pause_for_index(path);
  return real(dirfd, path, flags, mode);
}
