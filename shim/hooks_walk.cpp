// Directory walkers of libc that reach the file system through glibc's
// internal entry points, past our hooks: scandir, glob, ftw and nftw. Under a
// mount they are rebuilt on the hooked opendir/stat, so that listings are
// fetched and the program sees its own paths; elsewhere libc's own run.
// (glibc's fts_open is the one walker left alone: see docs/architecture.md.)
#include <ftw.h>
#include <glob.h>

#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "core.h"
#include "real.h"

using namespace dscache::shim;

namespace {

bool mapped_path(int dirfd, const char* path) {
  if (!active() || t_depth != 0 || path == nullptr) return false;
  Target t;
  return route(dirfd, path, t) == Route::mapped;
}

// A walk libc would make past the hooks that must see the mounts: from a
// path in one, from a directory above one (its listing lacks them), or from
// a path `..` takes out of one or a stand-in above them serves.
bool walk_near_a_mount(int dirfd, const char* path) {
  if (!active() || t_depth != 0 || path == nullptr) return false;
  Target t;
  return route(dirfd, path, t) == Route::mapped || t.above >= 0 || t.real_path != nullptr;
}

// ---- scandir ---------------------------------------------------------------

template <class Dirent, class Readdir>
int scan(DIR* dir, Readdir read_entry, Dirent*** namelist, int (*filter)(const Dirent*),
         int (*compar)(const Dirent**, const Dirent**)) {
  Dirent** list = nullptr;
  size_t count = 0, capacity = 0;
  int saved = errno;
  errno = 0;
  while (Dirent* e = read_entry(dir)) {
    if (filter != nullptr && filter(e) == 0) continue;
    if (count == capacity) {
      capacity = capacity == 0 ? 32 : capacity * 2;
      auto grown = static_cast<Dirent**>(std::realloc(list, capacity * sizeof *list));
      if (grown == nullptr) break;
      list = grown;
    }
    auto copy = static_cast<Dirent*>(std::malloc(e->d_reclen));
    if (copy == nullptr) break;
    std::memcpy(copy, e, e->d_reclen);
    list[count++] = copy;
    errno = 0;
  }
  int err = errno;
  closedir(dir);
  if (err != 0) {
    for (size_t i = 0; i < count; ++i) std::free(list[i]);
    std::free(list);
    errno = err;
    return -1;
  }
  errno = saved;
  if (compar != nullptr && count > 1) {
    std::qsort(list, count, sizeof *list, reinterpret_cast<int (*)(const void*, const void*)>(compar));
  }
  *namelist = list;
  return static_cast<int>(count);
}

// The mirror directory of a mapped path, listed first (or the directory a
// path near a mount names, through the hooks); null with errno set.
DIR* open_mapped_dir(int dirfd, const char* path) {
  Target t;
  if (route(dirfd, path, t) != Route::mapped) {
    if (dirfd == AT_FDCWD || path[0] == '/') return opendir(path);
    const int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* dir = fd >= 0 ? fdopendir(fd) : nullptr;
    if (dir == nullptr && fd >= 0) {
      const int err = errno;
      close(fd);
      errno = err;
    }
    return dir;
  }
  if (int rc = prepare_directory(t); rc != 0) return errno = -rc, nullptr;
  return open_mirror_dir(t);
}

// ---- nftw / ftw ------------------------------------------------------------

// One walk: the path grows in `path` as it descends (the program's names).
template <class Stat, class Callback>
struct Walk {
  Callback& callback;
  int flags;
  char path[PATH_MAX];
  bool stop = false;
  int result = 0;

  int stat_path(Stat* st) {
    if constexpr (std::is_same_v<Stat, struct stat64>) {
      return (flags & FTW_PHYS) != 0 ? lstat64(path, st) : stat64(path, st);
    } else {
      return (flags & FTW_PHYS) != 0 ? lstat(path, st) : stat(path, st);
    }
  }

