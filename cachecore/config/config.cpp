// libc only: this file is also compiled into libdscache.so.
#include "config/config.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dscache {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = kKiB * 1024;
constexpr uint64_t kGiB = kMiB * 1024;

// Writes "NAME='value': what" into error (truncating safely).
bool fail(char* error, size_t error_size, const char* name, const char* value, const char* what) {
  if (error_size > 0) {
    if (value != nullptr) {
      std::snprintf(error, error_size, "%s='%s': %s", name, value, what);
    } else {
      std::snprintf(error, error_size, "%s: %s", name, what);
    }
  }
  return false;
}

bool iequal(const char* a, const char* b) {
  while (*a != '\0' && *b != '\0') {
    if (std::tolower(static_cast<unsigned char>(*a)) != std::tolower(static_cast<unsigned char>(*b))) return false;
    ++a;
    ++b;
  }
  return *a == *b;
}

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Copies [begin, end) into out (capacity `size`), trimming spaces; false if it does not fit.
bool copy_trimmed(const char* begin, const char* end, char* out, size_t size) {
  while (begin < end && std::isspace(static_cast<unsigned char>(*begin))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(end[-1]))) --end;
  size_t n = static_cast<size_t>(end - begin);
  if (n + 1 > size) return false;
  std::memcpy(out, begin, n);
  out[n] = '\0';
  return true;
}

// Normalises an absolute path in place: collapses "//", drops a trailing '/'.
// Refuses '.' and '..' segments (what they mean depends on symlinks).
bool normalize_absolute(char* path) {
  if (path[0] != '/') return false;
  char* out = path;
  const char* in = path;
  while (*in != '\0') {
    while (*in == '/') ++in;
    if (*in == '\0') break;
    const char* segment = in;
    while (*in != '\0' && *in != '/') ++in;
    size_t n = static_cast<size_t>(in - segment);
    if ((n == 1 && segment[0] == '.') || (n == 2 && segment[0] == '.' && segment[1] == '.')) return false;
    *out++ = '/';
    std::memmove(out, segment, n);
    out += n;
  }
  if (out == path) *out++ = '/';
  *out = '\0';
  return true;
}

// S3's rules, relaxed as legacy buckets and S3-compatible stores allow
// (uppercase, '_', up to 255): it begins and ends with a letter or digit and
// has no ".." (".", "..", "-x", "a..b" are refused).
bool valid_bucket(const char* begin, const char* end) {
  if (begin == end || end - begin > 255) return false;
  if (!std::isalnum(static_cast<unsigned char>(begin[0])) || !std::isalnum(static_cast<unsigned char>(end[-1]))) {
    return false;
  }
  for (const char* p = begin; p + 1 < end; ++p) {
    if (p[0] == '.' && p[1] == '.') return false;
  }
  for (const char* p = begin; p < end; ++p) {
    char c = *p;
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) return false;
  }
  return true;
}

// s3://bucket[/prefix] -> s3://bucket/prefix/ ; file:///dir -> file:///dir
bool normalize_url(const char* in, char* out, size_t size, const char** why) {
  if (std::strncmp(in, "s3://", 5) == 0) {
    const char* bucket = in + 5;
    const char* slash = std::strchr(bucket, '/');
    const char* bucket_end = slash != nullptr ? slash : bucket + std::strlen(bucket);
    if (!valid_bucket(bucket, bucket_end)) {
      *why = "the bucket name must be letters, digits, '.', '-' or '_', begin and end with a letter or digit, "
             "and have no '..'";
      return false;
    }
    const char* prefix = slash != nullptr ? slash + 1 : bucket_end;
    // A key prefix with an empty segment ("s3://b//x", "s3://b/a//c") names
    // keys the mirror cannot hold; "=s3://" inside is two mounts joined by
    // something other than ';' (a PATH-style ':').
    if (std::strstr(prefix, "=s3://") != nullptr || std::strstr(prefix, "=file://") != nullptr) {
      *why = "it holds another mount: separate mounts with ';'";
      return false;
    }
    if (std::strstr(prefix, "//") != nullptr || prefix[0] == '/') {
      *why = "the key prefix has an empty segment ('//')";
      return false;
    }
    size_t prefix_length = std::strlen(prefix);
    bool add_slash = prefix_length > 0 && prefix[prefix_length - 1] != '/';
    int n = std::snprintf(out, size, "s3://%.*s/%s%s", static_cast<int>(bucket_end - bucket), bucket, prefix,
                          add_slash ? "/" : "");
    if (n < 0 || static_cast<size_t>(n) >= size) {
      *why = "URL too long";
      return false;
    }
    return true;
  }
  if (std::strncmp(in, "file://", 7) == 0) {
    char path[kMaxPathLength];
    if (std::strlen(in + 7) + 1 > sizeof path) {
      *why = "URL too long";
      return false;
    }
    std::strcpy(path, in + 7);
    if (!normalize_absolute(path) || std::strcmp(path, "/") == 0) {
      *why = "expected file:///absolute/directory (no '.' or '..')";
      return false;
    }
    int n = std::snprintf(out, size, "file://%s", path);
    if (n < 0 || static_cast<size_t>(n) >= size) {
      *why = "URL too long";
      return false;
    }
    return true;
  }
  *why = "expected s3://bucket[/prefix] or file:///directory";
  return false;
}

