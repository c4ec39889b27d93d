#include "common/status.h"

#include <cstring>

namespace dscache {

std::string errno_name(int code) {
  if (const char* name = strerrorname_np(code)) return name;
  return "errno " + std::to_string(code);
}

}  // namespace dscache
