#include "s3/aws_config.h"

#include "config/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <charconv>

namespace dscache {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

std::optional<std::string> section_value(const IniFile::Section* section, std::string_view key) {
  if (section == nullptr) return std::nullopt;
  auto it = section->find(key);
  if (it == section->end() || it->second.empty()) return std::nullopt;
  return it->second;
}

Result<bool> parse_bool(std::string_view text, std::string_view source) {
  std::string value(text);
  for (char& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (value == "1" || value == "true" || value == "yes") return true;
  if (value == "0" || value == "false" || value == "no") return false;
  return Status::error(EINVAL, std::string(source) + "='" + std::string(text) + "': expected true or false");
}

}  // namespace

Result<IniFile> IniFile::parse(std::string_view text, std::string_view file_name) {
  IniFile ini;
  Section* current = nullptr;
  std::string nested;  // the "key =" a block of indented lines belongs to
  size_t line_no = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view raw = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string_view line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    auto where = [&] { return std::string(file_name) + ":" + std::to_string(line_no); };
    if (line.front() == '[') {
      if (line.back() != ']') return Status::error(EINVAL, where() + ": malformed section header '" + std::string(line) + "'");
      std::string name(trim(line.substr(1, line.size() - 2)));
      // "[profile  x]" and "[profile x]" are the same profile.
      if (name.starts_with("profile ")) name = "profile " + std::string(trim(std::string_view(name).substr(8)));
      if (name.starts_with("services ")) name = "services " + std::string(trim(std::string_view(name).substr(9)));
      current = &ini.sections_[name];
      nested.clear();
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return Status::error(EINVAL, where() + ": expected 'key = value'");
    if (current == nullptr) return Status::error(EINVAL, where() + ": 'key = value' before any [section]");
    std::string key(trim(line.substr(0, eq)));
    std::string value(trim(line.substr(eq + 1)));
    bool indented = std::isspace(static_cast<unsigned char>(raw.front()));
    if (indented && !nested.empty()) {
      (*current)[nested + "." + key] = value;
      continue;
    }
    nested = value.empty() ? key : std::string();
    if (!value.empty()) (*current)[key] = value;
  }
  return ini;
}

Result<IniFile> IniFile::load(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return IniFile{};
    return Status::error(errno, path + ": cannot read: " + errno_name(errno));
  }
  std::string text;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::error(err, path + ": cannot read: " + errno_name(err));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return parse(text, path);
}

const IniFile::Section* IniFile::section(std::string_view name) const {
  auto it = sections_.find(name);
  return it == sections_.end() ? nullptr : &it->second;
}

Result<std::string> normalize_endpoint(std::string_view url, std::string_view source) {
  std::string value(trim(url));
  auto bad = [&](const char* why) {
    // Never echo a password from "scheme://user:password@host".
    std::string shown(url);
    size_t scheme = shown.find("://");
    size_t from = scheme == std::string::npos ? 0 : scheme + 3;
    size_t at = shown.find('@', from);
    if (at != std::string::npos) shown.replace(from, at - from, "***");
    return Status::error(EINVAL, std::string(source) + "='" + shown + "': " + why +
                                     " (expected http://host[:port] or https://host[:port])");
  };
  size_t scheme_end = value.find("://");
  if (scheme_end == std::string::npos) return bad("no scheme");
  std::string scheme = value.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return bad("unsupported scheme");
  std::string_view rest = std::string_view(value).substr(scheme_end + 3);
  std::string_view authority = rest.substr(0, rest.find('/'));
  if (authority.empty()) return bad("no host");
  if (authority.find_first_of("@?# ") != std::string_view::npos) return bad("unexpected characters in the host");
  if (size_t colon = authority.rfind(':'); colon != std::string_view::npos && authority.back() != ']') {
    std::string_view port = authority.substr(colon + 1);
    unsigned value_port = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value_port);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value_port == 0 || value_port > 65535)
      return bad("bad port");
  }
  if (rest.find_first_of("?#") != std::string_view::npos) return bad("a query or fragment is not allowed");
  while (value.size() > scheme_end + 3 && value.back() == '/') value.pop_back();
  return value;
}

