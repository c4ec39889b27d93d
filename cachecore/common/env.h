// Env: where configuration values come from. Production reads the process
// environment; tests pass a map so that parsing is checked without setenv().
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace dscache {

class Env {
 public:
  using Lookup = std::function<std::optional<std::string>(std::string_view)>;

  static Env process();
  // The process environment as it is now; the secrets in it (AWS secret
  // keys and tokens) are then wiped from this process's memory, so that
  // /proc/<pid>/environ and its children no longer show them. For the daemon,
  // which holds them from then on.
  static Env process_taking_secrets();
  static Env from_map(std::map<std::string, std::string, std::less<>> values);

  // The value of NAME; an empty value counts as unset, as the AWS CLI does.
  std::optional<std::string> get(std::string_view name) const;
  std::string get_or(std::string_view name, std::string_view fallback) const;

 private:
  explicit Env(Lookup lookup) : lookup_(std::move(lookup)) {}
  Lookup lookup_;
};

}  // namespace dscache
