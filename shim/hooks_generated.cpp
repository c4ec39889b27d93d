// The hooks of the simple kinds in hooks.h, generated from the table.
#include <sys/un.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "core.h"
#include "real.h"

using namespace dscache::shim;

namespace {


template <class T>
T erofs() {
  errno = EROFS;
  return static_cast<T>(-1);
}

// A change to (dirfd, path) is refused (EROFS) under a mount and at a
// directory above one that only the cache has; anything else goes to the
// kernel, through pass_path() and pass_dirfd() of `t`.
bool refused(int dirfd, const char* path, Target& t) {
  // utimensat(fd, NULL, ...), fchownat(fd, "", ..., AT_EMPTY_PATH): the fd itself.
  if ((path == nullptr || path[0] == '\0') && dirfd != AT_FDCWD && t_depth == 0) return is_mirror_fd(dirfd);
  return route(dirfd, path, t) == Route::mapped || t.synthetic;
}

// Creating a name under a mount (or in a directory above one that only the
// cache has): EEXIST when it exists, as the kernel checks that before the
// read-only mount (mkdir -p and fio rely on it), ENOENT without a parent,
// else EROFS. 0 when the kernel is to answer (with the path in `t`).
int create_error(int dirfd, const char* path, Target& t) {
  struct stat st {};
  if (route(dirfd, path, t) != Route::mapped) {
    if (!t.synthetic) return 0;
    Guard guard;
    if (REAL(fstatat)(AT_FDCWD, t.real_path, &st, AT_SYMLINK_NOFOLLOW) == 0) return EEXIST;
    if (errno != ENOENT) return errno;
    char parent[sizeof t.mirror];
    std::snprintf(parent, sizeof parent, "%s", t.real_path);
    if (char* slash = std::strrchr(parent, '/')) *slash = '\0';
    return REAL(fstatat)(AT_FDCWD, parent, &st, 0) == 0 ? EROFS : ENOENT;
  }
  if (int rc = prepare_lookup(t); rc != 0) return -rc;  // no parent directory
  Guard guard;
  return REAL(fstatat)(t.at_fd, t.at_path, &st, AT_SYMLINK_NOFOLLOW) == 0 ? EEXIST : EROFS;
}

}  // namespace

#define DSC_FIRST_PATH(path, ...) path
#define DSC_SECOND(a, b, ...) b
#define DSC_THIRD(a, b, c, ...) c
#define DSC_FOURTH(a, b, c, d, ...) d
#define DSC_UNPAREN(...) __VA_ARGS__
// The arguments after the first one, two or four, with a leading comma if any.
#define DSC_REST1(a, ...) __VA_OPT__(, ) __VA_ARGS__
#define DSC_REST2(a, b, ...) __VA_OPT__(, ) __VA_ARGS__
#define DSC_REST4(a, b, c, d, ...) __VA_OPT__(, ) __VA_ARGS__

// lookup1: the path is its first parameter.
#define DSC_HOOK_lookup1(ret, name, params, args, spec)                                  \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    Target t;                                                                           \
    const char* path_ = DSC_FIRST_PATH args;                                            \
    if (route(AT_FDCWD, path_, t) != Route::mapped) {                                    \
      if (t.real_path != nullptr) return dsc_call_with_path_##name(t.synthetic, t.real_path, DSC_UNPAREN args); \
      return REAL(name)(DSC_UNPAREN args);                                              \
    }                                                                                   \
    if (int rc = prepare_lookup(t); rc != 0) {                                          \
      errno = -rc;                                                                      \
      return static_cast<ret>(-1);                                                      \
    }                                                                                   \
    return dsc_call_with_path_##name(true, t.mirror, DSC_UNPAREN args);                       \
  }

#define DSC_HOOK_mutate1(ret, name, params, args, spec)                                  \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    Target t;                                                                           \
    if (refused(AT_FDCWD, DSC_FIRST_PATH args, t)) return erofs<ret>();                  \
    return REAL(name)(pass_path(t, DSC_FIRST_PATH args) DSC_REST1 args);                 \
  }

#define DSC_HOOK_mutate_fd(ret, name, params, args, spec)                                \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    if (t_depth == 0 && is_mirror_fd(DSC_FIRST_PATH args)) return erofs<ret>();         \
    return REAL(name)(DSC_UNPAREN args);                                                \
  }

