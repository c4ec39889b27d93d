// libdscache.so. The interposition hooks (open, stat, read, ... on mapped
// prefixes) arrive with the shim issue; until then the library only reports
// its version, so that packaging and LD_PRELOAD plumbing can be tested.
extern "C" {
__attribute__((visibility("default"))) const char* dscache_shim_version();
const char* dscache_shim_version() { return "0.1.0"; }
}
