// The functions the shim interposes, as the next library in the search order
// (libc) defines them. Generated from hooks.h.
//
// REAL(name) is never null: every pointer is resolved before main(), and a
// call that comes earlier (a sanitizer runtime or another preloaded library
// calling mmap or open from its own initialiser, before ours has run)
// resolves it on the spot. A symbol libc lacks resolves to a stand-in that
// fails with ENOSYS, so a weak reference a program tests for still works.
#pragma once

#include "hooks.h"
#include "libc_headers.h"

namespace dscache::shim {

#define DSC_DECLARE_REAL(kind, ret, name, params, args, spec) \
  using real_type_##name = ret(*) params;                      \
  extern real_type_##name real_##name;                         \
  real_type_##name resolve_real_##name() noexcept;
DSCACHE_HOOKS(DSC_DECLARE_REAL)
#undef DSC_DECLARE_REAL

// Resolves every pointer that is still unresolved. Safe to call more than once.
void resolve_real_functions();

}  // namespace dscache::shim

// The real function; one load and a predictable branch.
#define REAL(name)                                                                                  \
  (__builtin_expect(::dscache::shim::real_##name != nullptr, 1) ? ::dscache::shim::real_##name \
                                                                : ::dscache::shim::resolve_real_##name())
