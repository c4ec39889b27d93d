// libFuzzer target: the DSCACHE_* configuration parser (config/config.h),
// which reads whatever a user or a job scheduler put in the environment.
//
// Input: NAME=VALUE lines; lookup() answers from that table (the first line
// for a name wins, as getenv does; a missing name is unset). A NAME of one
// character stands for one of the variables parse_config reads (its byte
// modulo their count), so that the fuzzer reaches every one quickly. The
// first byte also picks the size of the error buffer, to exercise truncation.
// When parse_config accepts, the invariants the rest of dscache relies on
// are checked; parse_size and parse_duration also see every value.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace {

using dscache::Config;
using dscache::MountConfig;

constexpr const char* kNames[] = {
    "DSCACHE_MOUNTS",         "DSCACHE_CACHE_DIR",     "DSCACHE_CACHE_SIZE",   "DSCACHE_FREE_SPACE_RATIO",
    "DSCACHE_BLOCK_SIZE",     "DSCACHE_WHOLE_FILE_MAX", "DSCACHE_READAHEAD",    "DSCACHE_FILL_STREAMS",
    "DSCACHE_META_TTL",       "DSCACHE_IDLE_TIMEOUT",  "DSCACHE_AUTO_WARM",    "DSCACHE_EVICTION",
    "DSCACHE_INDEX_ENTRIES",  "DSCACHE_KERNEL_GUARD",  "DSCACHE_SYSTEM_DAEMON", "HOME",
    "XDG_CACHE_HOME",
};

std::vector<std::pair<std::string, std::string>> g_table;
Config g_config;

const char* lookup(const char* name) {
  for (const auto& [key, value] : g_table) {
    if (key == name) return value.c_str();
  }
  return nullptr;
}

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Absolute, not "/", no trailing '/', no empty, '.' or '..' segments.
bool normalised_absolute(const char* path) {
  if (path[0] != '/' || std::strcmp(path, "/") == 0) return false;
  const char* p = path;
  while (*p != '\0') {
    ++p;  // the '/'
    const char* segment = p;
    while (*p != '\0' && *p != '/') ++p;
    const size_t n = static_cast<size_t>(p - segment);
    if (n == 0) return false;
    if ((n == 1 && segment[0] == '.') || (n == 2 && segment[0] == '.' && segment[1] == '.')) return false;
  }
  return true;
}

bool nested(const MountConfig& a, const MountConfig& b) {
  const size_t shorter = a.prefix_length < b.prefix_length ? a.prefix_length : b.prefix_length;
  return std::strncmp(a.prefix, b.prefix, shorter) == 0 && (a.prefix[shorter] == '\0' || a.prefix[shorter] == '/') &&
         (b.prefix[shorter] == '\0' || b.prefix[shorter] == '/');
}

void check_mount(const Config& config, int index) {
  const MountConfig& m = config.mounts[index];
  check(std::memchr(m.prefix, '\0', sizeof m.prefix) != nullptr);
  check(std::strlen(m.prefix) == m.prefix_length);
  check(normalised_absolute(m.prefix));
  check(std::memchr(m.url, '\0', sizeof m.url) != nullptr);
  const size_t url_length = std::strlen(m.url);
  if (std::strncmp(m.url, "s3://", 5) == 0) {
    const char* slash = std::strchr(m.url + 5, '/');
    check(slash != nullptr && slash != m.url + 5);     // a bucket, then '/'
    check(m.url[url_length - 1] == '/');              // s3://bucket/ or s3://bucket/prefix/
    check(slash[1] != '/');                           // no empty leading segment
  } else {
    check(std::strncmp(m.url, "file://", 7) == 0);
    check(normalised_absolute(m.url + 7));
  }
  check(m.id == dscache::fnv1a64(m.url, url_length));
  check(std::strlen(m.id_hex) == 16);
  check(std::strtoull(m.id_hex, nullptr, 16) == m.id);
  for (int j = 0; j < index; ++j) {
    check(!nested(config.mounts[j], m));
    check(config.mounts[j].id != m.id);
  }
  // The mount's own prefix, and paths under it, resolve to it.
  const char* relative = nullptr;
  check(dscache::find_mount(config, m.prefix, &relative) == &m);
  check(relative != nullptr && *relative == '\0');
  std::string below = std::string(m.prefix) + "/x/y";
  check(dscache::find_mount(config, below.c_str(), &relative) == &m);
  check(std::strcmp(relative, "x/y") == 0);
}

void check_config(const Config& config, bool cache_dir_given) {
  check(config.mount_count >= 0 && config.mount_count <= dscache::kMaxMounts);
  for (int i = 0; i < config.mount_count; ++i) check_mount(config, i);
  check(std::memchr(config.cache_dir, '\0', sizeof config.cache_dir) != nullptr);
  check(config.cache_dir[0] == '/');
  if (cache_dir_given) check(normalised_absolute(config.cache_dir));
  check(is_power_of_two(config.block_size) && config.block_size >= 64 * 1024 && config.block_size <= 256 << 20);
  check(config.whole_file_max <= uint64_t{16} << 30);
  check(config.readahead <= uint64_t{4} << 30);
  check(config.fill_streams >= 1 && config.fill_streams <= 1024);
  check(is_power_of_two(config.index_entries) && config.index_entries >= 1024 &&
        config.index_entries <= uint64_t{1} << 32);
  check(config.free_space_ratio >= 0 && config.free_space_ratio < 1);
  check(config.meta_ttl_ns >= 0 && config.idle_timeout_ns >= 0);
  check(config.kernel_guard == dscache::KernelGuard::automatic || config.kernel_guard == dscache::KernelGuard::on ||
        config.kernel_guard == dscache::KernelGuard::off);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  static constexpr size_t kErrorSizes[] = {512, 0, 1, 7, 64, 4096};
  const size_t error_size = size > 0 ? kErrorSizes[data[0] % (sizeof kErrorSizes / sizeof kErrorSizes[0])] : 512;

  g_table.clear();
  while (!input.empty()) {
    const size_t end = input.find('\n');
    std::string_view line = input.substr(0, end);
    input = end == std::string_view::npos ? std::string_view{} : input.substr(end + 1);
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string name(line.substr(0, eq));
    if (name.size() == 1) name = kNames[static_cast<unsigned char>(name[0]) % (sizeof kNames / sizeof kNames[0])];
    // getenv never returns a value with a NUL inside: cut there.
    std::string value(line.substr(eq + 1));
    value.resize(std::strlen(value.c_str()));
    g_table.emplace_back(std::move(name), std::move(value));
  }

  // Exactly error_size bytes on the heap: ASan sees a write past the end.
  std::vector<char> error_storage(error_size > 0 ? error_size : 1, 'x');
  char* error = error_storage.data();
  const bool ok = dscache::parse_config(g_config, lookup, error, error_size);
  if (ok) {
    const char* dir = lookup("DSCACHE_CACHE_DIR");
    check_config(g_config, dir != nullptr && dir[0] != '\0');
    if (error_size > 0) check(error[0] == '\0');
  } else if (error_size > 0) {
    check(std::memchr(error, '\0', error_size) != nullptr);
    check(error[0] != '\0' || error_size == 1);
  }

  for (const auto& [name, value] : g_table) {
    uint64_t bytes = 0;
    if (dscache::parse_size(value.c_str(), &bytes)) check(bytes <= uint64_t{9'200'000'000'000'000'000u});
    int64_t ns = 0;
    if (dscache::parse_duration(value.c_str(), &ns)) check(ns >= 0);
  }
  return 0;
}
