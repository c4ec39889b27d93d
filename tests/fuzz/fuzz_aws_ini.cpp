// libFuzzer target: the AWS shared config/credentials file parser
// (IniFile::parse in s3/aws_config.h) and the settings resolution on top of it
// (resolve_s3_settings, normalize_endpoint), which read ~/.aws/config and
// ~/.aws/credentials as the user (or a tool) wrote them.
//
// Input: up to three parts separated by NUL bytes: the config file's text,
// the credentials file's text, and NAME=VALUE environment lines (a NAME of one
// character stands for one of the variables resolve_s3_settings reads). The
// two files are served from memfds through AWS_CONFIG_FILE and
// AWS_SHARED_CREDENTIALS_FILE (/proc/self/fd/N), so nothing touches the disk.
#include <sys/mman.h>
#include <unistd.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/env.h"
#include "s3/aws_config.h"

namespace {

using dscache::IniFile;

constexpr const char* kNames[] = {
    "AWS_PROFILE",         "AWS_DEFAULT_PROFILE", "AWS_REGION",           "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",   "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",  "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",    "AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "DSCACHE_S3_ANONYMOUS", "DSCACHE_S3_ADDRESSING_STYLE", "AWS_CA_BUNDLE", "AWS_MAX_ATTEMPTS", "HOME",
};

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool trimmed(const std::string& s) {
  return s.empty() || (!std::isspace(static_cast<unsigned char>(s.front())) &&
                       !std::isspace(static_cast<unsigned char>(s.back())));
}

// A memfd holding `text`, and its /proc/self/fd path.
struct MemFile {
  explicit MemFile(const char* name) : fd(::memfd_create(name, MFD_CLOEXEC)) {
    check(fd >= 0);
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  void set(std::string_view text) const {
    check(::ftruncate(fd, 0) == 0);
    check(::pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()));
  }
  int fd;
  std::string path;
};

// Every "[name]" line of `text`, looked up the ways resolve_s3_settings looks
// sections up; every value goes through normalize_endpoint.
void probe(const IniFile& ini, std::string_view text) {
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    const size_t open = line.find('['), close = line.rfind(']');
    if (open == std::string_view::npos || close == std::string_view::npos || close <= open) continue;
    const std::string name(line.substr(open + 1, close - open - 1));
    for (const std::string& candidate : {name, "profile " + name, "services " + name}) {
      const IniFile::Section* section = ini.section(candidate);
      if (section == nullptr) continue;
      for (const auto& [key, value] : *section) {
        check(trimmed(key) && trimmed(value));
        check(key.find('\n') == std::string::npos && value.find('\n') == std::string::npos);
        auto endpoint = dscache::normalize_endpoint(value, key);
        if (endpoint.ok()) {
          check(endpoint->starts_with("http://") || endpoint->starts_with("https://"));
        }
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const MemFile config_file("config"), credentials_file("credentials");
  std::string_view parts[3];
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (std::string_view& part : parts) {
    const size_t nul = input.find('\0');
    part = input.substr(0, nul);
    input = nul == std::string_view::npos ? std::string_view{} : input.substr(nul + 1);
  }

  for (int i = 0; i < 2; ++i) {
    auto ini = IniFile::parse(parts[i], i == 0 ? "config" : "credentials");
    if (ini.ok()) {
      probe(*ini, parts[i]);
    } else {
      check(ini.status().message().starts_with(i == 0 ? "config:" : "credentials:"));
    }
  }

  std::map<std::string, std::string, std::less<>> env;
  std::string_view lines = parts[2];
  while (!lines.empty()) {
    const size_t end = lines.find('\n');
    std::string_view line = lines.substr(0, end);
    lines = end == std::string_view::npos ? std::string_view{} : lines.substr(end + 1);
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string name(line.substr(0, eq));
    if (name.size() == 1) name = kNames[static_cast<unsigned char>(name[0]) % (sizeof kNames / sizeof kNames[0])];
    env.emplace(std::move(name), std::string(line.substr(eq + 1)));
  }
  config_file.set(parts[0]);
  credentials_file.set(parts[1]);
  env["AWS_CONFIG_FILE"] = config_file.path;
  env["AWS_SHARED_CREDENTIALS_FILE"] = credentials_file.path;

  auto settings = dscache::resolve_s3_settings(dscache::Env::from_map(std::move(env)));
  if (settings.ok()) {
    if (!settings->anonymous) {
      check(!settings->credentials.access_key_id.empty() && !settings->credentials.secret_access_key.empty());
    }
    check(!settings->region.empty());
    for (char c : settings->region) check(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
    check(settings->max_attempts >= 1 && settings->max_attempts <= 50);
    if (!settings->endpoint.empty()) {
      check(settings->endpoint.starts_with("http://") || settings->endpoint.starts_with("https://"));
      check(settings->endpoint.back() != '/' || settings->endpoint.ends_with("://"));
    }
    check(!settings->credentials_source.empty());
  } else {
    check(settings.status().code() != 0 && !settings.status().message().empty());
  }
  return 0;
}
