// The environment a program the shim runs in starts with.
#include <cstring>

#include "internal.h"

namespace dscache::shim {

char* const* exec_environment(char* const* envp) {
  if (!g_active || envp == nullptr) return envp;
  bool has_preload = false, has_mounts = false;
  for (char* const* e = envp; *e != nullptr; ++e) {
    has_preload = has_preload || std::strncmp(*e, "LD_PRELOAD=", 11) == 0;
    has_mounts = has_mounts || std::strncmp(*e, "DSCACHE_MOUNTS=", 15) == 0;
  }
  if (has_preload && has_mounts) return envp;
  // The caller replaced the environment: carry ours along, so that the new
  // program still sees the mounts (its working directory may be in one).
  static char* merged[4096];
  size_t n = 0;
  for (char* const* e = envp; *e != nullptr && n < 4000; ++e) merged[n++] = *e;
  for (char** e = environ; e != nullptr && *e != nullptr && n < 4094; ++e) {
    bool ours = std::strncmp(*e, "DSCACHE_", 8) == 0 || std::strncmp(*e, "AWS_", 4) == 0;
    bool preload = std::strncmp(*e, "LD_PRELOAD=", 11) == 0;
    if ((ours && !has_mounts) || (preload && !has_preload)) merged[n++] = *e;
  }
  merged[n] = nullptr;
  return merged;
}

}  // namespace dscache::shim
