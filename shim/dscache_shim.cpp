// libdscache.so. The interposition hooks (open, stat, read, ... on mapped
// prefixes) arrive with the shim issue. The library already carries the read
// side of the cache (configuration parser, index reader, daemon client) so
// that its libc-only build is checked from now on; it exports its version.
#include "config/config.h"

extern "C" {
__attribute__((visibility("default"))) const char* dscache_shim_version();
const char* dscache_shim_version() { return "0.1.0"; }
}
