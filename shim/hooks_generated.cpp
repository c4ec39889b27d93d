// The hooks of the simple kinds in hooks.h, generated from the table.
#include "core.h"
#include "real.h"

using namespace dscache::shim;

namespace {


template <class T>
T erofs() {
  errno = EROFS;
  return static_cast<T>(-1);
}

bool mapped(int dirfd, const char* path) {
  // utimensat(fd, NULL, ...), fchownat(fd, "", ..., AT_EMPTY_PATH): the fd itself.
  if ((path == nullptr || path[0] == '\0') && dirfd != AT_FDCWD && t_depth == 0) return is_mirror_fd(dirfd);
  Target t;
  return route(dirfd, path, t) == Route::mapped;
}

// Creating a name under a mount: EEXIST when it exists, as the kernel checks
// that before the read-only mount (mkdir -p and fio rely on it), else EROFS.
// Returns 0 when the path is not under a mount.
int create_error(int dirfd, const char* path) {
  Target t;
  if (route(dirfd, path, t) != Route::mapped) return 0;
  if (int rc = prepare_lookup(t); rc != 0) return -rc;  // no parent directory
  struct stat st {};
  Guard guard;
  return REAL(fstatat)(t.at_fd, t.at_path, &st, AT_SYMLINK_NOFOLLOW) == 0 ? EEXIST : EROFS;
}

}  // namespace

#define DSC_FIRST_PATH(path, ...) path
#define DSC_SECOND(a, b, ...) b
#define DSC_THIRD(a, b, c, ...) c
#define DSC_FOURTH(a, b, c, d, ...) d
#define DSC_UNPAREN(...) __VA_ARGS__

// lookup1: the path is its first parameter.
#define DSC_HOOK_lookup1(ret, name, params, args, spec)                                  \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    Target t;                                                                           \
    const char* path_ = DSC_FIRST_PATH args;                                            \
    if (route(AT_FDCWD, path_, t) != Route::mapped) {                                    \
      if (t.real_path != nullptr) return dsc_call_with_path_##name(false, t.real_path, DSC_UNPAREN args); \
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
    if (mapped(AT_FDCWD, DSC_FIRST_PATH args)) return erofs<ret>();                      \
    return REAL(name)(DSC_UNPAREN args);                      \
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
    if (mapped(DSC_FIRST_PATH args, DSC_SECOND args)) return erofs<ret>();               \
    return REAL(name)(DSC_UNPAREN args);                      \
  }

#define DSC_HOOK_mutate2(ret, name, params, args, spec)                                  \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    if (mapped(AT_FDCWD, DSC_FIRST_PATH args) || mapped(AT_FDCWD, DSC_SECOND args)) {   \
      return erofs<ret>();                                                               \
    }                                                                                   \
    return REAL(name)(DSC_UNPAREN args);                      \
  }

#define DSC_HOOK_mutate_at2(ret, name, params, args, spec)                               \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    if (mapped(DSC_FIRST_PATH args, DSC_SECOND args) || mapped(DSC_THIRD args, DSC_FOURTH args)) { \
      return erofs<ret>();                                                               \
    }                                                                                   \
    return REAL(name)(DSC_UNPAREN args);                      \
  }

#define DSC_CREATE_HOOK(ret, name, params, args, spec, dirfd, path)                    \
  extern "C" __attribute__((visibility("default"))) ret name params spec {               \
    if (int e = create_error(dirfd, path); e != 0) {                                    \
      errno = e;                                                                        \
      return static_cast<ret>(-1);                                                      \
    }                                                                                   \
    return REAL(name)(DSC_UNPAREN args);                      \
  }
#define DSC_HOOK_create1(ret, name, params, args, spec) \
  DSC_CREATE_HOOK(ret, name, params, args, spec, AT_FDCWD, DSC_FIRST_PATH args)
#define DSC_HOOK_create_at(ret, name, params, args, spec) \
  DSC_CREATE_HOOK(ret, name, params, args, spec, DSC_FIRST_PATH args, DSC_SECOND args)
#define DSC_HOOK_create_link(ret, name, params, args, spec) \
  DSC_CREATE_HOOK(ret, name, params, args, spec, AT_FDCWD, DSC_SECOND args)
#define DSC_HOOK_create_linkat(ret, name, params, args, spec) \
  DSC_CREATE_HOOK(ret, name, params, args, spec, DSC_SECOND args, DSC_THIRD args)

#define DSC_HOOK_custom(ret, name, params, args, spec)

// For the lookup kinds: the real call with the path argument replaced
// (`mapped`: by the mirror's, else by the lexical one `..` left a mount for).
// A mount is a read-only file system: its statfs/statvfs flags say so.
namespace {
inline int dsc_call_with_path_statfs(bool mapped, const char* p, const char*, struct statfs* b) {
  const int r = REAL(statfs)(p, b);
  if (r == 0 && mapped) b->f_flags |= ST_RDONLY;
  return r;
}
inline int dsc_call_with_path_statfs64(bool mapped, const char* p, const char*, struct statfs64* b) {
  const int r = REAL(statfs64)(p, b);
  if (r == 0 && mapped) b->f_flags |= ST_RDONLY;
  return r;
}
inline int dsc_call_with_path_statvfs(bool mapped, const char* p, const char*, struct statvfs* b) {
  const int r = REAL(statvfs)(p, b);
  if (r == 0 && mapped) b->f_flag |= ST_RDONLY;
  return r;
}
inline int dsc_call_with_path_statvfs64(bool mapped, const char* p, const char*, struct statvfs64* b) {
  const int r = REAL(statvfs64)(p, b);
  if (r == 0 && mapped) b->f_flag |= ST_RDONLY;
  return r;
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

// mkdtemp returns a pointer: the create check by hand.
extern "C" __attribute__((visibility("default"))) char* mkdtemp(char* tmpl) noexcept {
  if (int e = create_error(AT_FDCWD, tmpl); e != 0) {
    errno = e;
    return nullptr;
  }
  return REAL(mkdtemp)(tmpl);
}