bool parse_mounts(const char* text, Config& out, char* error, size_t error_size) {
  const char* name = "DSCACHE_MOUNTS";
  const char* p = text;
  while (*p != '\0') {
    const char* end = std::strchr(p, ';');
    if (end == nullptr) end = p + std::strlen(p);
    const char* eq = static_cast<const char*>(std::memchr(p, '=', static_cast<size_t>(end - p)));
    bool blank = true;
    for (const char* q = p; q < end; ++q) blank = blank && std::isspace(static_cast<unsigned char>(*q));
    if (!blank) {
      char entry[kMaxPrefixLength + kMaxUrlLength];
      if (!copy_trimmed(p, end, entry, sizeof entry)) return fail(error, error_size, name, nullptr, "an entry is too long");
      if (eq == nullptr) return fail(error, error_size, name, entry, "expected PREFIX=URL entries separated by ';'");
      if (out.mount_count == kMaxMounts) return fail(error, error_size, name, nullptr, "more than 32 mounts");
      MountConfig& m = out.mounts[out.mount_count];
      char url[kMaxUrlLength];
      if (!copy_trimmed(p, eq, m.prefix, sizeof m.prefix) || !copy_trimmed(eq + 1, end, url, sizeof url)) {
        return fail(error, error_size, name, entry, "prefix or URL too long");
      }
      if (!normalize_absolute(m.prefix) || std::strcmp(m.prefix, "/") == 0) {
        return fail(error, error_size, name, entry,
                    "the prefix must be an absolute directory other than '/', without '.' or '..'");
      }
      const char* why = nullptr;
      if (!normalize_url(url, m.url, sizeof m.url, &why)) return fail(error, error_size, name, entry, why);
      m.prefix_length = std::strlen(m.prefix);
      m.id = fnv1a64(m.url, std::strlen(m.url));
      std::snprintf(m.id_hex, sizeof m.id_hex, "%016llx", static_cast<unsigned long long>(m.id));
      for (int i = 0; i < out.mount_count; ++i) {
        const MountConfig& o = out.mounts[i];
        size_t shorter = o.prefix_length < m.prefix_length ? o.prefix_length : m.prefix_length;
        bool nested = std::strncmp(o.prefix, m.prefix, shorter) == 0 &&
                      (o.prefix[shorter] == '\0' || o.prefix[shorter] == '/') &&
                      (m.prefix[shorter] == '\0' || m.prefix[shorter] == '/');
        if (nested) return fail(error, error_size, name, entry, "prefixes must not be equal or nested");
        if (o.id == m.id) return fail(error, error_size, name, entry, "the same URL is mounted twice");
      }
      ++out.mount_count;
    }
    p = *end == ';' ? end + 1 : end;
  }
  return true;
}

bool default_cache_dir(const char* (*lookup)(const char*), char* out, size_t size) {
  const char* xdg = lookup("XDG_CACHE_HOME");
  const char* home = lookup("HOME");
  int n;
  if (xdg != nullptr && xdg[0] == '/') {
    n = std::snprintf(out, size, "%s/dscache", xdg);
  } else if (home != nullptr && home[0] == '/') {
    n = std::snprintf(out, size, "%s/.cache/dscache", home);
  } else {
    n = std::snprintf(out, size, "/tmp/dscache-%u", static_cast<unsigned>(::getuid()));
  }
  return n > 0 && static_cast<size_t>(n) < size;
}

}  // namespace

unsigned cache_owner(const Config& config) { return config.system_daemon ? 0 : static_cast<unsigned>(::geteuid()); }

uint64_t fnv1a64(const char* data, size_t length) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < length; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 0x100000001b3ull;
  }
  return h;
}

// The length of the number at the start of `text`: digits with at most one
// '.' among them ("12", "1.5"); 0 if there is none. (strtod alone would also
// take "0x10", "1e3" and "infinity".) Its value goes to *value.
static size_t plain_number(const char* text, double* value) {
  size_t n = 0;
  while (std::isdigit(static_cast<unsigned char>(text[n]))) ++n;
  if (n == 0) return 0;
  if (text[n] == '.') {
    if (!std::isdigit(static_cast<unsigned char>(text[n + 1]))) return 0;
    ++n;
    while (std::isdigit(static_cast<unsigned char>(text[n]))) ++n;
  }
  char digits[64];
  if (n >= sizeof digits) return 0;
  std::memcpy(digits, text, n);
  digits[n] = '\0';
  errno = 0;
  *value = std::strtod(digits, nullptr);
  return errno == 0 ? n : 0;
}

