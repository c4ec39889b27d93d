#include "common/env.h"

#include <cstdlib>
#include <cstring>

extern char** environ;

namespace dscache {

namespace {
const char* const kSecretVariables[] = {"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                                        "AWS_CONTAINER_AUTHORIZATION_TOKEN", nullptr};
}  // namespace

Env Env::process_taking_secrets() {
  std::map<std::string, std::string, std::less<>> values;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq != nullptr) values.emplace(std::string(*e, static_cast<size_t>(eq - *e)), std::string(eq + 1));
  }
  for (const char* const* name = kSecretVariables; *name != nullptr; ++name) {
    const size_t n = std::strlen(*name);
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      // Wiped where it lies (the block /proc/<pid>/environ shows), then unset.
      if (std::strncmp(*e, *name, n) == 0 && (*e)[n] == '=') std::memset(*e + n + 1, 0, std::strlen(*e + n + 1));
    }
    ::unsetenv(*name);
  }
  return from_map(std::move(values));
}

Env Env::process() {
  return Env([](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

Env Env::from_map(std::map<std::string, std::string, std::less<>> values) {
  return Env([values = std::move(values)](std::string_view name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  });
}

std::optional<std::string> Env::get(std::string_view name) const {
  auto value = lookup_(name);
  if (value && value->empty()) return std::nullopt;
  return value;
}

std::string Env::get_or(std::string_view name, std::string_view fallback) const {
  auto value = get(name);
  return value ? *value : std::string(fallback);
}

}  // namespace dscache
