// Config: every DSCACHE_* setting, parsed in one place for the daemon, the
// tools and the preload shim.
//
// Freestanding on purpose: no allocation, no exceptions, libc only, so that
// the shim can parse its configuration before anything else in the process
// is initialised. A malformed value is an error naming the variable and the
// expected form; it never becomes a silent default.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dscache {

inline constexpr int kMaxMounts = 32;
inline constexpr size_t kMaxPrefixLength = 1024;  // a mount's local path prefix
inline constexpr size_t kMaxUrlLength = 1024;
inline constexpr size_t kMaxPathLength = 4096;

struct MountConfig {
  char prefix[kMaxPrefixLength];  // absolute, no trailing '/', no '.', '..' or empty segments
  size_t prefix_length;
  char url[kMaxUrlLength];  // s3://bucket/prefix/ (trailing '/' unless empty) or file:///dir
  uint64_t id;              // stable: a hash of url; names the mount's mirror directory
  char id_hex[17];
};

// DSCACHE_KERNEL_GUARD: the daemon's fanotify guard of large files' unfilled
// parts (cache/content_guard.h). automatic: on where the kernel, the file
// system and the daemon's privileges allow it; on: the daemon refuses to start
// without it; off: never.
enum class KernelGuard : uint8_t { automatic, on, off };

struct Config {
  MountConfig mounts[kMaxMounts];
  int mount_count;
  char cache_dir[kMaxPathLength];  // absolute
  uint64_t cache_size;             // bytes; 0: bounded only by free_space_ratio
  double free_space_ratio;         // keep this fraction of the file system's space and inodes free
  uint64_t block_size;             // large objects are filled in blocks of this size (a power of two)
  uint64_t whole_file_max;         // objects up to this size are fetched whole at open()
  int64_t meta_ttl_ns;             // listings older than this are refreshed; INT64_MAX: never
  uint64_t readahead;              // the most a sequential reader's window grows to
  uint64_t fill_streams;           // ranged GETs at once for large files' background (warmup) fills
  int64_t idle_timeout_ns;         // an idle daemon exits after this; INT64_MAX: never
  int64_t daemon_timeout_ns;       // a stopped or hung daemon fails a client's request after this
  bool auto_warm;                  // warm a whole mount in the background after its first miss
  bool lru_only;                   // DSCACHE_EVICTION=lru: never switch to keeping the resident set
  bool mtime_from_metadata;        // DSCACHE_MTIME=metadata: x-amz-meta-mtime (HEADs while listing), else Last-Modified
  bool system_daemon;              // DSCACHE_SYSTEM_DAEMON=1: one daemon, run as root, serves every local user
  uint64_t index_entries;          // slots in the shared index (a power of two)
  KernelGuard kernel_guard;        // DSCACHE_KERNEL_GUARD
};

// Reads the configuration through `lookup` (getenv in production). Returns
// false and writes one line into `error` (e.g. "DSCACHE_BLOCK_SIZE='3M':
// expected a power of two from 64K to 256M") on a malformed value.
bool parse_config(Config& out, const char* (*lookup)(const char* name), char* error, size_t error_size);

// The mount whose prefix `path` lies under (the prefix itself included), or
// null. `relative` receives the part after the prefix without a leading '/'.
// `path` must be absolute and already normalised by the caller.
const MountConfig* find_mount(const Config& config, const char* path, const char** relative);

// Parsers for the value forms, exposed for tests and the command line.
// Sizes: "4096", "64K", "4M", "1.5G", "2T" (binary units; "KiB", "MB" etc. accepted).
bool parse_size(const char* text, uint64_t* out);
// Durations: "0", "30s", "5m", "2h", "7d", "1500ms", "inf"/"never".
bool parse_duration(const char* text, int64_t* out_ns);

// FNV-1a 64: the mount id hash (stable across versions: it names directories).
uint64_t fnv1a64(const char* data, size_t length);

// The user the cache directory and its daemon must belong to: this user, or
// root for a system daemon (DSCACHE_SYSTEM_DAEMON=1).
unsigned cache_owner(const Config& config);

}  // namespace dscache