bool parse_size(const char* text, uint64_t* out) {
  double value = 0;
  const size_t length = plain_number(text, &value);
  if (length == 0 || !(value >= 0)) return false;
  const char* end = text + length;
  uint64_t unit = 1;
  switch (std::toupper(static_cast<unsigned char>(*end))) {
    case '\0': break;
    case 'B': unit = 1; ++end; break;
    case 'K': unit = kKiB; ++end; break;
    case 'M': unit = kMiB; ++end; break;
    case 'G': unit = kGiB; ++end; break;
    case 'T': unit = kGiB * 1024; ++end; break;
    default: return false;
  }
  if (unit > 1) {
    if (*end == 'i' || *end == 'I') ++end;
    if (*end == 'b' || *end == 'B') ++end;
  }
  if (*end != '\0') return false;
  double bytes = value * static_cast<double>(unit);
  if (bytes > 9.2e18 || bytes != std::floor(bytes)) return false;
  *out = static_cast<uint64_t>(bytes);
  return true;
}

bool parse_duration(const char* text, int64_t* out_ns) {
  if (iequal(text, "inf") || iequal(text, "never")) {
    *out_ns = INT64_MAX;
    return true;
  }
  double value = 0;
  const size_t length = plain_number(text, &value);
  if (length == 0 || !(value >= 0)) return false;
  const char* end = text + length;
  double scale;
  if (std::strcmp(end, "ms") == 0) {
    scale = 1e6;
  } else if (std::strcmp(end, "s") == 0) {
    scale = 1e9;
  } else if (std::strcmp(end, "m") == 0) {
    scale = 60e9;
  } else if (std::strcmp(end, "h") == 0) {
    scale = 3600e9;
  } else if (std::strcmp(end, "d") == 0) {
    scale = 86400e9;
  } else if (*end == '\0' && value == 0) {
    scale = 0;
  } else {
    return false;
  }
  double ns = value * scale;
  if (ns > 9.2e18) return false;
  *out_ns = static_cast<int64_t>(ns);
  return true;
}