#define DSC_HOOK_write_fd(ret, name, params, args, spec)                                 \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    const ret r = REAL(name)(DSC_UNPAREN args);                                         \
    if (r == 0 || (errno != EBADF && errno != EINVAL) || t_depth != 0) return r;        \
    const int err = errno;                                                              \
    if (is_mirror_fd(DSC_FIRST_PATH args)) return erofs<ret>();                          \
    errno = err;                                                                        \
    return r;                                                                           \
  }

#define DSC_HOOK_mutate_at(ret, name, params, args, spec)                                \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    Target t;                                                                           \
    if (refused(DSC_FIRST_PATH args, DSC_SECOND args, t)) return erofs<ret>();           \
    return REAL(name)(pass_dirfd(t, DSC_FIRST_PATH args), pass_path(t, DSC_SECOND args) DSC_REST2 args); \
  }

#define DSC_HOOK_mutate2(ret, name, params, args, spec)                                  \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    Target t1_, t2_;                                                                    \
    if (refused(AT_FDCWD, DSC_FIRST_PATH args, t1_) || refused(AT_FDCWD, DSC_SECOND args, t2_)) { \
      return erofs<ret>();                                                               \
    }                                                                                   \
    return REAL(name)(pass_path(t1_, DSC_FIRST_PATH args), pass_path(t2_, DSC_SECOND args) DSC_REST2 args); \
  }

#define DSC_HOOK_mutate_at2(ret, name, params, args, spec)                               \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    Target t1_, t2_;                                                                    \
    if (refused(DSC_FIRST_PATH args, DSC_SECOND args, t1_) || refused(DSC_THIRD args, DSC_FOURTH args, t2_)) { \
      return erofs<ret>();                                                               \
    }                                                                                   \
    return REAL(name)(pass_dirfd(t1_, DSC_FIRST_PATH args), pass_path(t1_, DSC_SECOND args),       \
                      pass_dirfd(t2_, DSC_THIRD args), pass_path(t2_, DSC_FOURTH args) DSC_REST4 args); \
  }

// `call`: the real call, with the path `t` passes on in place of the program's.
#define DSC_CREATE_HOOK(ret, name, params, args, spec, dirfd, path, call)              \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    Target t;                                                                           \
    if (int e = create_error(dirfd, path, t); e != 0) {                                 \
      errno = e;                                                                        \
      return static_cast<ret>(-1);                                                      \
    }                                                                                   \
    return call;                                                                        \
  }
#define DSC_HOOK_create1(ret, name, params, args, spec)                                  \
  DSC_CREATE_HOOK(ret, name, params, args, spec, AT_FDCWD, DSC_FIRST_PATH args,          \
                  REAL(name)(pass_path(t, DSC_FIRST_PATH args) DSC_REST1 args))
#define DSC_HOOK_create_tmpl(ret, name, params, args, spec) \
  DSC_CREATE_HOOK(ret, name, params, args, spec, AT_FDCWD, DSC_FIRST_PATH args, REAL(name)(DSC_UNPAREN args))
#define DSC_HOOK_create_at(ret, name, params, args, spec)                                \
  DSC_CREATE_HOOK(ret, name, params, args, spec, DSC_FIRST_PATH args, DSC_SECOND args,   \
                  REAL(name)(pass_dirfd(t, DSC_FIRST_PATH args), pass_path(t, DSC_SECOND args) DSC_REST2 args))
#define DSC_HOOK_create_link(ret, name, params, args, spec)                              \
  DSC_CREATE_HOOK(ret, name, params, args, spec, AT_FDCWD, DSC_SECOND args,              \
                  REAL(name)(DSC_FIRST_PATH args, pass_path(t, DSC_SECOND args)))
#define DSC_HOOK_create_linkat(ret, name, params, args, spec)                            \
  DSC_CREATE_HOOK(ret, name, params, args, spec, DSC_SECOND args, DSC_THIRD args,        \
                  REAL(name)(DSC_FIRST_PATH args, pass_dirfd(t, DSC_SECOND args), pass_path(t, DSC_THIRD args)))

