// Pointers to the functions the shim interposes, as the next library in the
// search order (libc) defines them. Generated from hooks.h. Resolved once,
// before main() (and lazily if a hook runs earlier); a missing symbol stays
// null and its hook fails with ENOSYS.
#pragma once

#include "hooks.h"
#include "libc_headers.h"

namespace dscache::shim {

#define DSC_DECLARE_REAL(kind, ret, name, params, args, spec) extern ret(*real_##name) params;
DSCACHE_HOOKS(DSC_DECLARE_REAL)
#undef DSC_DECLARE_REAL

// Resolves every pointer that is still null. Safe to call more than once.
void resolve_real_functions();

}  // namespace dscache::shim

// The real function, or ENOSYS if libc has none.
#define DSC_REAL(name, fallback, ...) \
  (real_##name != nullptr ? real_##name(__VA_ARGS__) : (errno = ENOSYS, fallback))