bool parse_config(Config& out, const char* (*lookup)(const char* name), char* error, size_t error_size) {
  out.mount_count = 0;
  out.cache_size = 0;
  out.free_space_ratio = 0.1;
  out.block_size = 4 * kMiB;
  out.whole_file_max = 64 * kMiB;
  out.meta_ttl_ns = int64_t{86400} * 1'000'000'000;
  out.readahead = 64 * kMiB;
  out.fill_streams = 8;
  out.idle_timeout_ns = int64_t{600} * 1'000'000'000;
  out.daemon_timeout_ns = int64_t{10} * 1'000'000'000;
  out.auto_warm = false;
  out.lru_only = false;
  out.mtime_from_metadata = false;
  out.system_daemon = false;
  out.index_entries = uint64_t{1} << 24;
  out.kernel_guard = KernelGuard::automatic;
  if (error_size > 0) error[0] = '\0';

  if (const char* mounts = lookup("DSCACHE_MOUNTS")) {
    if (!parse_mounts(mounts, out, error, error_size)) return false;
  }

  if (const char* dir = lookup("DSCACHE_CACHE_DIR"); dir != nullptr && dir[0] != '\0') {
    if (std::strlen(dir) + 1 > sizeof out.cache_dir) return fail(error, error_size, "DSCACHE_CACHE_DIR", nullptr, "too long");
    std::strcpy(out.cache_dir, dir);
    if (!normalize_absolute(out.cache_dir) || std::strcmp(out.cache_dir, "/") == 0) {
      return fail(error, error_size, "DSCACHE_CACHE_DIR", dir, "expected an absolute directory other than '/'");
    }
  } else if (!default_cache_dir(lookup, out.cache_dir, sizeof out.cache_dir)) {
    return fail(error, error_size, "DSCACHE_CACHE_DIR", nullptr, "cannot derive a default (HOME too long)");
  }

  struct SizeSetting {
    const char* name;
    uint64_t* value;
    uint64_t min, max;
    bool power_of_two;
    const char* expected;
  };
  const SizeSetting sizes[] = {
      {"DSCACHE_CACHE_SIZE", &out.cache_size, 0, UINT64_MAX, false, "expected a size such as 500G or 2T (0: no limit)"},
      {"DSCACHE_BLOCK_SIZE", &out.block_size, 64 * kKiB, 256 * kMiB, true, "expected a power of two from 64K to 256M"},
      {"DSCACHE_WHOLE_FILE_MAX", &out.whole_file_max, 0, 16 * kGiB, false, "expected a size from 0 to 16G"},
      {"DSCACHE_READAHEAD", &out.readahead, 0, 4 * kGiB, false, "expected a size from 0 to 4G"},
      {"DSCACHE_FILL_STREAMS", &out.fill_streams, 1, 1024, false, "expected a count from 1 to 1024"},
      {"DSCACHE_INDEX_ENTRIES", &out.index_entries, 1024, uint64_t{1} << 32, false,
       "expected a count from 1K to 4G (rounded up to a power of two)"},
  };
  for (const SizeSetting& s : sizes) {
    const char* text = lookup(s.name);
    if (text == nullptr || text[0] == '\0') continue;
    uint64_t v = 0;
    if (!parse_size(text, &v) || v < s.min || v > s.max || (s.power_of_two && !is_power_of_two(v))) {
      return fail(error, error_size, s.name, text, s.expected);
    }
    *s.value = v;
  }
  while (!is_power_of_two(out.index_entries)) out.index_entries = (out.index_entries | (out.index_entries >> 1)) + 1;

  if (const char* text = lookup("DSCACHE_FREE_SPACE_RATIO"); text != nullptr && text[0] != '\0') {
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(v >= 0) || v >= 1) {
      return fail(error, error_size, "DSCACHE_FREE_SPACE_RATIO", text, "expected a fraction from 0 to below 1, such as 0.1");
    }
    out.free_space_ratio = v;
  }
  struct DurationSetting {
    const char* name;
    int64_t* value;
  };
  const DurationSetting durations[] = {{"DSCACHE_META_TTL", &out.meta_ttl_ns},
                                       {"DSCACHE_IDLE_TIMEOUT", &out.idle_timeout_ns},
                                       {"DSCACHE_DAEMON_TIMEOUT", &out.daemon_timeout_ns}};
  for (const DurationSetting& d : durations) {
    const char* text = lookup(d.name);
    if (text == nullptr || text[0] == '\0') continue;
    if (!parse_duration(text, d.value)) {
      return fail(error, error_size, d.name, text, "expected a duration such as 30s, 10m, 24h, 7d, 0 or inf");
    }
  }
  struct SwitchSetting {
    const char* name;
    bool* value;
  };
  const SwitchSetting switches[] = {{"DSCACHE_AUTO_WARM", &out.auto_warm}, {"DSCACHE_SYSTEM_DAEMON", &out.system_daemon}};
  for (const SwitchSetting& sw : switches) {
    const char* text = lookup(sw.name);
    if (text == nullptr || text[0] == '\0') continue;
    if (iequal(text, "1") || iequal(text, "true") || iequal(text, "yes")) {
      *sw.value = true;
    } else if (iequal(text, "0") || iequal(text, "false") || iequal(text, "no")) {
      *sw.value = false;
    } else {
      return fail(error, error_size, sw.name, text, "expected 1 or 0");
    }
  }
  if (const char* text = lookup("DSCACHE_EVICTION"); text != nullptr && text[0] != '\0') {
    if (iequal(text, "auto")) {
      out.lru_only = false;
    } else if (iequal(text, "lru")) {
      out.lru_only = true;
    } else {
      return fail(error, error_size, "DSCACHE_EVICTION", text, "expected auto or lru");
    }
  }
  if (const char* text = lookup("DSCACHE_MTIME"); text != nullptr && text[0] != '\0') {
    if (iequal(text, "last-modified")) {
      out.mtime_from_metadata = false;
    } else if (iequal(text, "metadata")) {
      out.mtime_from_metadata = true;
    } else {
      return fail(error, error_size, "DSCACHE_MTIME", text, "expected last-modified or metadata");
    }
  }
  if (const char* text = lookup("DSCACHE_KERNEL_GUARD"); text != nullptr && text[0] != '\0') {
    if (iequal(text, "auto")) {
      out.kernel_guard = KernelGuard::automatic;
    } else if (iequal(text, "on")) {
      out.kernel_guard = KernelGuard::on;
    } else if (iequal(text, "off")) {
      out.kernel_guard = KernelGuard::off;
    } else {
      return fail(error, error_size, "DSCACHE_KERNEL_GUARD", text, "expected auto, on or off");
    }
  }
  return true;
}

const MountConfig* find_mount(const Config& config, const char* path, const char** relative) {
  for (int i = 0; i < config.mount_count; ++i) {
    const MountConfig& m = config.mounts[i];
    if (std::strncmp(path, m.prefix, m.prefix_length) != 0) continue;
    char next = path[m.prefix_length];
    if (next != '\0' && next != '/') continue;
    const char* rest = path + m.prefix_length;
    while (*rest == '/') ++rest;
    if (relative != nullptr) *relative = rest;
    return &m;
  }
  return nullptr;
}

}  // namespace dscache
