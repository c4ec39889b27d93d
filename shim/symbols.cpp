// The names of every interposed function (for the test that checks the
// library really exports each one), and the version.
#include "hooks.h"

extern "C" {

__attribute__((visibility("default"))) const char* dscache_shim_version();
const char* dscache_shim_version() { return "0.1.0"; }

__attribute__((visibility("default"))) extern const char* const dscache_hooked_symbols[];
#define DSC_NAME(kind, ret, name, params, args, spec) #name,
const char* const dscache_hooked_symbols[] = {DSCACHE_HOOKS(DSC_NAME) nullptr};
#undef DSC_NAME

}  // extern "C"
