// IndexKey: what names an entry in the shared index: a 128-bit hash of the
// mount id and the path relative to the mount ("" for the mount's root,
// "train/n01440764/img1.JPEG" for a file). 128 bits so that two of tens of
// millions of paths never share a key (a collision could serve one file's
// state for another). Header-only and libc-only: the shim computes keys too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace dscache {

struct IndexKey {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool operator==(const IndexKey&) const = default;
  bool empty() const { return lo == 0 && hi == 0; }
};

inline IndexKey index_key(uint64_t mount_id, const char* path, size_t length) {
  XXH128_hash_t h = XXH3_128bits_withSeed(path, length, mount_id);
  IndexKey key{h.low64, h.high64};
  if (key.empty()) key.lo = 1;  // (0, 0) marks an empty slot
  return key;
}

inline IndexKey index_key(uint64_t mount_id, const char* path) { return index_key(mount_id, path, std::strlen(path)); }

// A 64-bit hash of an ETag (or any identity string), for IndexSlot::etag_hash.
inline uint64_t identity_hash(const char* data, size_t length) { return XXH3_64bits(data, length); }

}  // namespace dscache
