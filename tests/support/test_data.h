// Deterministic object contents shared by the test data generator
// (tests/integration/populate.py) and the C++ tests: the 8-byte word at
// offset 8k of object KEY is splitmix64(fnv1a64(KEY) + k), little-endian.
// Every byte depends on its key and position, so a misplaced range, bytes
// from another object or zeros from a hole are all caught without keeping a
// reference copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace dscache::test {

inline uint64_t fnv1a64(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline std::byte content_byte(uint64_t seed, uint64_t offset) {
  return static_cast<std::byte>(splitmix64(seed + offset / 8) >> (8 * (offset % 8)));
}

inline void fill_content(std::string_view key, uint64_t offset, std::span<std::byte> out) {
  const uint64_t seed = fnv1a64(key);
  for (size_t i = 0; i < out.size(); ++i) out[i] = content_byte(seed, offset + i);
}

inline std::string make_content(std::string_view key, uint64_t size) {
  std::string s(size, '\0');
  fill_content(key, 0, std::as_writable_bytes(std::span(s)));
  return s;
}

// The first offset in [offset, offset + data.size()) whose byte is wrong, or -1.
inline int64_t first_mismatch(std::string_view key, uint64_t offset, std::span<const std::byte> data) {
  const uint64_t seed = fnv1a64(key);
  size_t i = 0;
  // Word at a time where aligned: this runs over a GiB in the big-object test.
  while (i < data.size() && (offset + i) % 8 != 0) {
    if (data[i] != content_byte(seed, offset + i)) return static_cast<int64_t>(offset + i);
    ++i;
  }
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t expected = splitmix64(seed + (offset + i) / 8), got = 0;
    for (int b = 0; b < 8; ++b) got |= static_cast<uint64_t>(data[i + static_cast<size_t>(b)]) << (8 * b);
    if (got != expected) {
      for (size_t j = i; j < i + 8; ++j) {
        if (data[j] != content_byte(seed, offset + j)) return static_cast<int64_t>(offset + j);
      }
    }
  }
  for (; i < data.size(); ++i) {
    if (data[i] != content_byte(seed, offset + i)) return static_cast<int64_t>(offset + i);
  }
  return -1;
}

}  // namespace dscache::test