Result<S3Settings> resolve_s3_settings(const Env& env) {
  S3Settings settings;
  const std::string home = env.get_or("HOME", "");
  const std::string credentials_path =
      env.get_or("AWS_SHARED_CREDENTIALS_FILE", home.empty() ? "" : home + "/.aws/credentials");
  const std::string config_path = env.get_or("AWS_CONFIG_FILE", home.empty() ? "" : home + "/.aws/config");
  std::optional<std::string> profile_env = env.get("AWS_PROFILE");
  if (!profile_env) profile_env = env.get("AWS_DEFAULT_PROFILE");
  const std::string profile = profile_env.value_or("default");

  IniFile credentials_file, config_file;
  if (!credentials_path.empty()) {
    auto loaded = IniFile::load(credentials_path);
    if (!loaded.ok()) return loaded.status();
    credentials_file = std::move(*loaded);
  }
  if (!config_path.empty()) {
    auto loaded = IniFile::load(config_path);
    if (!loaded.ok()) return loaded.status();
    config_file = std::move(*loaded);
  }
  const IniFile::Section* cred_section = credentials_file.section(profile);
  const IniFile::Section* config_section =
      config_file.section(profile == "default" ? "default" : "profile " + profile);
  if (profile == "default" && config_section == nullptr) config_section = config_file.section("profile default");
  if (profile_env && cred_section == nullptr && config_section == nullptr) {
    return Status::error(EINVAL, "AWS_PROFILE='" + profile + "': no such profile in " +
                                     (credentials_path.empty() ? "(no credentials file)" : credentials_path) +
                                     " or " + (config_path.empty() ? "(no config file)" : config_path));
  }
  // A profile value: the credentials file wins over the config file, as in the CLI.
  auto profile_value = [&](std::string_view key) -> std::optional<std::pair<std::string, std::string>> {
    if (auto v = section_value(cred_section, key)) return std::pair{*v, credentials_path};
    if (auto v = section_value(config_section, key)) return std::pair{*v, config_path};
    return std::nullopt;
  };

  // Anonymous mode: explicit only, so that missing credentials are never
  // silently turned into unsigned requests.
  if (auto anonymous = env.get("DSCACHE_S3_ANONYMOUS")) {
    auto parsed = parse_bool(*anonymous, "DSCACHE_S3_ANONYMOUS");
    if (!parsed.ok()) return parsed.status();
    settings.anonymous = *parsed;
  }

  // Credentials.
  if (settings.anonymous) {
    settings.credentials_source = "anonymous (DSCACHE_S3_ANONYMOUS)";
  } else if (auto key_id = env.get("AWS_ACCESS_KEY_ID")) {
    auto secret = env.get("AWS_SECRET_ACCESS_KEY");
    if (!secret) return Status::error(EINVAL, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    settings.credentials.access_key_id = *key_id;
    settings.credentials.secret_access_key = *secret;
    settings.credentials.session_token = env.get("AWS_SESSION_TOKEN").value_or(env.get_or("AWS_SECURITY_TOKEN", ""));
    settings.credentials_source = "environment";
  } else if (env.get("AWS_SECRET_ACCESS_KEY")) {
    return Status::error(EINVAL, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  } else if (section_value(cred_section, "aws_access_key_id") || section_value(config_section, "aws_access_key_id")) {
    // Key, secret and token come from one file, as in the AWS CLI: a key from
    // the credentials file never pairs with a stale token from the config file.
    const bool in_credentials = section_value(cred_section, "aws_access_key_id").has_value();
    const IniFile::Section* source = in_credentials ? cred_section : config_section;
    const std::string& path = in_credentials ? credentials_path : config_path;
    auto secret = section_value(source, "aws_secret_access_key");
    if (!secret) {
      return Status::error(EINVAL, path + ": profile '" + profile +
                                       "' has aws_access_key_id but no aws_secret_access_key");
    }
    settings.credentials.access_key_id = *section_value(source, "aws_access_key_id");
    settings.credentials.secret_access_key = *secret;
    if (auto token = section_value(source, "aws_session_token")) {
      settings.credentials.session_token = *token;
    } else if (auto legacy = section_value(source, "aws_security_token")) {
      settings.credentials.session_token = *legacy;
    }
    settings.credentials_source = "profile '" + profile + "' in " + path;
  } else {
    std::string unsupported;
    for (const char* key : {"credential_process", "role_arn", "sso_session", "sso_start_url", "web_identity_token_file"}) {
      if (profile_value(key)) unsupported = key;
    }
    if (!unsupported.empty()) {
      return Status::error(EINVAL, "profile '" + profile + "' uses " + unsupported +
                                       ", which dscache does not support yet: export AWS_ACCESS_KEY_ID/"
                                       "AWS_SECRET_ACCESS_KEY (e.g. from `aws configure export-credentials`)");
    }
    return Status::error(EACCES,
                         "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, add profile '" +
                             profile + "' to " + (credentials_path.empty() ? "~/.aws/credentials" : credentials_path) +
                             ", or set DSCACHE_S3_ANONYMOUS=1 for a public bucket (instance roles and web "
                             "identity are not supported yet)");
  }

  // Region.
  if (auto region = env.get("AWS_REGION")) {
    settings.region = *region;
  } else if (auto default_region = env.get("AWS_DEFAULT_REGION")) {
    settings.region = *default_region;
  } else if (auto profile_region = profile_value("region")) {
    settings.region = profile_region->first;
  }
  for (char c : settings.region) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return Status::error(EINVAL, "region '" + settings.region + "': expected letters, digits and '-'");
    }
  }

  // Endpoint: service-specific variable, global variable, then the profile.
  bool ignore_configured = false;
  if (auto ignore = env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
    auto parsed = parse_bool(*ignore, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    if (!parsed.ok()) return parsed.status();
    ignore_configured = *parsed;
  }
  if (!ignore_configured) {
    std::optional<std::pair<std::string, std::string>> endpoint;  // value, source
    if (auto v = env.get("AWS_ENDPOINT_URL_S3")) {
      endpoint = {*v, "AWS_ENDPOINT_URL_S3"};
    } else if (auto g = env.get("AWS_ENDPOINT_URL")) {
      endpoint = {*g, "AWS_ENDPOINT_URL"};
    } else {
      // [services name] blocks with "s3 = endpoint_url = ..." come before the
      // profile's global endpoint_url.
      if (auto services = profile_value("services")) {
        if (auto url = section_value(config_file.section("services " + services->first), "s3.endpoint_url")) {
          endpoint = {*url, config_path + " [services " + services->first + "]"};
        }
      }
      if (!endpoint) {
        if (auto url = profile_value("endpoint_url")) endpoint = {url->first, url->second + " endpoint_url"};
      }
    }
    if (endpoint) {
      auto normalized = normalize_endpoint(endpoint->first, endpoint->second);
      if (!normalized.ok()) return normalized.status();
      settings.endpoint = std::move(*normalized);
    }
  }

  // Addressing style.
  std::optional<std::pair<std::string, std::string>> style;
  if (auto v = env.get("DSCACHE_S3_ADDRESSING_STYLE")) {
    style = {*v, "DSCACHE_S3_ADDRESSING_STYLE"};
  } else if (auto p = profile_value("s3.addressing_style")) {
    style = {p->first, p->second + " s3.addressing_style"};
  }
  if (style) {
    if (style->first == "auto") {
      settings.addressing = AddressingStyle::automatic;
    } else if (style->first == "path") {
      settings.addressing = AddressingStyle::path;
    } else if (style->first == "virtual") {
      settings.addressing = AddressingStyle::virtual_hosted;
    } else {
      return Status::error(EINVAL, style->second + "='" + style->first + "': expected auto, path or virtual");
    }
  }

  if (auto bundle = env.get("AWS_CA_BUNDLE")) {
    settings.ca_bundle = *bundle;
  } else if (auto p = profile_value("ca_bundle")) {
    settings.ca_bundle = p->first;
  }

  std::optional<std::pair<std::string, std::string>> attempts;
  if (auto v = env.get("AWS_MAX_ATTEMPTS")) {
    attempts = {*v, "AWS_MAX_ATTEMPTS"};
  } else if (auto p = profile_value("max_attempts")) {
    attempts = {p->first, p->second + " max_attempts"};
  }
  if (attempts) {
    int n = 0;
    auto [ptr, ec] = std::from_chars(attempts->first.data(), attempts->first.data() + attempts->first.size(), n);
    if (ec != std::errc() || ptr != attempts->first.data() + attempts->first.size() || n < 1 || n > 50) {
      return Status::error(EINVAL, attempts->second + "='" + attempts->first + "': expected a number from 1 to 50");
    }
    settings.max_attempts = n;
  }
  struct Bound {
    const char* name;
    std::chrono::milliseconds* value;
  } bounds[] = {{"DSCACHE_CONNECT_TIMEOUT", &settings.connect_timeout},
                {"DSCACHE_STALL_TIMEOUT", &settings.stall_timeout},
                {"DSCACHE_REQUEST_TIMEOUT", &settings.request_timeout}};
  for (const Bound& b : bounds) {
    auto v = env.get(b.name);
    if (!v) continue;
    int64_t ns = 0;
    // At least a second (curl's stall check counts whole seconds), at most a day.
    if (!parse_duration(v->c_str(), &ns) || ns < 1'000'000'000 || ns > int64_t{86400} * 1'000'000'000) {
      return Status::error(EINVAL, std::string(b.name) + "='" + *v + "': expected a duration from 1s to 1d (5s, 2m)");
    }
    *b.value = std::chrono::milliseconds(ns / 1'000'000);
  }
  return settings;
}

}  // namespace dscache
