#include "real.h"

// The stand-ins for missing functions take the parameters they ignore.
#pragma GCC diagnostic ignored "-Wunused-parameter"

#include <dlfcn.h>

#include <type_traits>

namespace dscache::shim {
namespace {

// What a missing function returns, with errno = ENOSYS.
template <class R>
R missing_value() {
  if constexpr (std::is_void_v<R>) {
    return;
  } else if constexpr (std::is_same_v<R, void*>) {
    return MAP_FAILED;  // mmap and mmap64, the only void* rows
  } else if constexpr (std::is_pointer_v<R>) {
    return nullptr;
  } else {
    return static_cast<R>(-1);
  }
}

}  // namespace

#define DSC_DEFINE_REAL(kind, ret, name, params, args, spec)                                       \
  real_type_##name real_##name = nullptr;                                                          \
  namespace {                                                                                      \
  ret missing_##name params {                                                                      \
    errno = ENOSYS;                                                                                \
    return missing_value<ret>();                                                                   \
  }                                                                                                \
  }                                                                                                \
  real_type_##name resolve_real_##name() noexcept {                                                \
    auto f = reinterpret_cast<real_type_##name>(dlsym(RTLD_NEXT, #name));                          \
    if (f == nullptr) f = missing_##name;                                                          \
    __atomic_store_n(&real_##name, f, __ATOMIC_RELEASE); /* the same value from any thread */    \
    return f;                                                                                      \
  }
DSCACHE_HOOKS(DSC_DEFINE_REAL)
#undef DSC_DEFINE_REAL

void resolve_real_functions() {
#define DSC_RESOLVE(kind, ret, name, params, args, spec) \
  if (real_##name == nullptr) resolve_real_##name();
  DSCACHE_HOOKS(DSC_RESOLVE)
#undef DSC_RESOLVE
}

}  // namespace dscache::shim
