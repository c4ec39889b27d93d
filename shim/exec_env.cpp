// The environment a program the shim runs in starts with.
#include <cstring>

#include "internal.h"

namespace dscache::shim {

namespace {

bool is_preload(const char* e) { return std::strncmp(e, "LD_PRELOAD=", 11) == 0; }
// What a child needs to see the mounts: the DSCACHE_* settings (no secret is
// among them). AWS_* credentials are never added back: the daemon already
// holds them, and a program that scrubbed them meant it.
bool is_setting(const char* e) { return std::strncmp(e, "DSCACHE_", 8) == 0; }

struct Missing {
  bool preload = false, settings = false;
};

Missing missing_from(char* const* envp) {
  bool has_preload = false, has_mounts = false;
  for (char* const* e = envp; *e != nullptr; ++e) {
    has_preload = has_preload || is_preload(*e);
    has_mounts = has_mounts || std::strncmp(*e, "DSCACHE_MOUNTS=", 15) == 0;
  }
  return Missing{!has_preload, !has_mounts};
}

}  // namespace

size_t exec_environment_length(char* const* envp) {
  if (!g_active || envp == nullptr) return 0;
  const Missing missing = missing_from(envp);
  if (!missing.preload && !missing.settings) return 0;
  size_t n = 0;
  for (char* const* e = envp; *e != nullptr; ++e) ++n;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if ((missing.preload && is_preload(*e)) || (missing.settings && is_setting(*e))) ++n;
  }
  return n;
}

char* const* build_exec_environment(char* const* envp, char** out, size_t length) {
  const Missing missing = missing_from(envp);
  size_t n = 0;
  for (char* const* e = envp; *e != nullptr && n < length; ++e) out[n++] = *e;
  for (char** e = environ; e != nullptr && *e != nullptr && n < length; ++e) {
    if ((missing.preload && is_preload(*e)) || (missing.settings && is_setting(*e))) out[n++] = *e;
  }
  out[n] = nullptr;
  return out;
}

}  // namespace dscache::shim