#define DSC_HOOK_custom(ret, name, params, args, spec)

// For the lookup kinds: the real call with the path argument replaced
// (`mapped`: by the mirror's, else by the lexical one `..` left a mount for).
// A mount is a read-only file system: its statfs/statvfs flags say so.
namespace {
inline int dsc_call_with_path_statfs(bool mapped, const char* p, const char*, struct statfs* b) {
  return read_only_if(REAL(statfs)(p, b), mapped, b->f_flags);
}
inline int dsc_call_with_path_statfs64(bool mapped, const char* p, const char*, struct statfs64* b) {
  return read_only_if(REAL(statfs64)(p, b), mapped, b->f_flags);
}
inline int dsc_call_with_path_statvfs(bool mapped, const char* p, const char*, struct statvfs* b) {
  return read_only_if(REAL(statvfs)(p, b), mapped, b->f_flag);
}
inline int dsc_call_with_path_statvfs64(bool mapped, const char* p, const char*, struct statvfs64* b) {
  return read_only_if(REAL(statvfs64)(p, b), mapped, b->f_flag);
}
inline long dsc_call_with_path_pathconf(bool, const char* p, const char*, int name) { return REAL(pathconf)(p, name); }
inline ssize_t dsc_call_with_path_getxattr(bool, const char* p, const char*, const char* n, void* v, size_t s) {
  return REAL(getxattr)(p, n, v, s);
}
inline ssize_t dsc_call_with_path_lgetxattr(bool, const char* p, const char*, const char* n, void* v, size_t s) {
  return REAL(lgetxattr)(p, n, v, s);
}
inline ssize_t dsc_call_with_path_listxattr(bool, const char* p, const char*, char* l, size_t s) {
  return REAL(listxattr)(p, l, s);
}
inline ssize_t dsc_call_with_path_llistxattr(bool, const char* p, const char*, char* l, size_t s) {
  return REAL(llistxattr)(p, l, s);
}
}  // namespace

#define DSC_GENERATE(kind, ret, name, params, args, spec) DSC_HOOK_##kind(ret, name, params, args, spec)
DSCACHE_HOOKS(DSC_GENERATE)
#undef DSC_GENERATE

// bind of a unix socket makes a name: under a mount (or in a stand-in above
// one) the error a read-only mount gives (EADDRINUSE for a name that
// exists, as bind reports it); a path `..` took out of a mount is bound
// where it leads.
extern "C" __attribute__((visibility("default"))) int bind(int fd, const struct sockaddr* addr,
                                                           socklen_t length) noexcept {
  constexpr socklen_t kPathAt = offsetof(struct sockaddr_un, sun_path);
  if (addr == nullptr || addr->sa_family != AF_UNIX || length <= kPathAt || t_depth != 0 || !active()) {
    return REAL(bind)(fd, addr, length);
  }
  const auto* un = reinterpret_cast<const struct sockaddr_un*>(addr);
  if (un->sun_path[0] == '\0') return REAL(bind)(fd, addr, length);  // abstract: no file
  char path[sizeof un->sun_path + 1];
  const size_t n = strnlen(un->sun_path, std::min<size_t>(length - kPathAt, sizeof un->sun_path));
  std::memcpy(path, un->sun_path, n);
  path[n] = '\0';
  Target t;
  if (int e = create_error(AT_FDCWD, path, t); e != 0) {
    errno = e == EEXIST ? EADDRINUSE : e;
    return -1;
  }
  if (t.real_path == nullptr) return REAL(bind)(fd, addr, length);
  struct sockaddr_un moved {};
  moved.sun_family = AF_UNIX;
  if (std::strlen(t.real_path) >= sizeof moved.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(moved.sun_path, t.real_path, std::strlen(t.real_path) + 1);
  return REAL(bind)(fd, reinterpret_cast<const struct sockaddr*>(&moved), sizeof moved);
}

// mkdtemp returns a pointer: the create check by hand.
extern "C" __attribute__((visibility("default"))) char* mkdtemp(char* tmpl) noexcept {
  Target t;
  if (int e = create_error(AT_FDCWD, tmpl, t); e != 0) {
    errno = e;
    return nullptr;
  }
  return REAL(mkdtemp)(tmpl);
}