  // Visits `path` (its name starts at `base`), and below it if a directory.
  // Returns the callback's verdict in FTW_ACTIONRETVAL terms.
  int visit(size_t length, int base, int level) {
    Stat st{};
    FTW ftw{base, level};
    if (stat_path(&st) != 0) {
      return callback(path, &st, FTW_NS, &ftw);
    }
    if (!S_ISDIR(st.st_mode)) return callback(path, &st, S_ISLNK(st.st_mode) ? FTW_SL : FTW_F, &ftw);
    DIR* dir = opendir(path);
    if (dir == nullptr) return callback(path, &st, FTW_DNR, &ftw);
    if ((flags & FTW_DEPTH) == 0) {
      int r = callback(path, &st, FTW_D, &ftw);
      if (r != FTW_CONTINUE) {
        closedir(dir);
        return r == FTW_SKIP_SUBTREE ? FTW_CONTINUE : r;
      }
    }
    int verdict = FTW_CONTINUE;
    while (struct dirent64* e = readdir64(dir)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      size_t name_length = std::strlen(e->d_name);
      if (length + 1 + name_length + 1 > sizeof path) {
        errno = ENAMETOOLONG;
        closedir(dir);
        return -1;
      }
      path[length] = '/';
      std::memcpy(path + length + 1, e->d_name, name_length + 1);
      int r = visit(length + 1 + name_length, static_cast<int>(length + 1), level + 1);
      path[length] = '\0';
      if (r == FTW_SKIP_SIBLINGS) break;
      if (r != FTW_CONTINUE) {
        verdict = r;
        break;
      }
    }
    closedir(dir);
    if (verdict != FTW_CONTINUE) return verdict;
    if ((flags & FTW_DEPTH) != 0) {
      int r = callback(path, &st, FTW_DP, &ftw);
      return r == FTW_SKIP_SUBTREE || r == FTW_SKIP_SIBLINGS ? FTW_CONTINUE : r;
    }
    return FTW_CONTINUE;
  }
};

// Runs a walk from `dir`. Without FTW_ACTIONRETVAL any non-zero callback
// result stops the walk and is returned; with it, FTW_STOP does.
template <class Stat, class Fn>
int walk(const char* dir, Fn fn, int flags) {
  const bool action = (flags & FTW_ACTIONRETVAL) != 0;
  int stopped_with = 0;
  auto callback = [&](const char* p, const Stat* st, int type, FTW* ftw) -> int {
    int r = fn(p, st, type, ftw);
    if (action) return r;
    if (r != 0) {
      stopped_with = r;
      return FTW_STOP;
    }
    return FTW_CONTINUE;
  };
  Walk<Stat, decltype(callback)> w{callback, flags, {}};
  size_t length = std::strlen(dir);
  while (length > 1 && dir[length - 1] == '/') --length;  // "dir/" walks as "dir"
  if (length + 1 > sizeof w.path) return errno = ENAMETOOLONG, -1;
  std::memcpy(w.path, dir, length);
  w.path[length] = '\0';
  const char* slash = std::strrchr(w.path, '/');
  int base = slash != nullptr && slash != w.path + length - 1 ? static_cast<int>(slash - w.path + 1) : 0;
  if ((flags & FTW_CHDIR) != 0) {
    // Rare enough not to emulate: walk without changing directory, say so.
    errno = ENOTSUP;
    return -1;
  }
  int r = w.visit(length, base, 0);
  if (r == -1) return -1;
  if (action) return r == FTW_STOP ? FTW_STOP : 0;
  return stopped_with;
}

// ---- glob ------------------------------------------------------------------

void* glob_opendir(const char* path) { return opendir(path); }
void glob_closedir(void* dir) { closedir(static_cast<DIR*>(dir)); }
struct dirent* glob_readdir(void* dir) { return readdir(static_cast<DIR*>(dir)); }
struct dirent64* glob_readdir64(void* dir) { return readdir64(static_cast<DIR*>(dir)); }
int glob_stat(const char* path, struct stat* st) { return stat(path, st); }
int glob_lstat(const char* path, struct stat* st) { return lstat(path, st); }
int glob_stat64(const char* path, struct stat64* st) { return stat64(path, st); }
int glob_lstat64(const char* path, struct stat64* st) { return lstat64(path, st); }

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int scandir(const char* dir, struct dirent*** namelist,
                                                   int (*filter)(const struct dirent*),
                                                   int (*compar)(const struct dirent**, const struct dirent**)) {
  if (!walk_near_a_mount(AT_FDCWD, dir)) return REAL(scandir)(dir, namelist, filter, compar);
  DIR* d = open_mapped_dir(AT_FDCWD, dir);
  return d != nullptr ? scan<struct dirent>(d, readdir, namelist, filter, compar) : -1;
}

__attribute__((visibility("default"))) int scandir64(const char* dir, struct dirent64*** namelist,
                                                     int (*filter)(const struct dirent64*),
                                                     int (*compar)(const struct dirent64**, const struct dirent64**)) {
  if (!walk_near_a_mount(AT_FDCWD, dir)) return REAL(scandir64)(dir, namelist, filter, compar);
  DIR* d = open_mapped_dir(AT_FDCWD, dir);
  return d != nullptr ? scan<struct dirent64>(d, readdir64, namelist, filter, compar) : -1;
}

__attribute__((visibility("default"))) int scandirat(int dirfd, const char* dir, struct dirent*** namelist,
                                                     int (*filter)(const struct dirent*),
                                                     int (*compar)(const struct dirent**, const struct dirent**)) {
  if (!walk_near_a_mount(dirfd, dir)) return REAL(scandirat)(dirfd, dir, namelist, filter, compar);
  DIR* d = open_mapped_dir(dirfd, dir);
  return d != nullptr ? scan<struct dirent>(d, readdir, namelist, filter, compar) : -1;
}

__attribute__((visibility("default"))) int scandirat64(int dirfd, const char* dir, struct dirent64*** namelist,
                                                       int (*filter)(const struct dirent64*),
                                                       int (*compar)(const struct dirent64**,
                                                                     const struct dirent64**)) {
  if (!walk_near_a_mount(dirfd, dir)) return REAL(scandirat64)(dirfd, dir, namelist, filter, compar);
  DIR* d = open_mapped_dir(dirfd, dir);
  return d != nullptr ? scan<struct dirent64>(d, readdir64, namelist, filter, compar) : -1;
}

__attribute__((visibility("default"))) int glob(const char* pattern, int flags,
                                                int (*errfunc)(const char*, int), glob_t* pglob) noexcept {
  if ((flags & GLOB_ALTDIRFUNC) != 0 || !active() || t_depth != 0 || pattern == nullptr) {
    return REAL(glob)(pattern, flags, errfunc, pglob);
  }
  // glibc's glob with our directory functions: it works in the program's
  // paths, and sees the mounts from above them (glob("/data/*/x")). Every
  // glob while the shim serves mounts: which directories a pattern reaches
  // is only known as it expands.
  pglob->gl_opendir = glob_opendir;
  pglob->gl_closedir = glob_closedir;
  pglob->gl_readdir = glob_readdir;
  pglob->gl_stat = glob_stat;
  pglob->gl_lstat = glob_lstat;
  int r = REAL(glob)(pattern, flags | GLOB_ALTDIRFUNC, errfunc, pglob);
  pglob->gl_flags &= ~GLOB_ALTDIRFUNC;
  return r;
}

__attribute__((visibility("default"))) int glob64(const char* pattern, int flags,
                                                  int (*errfunc)(const char*, int), glob64_t* pglob) noexcept {
  if ((flags & GLOB_ALTDIRFUNC) != 0 || !active() || t_depth != 0 || pattern == nullptr) {
    return REAL(glob64)(pattern, flags, errfunc, pglob);
  }
  pglob->gl_opendir = glob_opendir;
  pglob->gl_closedir = glob_closedir;
  pglob->gl_readdir = glob_readdir64;
  pglob->gl_stat = glob_stat64;
  pglob->gl_lstat = glob_lstat64;
  int r = REAL(glob64)(pattern, flags | GLOB_ALTDIRFUNC, errfunc, pglob);
  pglob->gl_flags &= ~GLOB_ALTDIRFUNC;
  return r;
}

__attribute__((visibility("default"))) int nftw(const char* dir, __nftw_func_t fn, int nopenfd, int flags) {
  if (!walk_near_a_mount(AT_FDCWD, dir) || ((flags & FTW_CHDIR) != 0 && !mapped_path(AT_FDCWD, dir))) {
    return REAL(nftw)(dir, fn, nopenfd, flags);
  }
  return walk<struct stat>(dir, fn, flags);
}

__attribute__((visibility("default"))) int nftw64(const char* dir, __nftw64_func_t fn, int nopenfd, int flags) {
  if (!walk_near_a_mount(AT_FDCWD, dir) || ((flags & FTW_CHDIR) != 0 && !mapped_path(AT_FDCWD, dir))) {
    return REAL(nftw64)(dir, fn, nopenfd, flags);
  }
  return walk<struct stat64>(dir, fn, flags);
}

__attribute__((visibility("default"))) int ftw(const char* dir, __ftw_func_t fn, int nopenfd) {
  if (!walk_near_a_mount(AT_FDCWD, dir)) return REAL(ftw)(dir, fn, nopenfd);
  return walk<struct stat>(dir, [fn](const char* p, const struct stat* st, int type, FTW*) { return fn(p, st, type); },
                           0);
}

__attribute__((visibility("default"))) int ftw64(const char* dir, __ftw64_func_t fn, int nopenfd) {
  if (!walk_near_a_mount(AT_FDCWD, dir)) return REAL(ftw64)(dir, fn, nopenfd);
  return walk<struct stat64>(dir,
                             [fn](const char* p, const struct stat64* st, int type, FTW*) { return fn(p, st, type); },
                             0);
}

}  // extern "C"
