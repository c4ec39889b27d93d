#include "real.h"

#include <dlfcn.h>

namespace dscache::shim {

#define DSC_DEFINE_REAL(kind, ret, name, params, args, spec) ret(*real_##name) params = nullptr;
DSCACHE_HOOKS(DSC_DEFINE_REAL)
#undef DSC_DEFINE_REAL

void resolve_real_functions() {
#define DSC_RESOLVE(kind, ret, name, params, args, spec)                                          \
  if (real_##name == nullptr) {                                                                \
    real_##name = reinterpret_cast<ret(*) params>(dlsym(RTLD_NEXT, #name));                    \
  }
  DSCACHE_HOOKS(DSC_RESOLVE)
#undef DSC_RESOLVE
}

}  // namespace dscache::shim
