#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "config/config.h"

using namespace dscache;

namespace {

std::map<std::string, std::string> g_env;
const char* lookup(const char* name) {
  auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}

// Parses g_env; returns the error ("" on success).
std::string parse(Config& config) {
  char error[512];
  bool ok = parse_config(config, lookup, error, sizeof error);
  CHECK(ok == (error[0] == '\0'));
  return ok ? "" : error;
}

Config g_config;

}  // namespace

TEST_CASE("defaults") {
  g_env = {{"HOME", "/home/u"}};
  REQUIRE(parse(g_config).empty());
  CHECK(g_config.mount_count == 0);
  CHECK(std::string(g_config.cache_dir) == "/home/u/.cache/dscache");
  CHECK(g_config.block_size == 4u << 20);
  CHECK(g_config.whole_file_max == 64u << 20);
  CHECK(g_config.readahead == 64u << 20);
  CHECK(g_config.free_space_ratio == doctest::Approx(0.1));
  CHECK(g_config.cache_size == 0);
  CHECK(g_config.meta_ttl_ns == int64_t{86400} * 1'000'000'000);
  CHECK(g_config.index_entries == uint64_t{1} << 24);
  CHECK_FALSE(g_config.auto_warm);
  g_env = {{"XDG_CACHE_HOME", "/xdg"}, {"HOME", "/home/u"}};
  REQUIRE(parse(g_config).empty());
  CHECK(std::string(g_config.cache_dir) == "/xdg/dscache");
}

TEST_CASE("mounts: prefixes and URLs are normalised, ids are stable") {
  g_env = {{"DSCACHE_MOUNTS", " /data/imagenet/ = s3://bucket/imagenet ; /data//coco=s3://b2 ;/nfs=file:///mnt/share/ ;"},
           {"DSCACHE_CACHE_DIR", "/nvme/cache/"}};
  REQUIRE(parse(g_config).empty());
  REQUIRE(g_config.mount_count == 3);
  CHECK(std::string(g_config.mounts[0].prefix) == "/data/imagenet");
  CHECK(std::string(g_config.mounts[0].url) == "s3://bucket/imagenet/");
  CHECK(std::string(g_config.mounts[1].prefix) == "/data/coco");
  CHECK(std::string(g_config.mounts[1].url) == "s3://b2/");
  CHECK(std::string(g_config.mounts[2].url) == "file:///mnt/share");
  CHECK(std::string(g_config.cache_dir) == "/nvme/cache");
  CHECK(g_config.mounts[0].id == fnv1a64("s3://bucket/imagenet/", 21));
  CHECK(std::string(g_config.mounts[0].id_hex).size() == 16);

  const char* rel = nullptr;
  CHECK(find_mount(g_config, "/data/imagenet/train/a.jpg", &rel) == &g_config.mounts[0]);
  CHECK(std::string(rel) == "train/a.jpg");
  CHECK(find_mount(g_config, "/data/imagenet", &rel) == &g_config.mounts[0]);
  CHECK(std::string(rel).empty());
  CHECK(find_mount(g_config, "/data/imagenet2/x", &rel) == nullptr);
  CHECK(find_mount(g_config, "/data", &rel) == nullptr);
  CHECK(find_mount(g_config, "/nfs/x", &rel) == &g_config.mounts[2]);
}

TEST_CASE("malformed values are one error naming the variable and the expected form") {
  struct Case {
    const char* name;
    const char* value;
    const char* expect;
  };
  for (Case c : {Case{"DSCACHE_MOUNTS", "/data", "expected PREFIX=URL"},
                 Case{"DSCACHE_MOUNTS", "data=s3://b", "absolute directory"},
                 Case{"DSCACHE_MOUNTS", "/=s3://b", "absolute directory"},
                 Case{"DSCACHE_MOUNTS", "/a/../b=s3://b", "absolute directory"},
                 Case{"DSCACHE_MOUNTS", "/data=http://b", "expected s3://bucket"},
                 Case{"DSCACHE_MOUNTS", "/data=s3://", "bucket name"},
                 Case{"DSCACHE_MOUNTS", "/data=s3://bad bucket/x", "bucket name"},
                 Case{"DSCACHE_MOUNTS", "/data=s3://../x", "bucket name"},
                 Case{"DSCACHE_MOUNTS", "/data=s3://b//x", "empty segment"},
                 Case{"DSCACHE_MOUNTS", "/data=s3://b/a//c", "empty segment"},
                 Case{"DSCACHE_MOUNTS", "/data=s3://b/:/other=s3://c/", "separate mounts with ';'"},
                 Case{"DSCACHE_MOUNTS", "/data=s3://a..b", "bucket name"},
                 Case{"DSCACHE_MOUNTS", "/data=s3://-ab", "bucket name"},
                 Case{"DSCACHE_CACHE_SIZE", "0x10", "DSCACHE_CACHE_SIZE"},
                 Case{"DSCACHE_MOUNTS", "/data=file://relative", "file:///absolute"},
                 Case{"DSCACHE_MOUNTS", "/data=s3://a;/data/x=s3://b", "nested"},
                 Case{"DSCACHE_MOUNTS", "/data=s3://a;/other=s3://a/", "mounted twice"},
                 Case{"DSCACHE_CACHE_DIR", "relative/dir", "absolute directory"},
                 Case{"DSCACHE_CACHE_SIZE", "lots", "expected a size"},
                 Case{"DSCACHE_CACHE_SIZE", "-5G", "expected a size"},
                 Case{"DSCACHE_BLOCK_SIZE", "3M", "power of two"},
                 Case{"DSCACHE_BLOCK_SIZE", "1K", "power of two"},
                 Case{"DSCACHE_WHOLE_FILE_MAX", "1T", "from 0 to 16G"},
                 Case{"DSCACHE_FREE_SPACE_RATIO", "1.5", "fraction"},
                 Case{"DSCACHE_FREE_SPACE_RATIO", "10%", "fraction"},
                 Case{"DSCACHE_META_TTL", "10", "duration"},
                 Case{"DSCACHE_META_TTL", "soon", "duration"},
                 Case{"DSCACHE_IDLE_TIMEOUT", "5 min", "duration"},
                 Case{"DSCACHE_AUTO_WARM", "maybe", "expected 1 or 0"},
                 Case{"DSCACHE_INDEX_ENTRIES", "12", "from 1K"},
                 Case{"DSCACHE_FILL_STREAMS", "0", "from 1 to 1024"},
                 Case{"DSCACHE_FILL_STREAMS", "many", "from 1 to 1024"},
                 Case{"DSCACHE_EVICTION", "fifo", "expected auto or lru"},
                 Case{"DSCACHE_MTIME", "meta", "expected last-modified or metadata"},
                 Case{"DSCACHE_KERNEL_GUARD", "yes", "expected auto, on or off"},
                 Case{"DSCACHE_KERNEL_GUARD", "1", "expected auto, on or off"}}) {
    CAPTURE(c.name);
    CAPTURE(c.value);
    g_env = {{"HOME", "/h"}, {c.name, c.value}};
    std::string error = parse(g_config);
    CHECK(error.rfind(std::string(c.name) + "=", 0) == 0);
    CHECK(error.find(c.expect) != std::string::npos);
  }
}

TEST_CASE("DSCACHE_MTIME: Last-Modified by default, metadata on request") {
  g_env = {{"HOME", "/h"}};
  CHECK(parse(g_config).empty());
  CHECK_FALSE(g_config.mtime_from_metadata);
  g_env = {{"HOME", "/h"}, {"DSCACHE_MTIME", "Metadata"}};
  CHECK(parse(g_config).empty());
  CHECK(g_config.mtime_from_metadata);
  g_env = {{"HOME", "/h"}, {"DSCACHE_MTIME", "last-modified"}};
  CHECK(parse(g_config).empty());
  CHECK_FALSE(g_config.mtime_from_metadata);
}

TEST_CASE("DSCACHE_KERNEL_GUARD: auto by default, on and off in any case") {
  g_env = {{"HOME", "/h"}};
  REQUIRE(parse(g_config).empty());
  CHECK(g_config.kernel_guard == KernelGuard::automatic);
  for (auto [text, mode] : {std::pair{"auto", KernelGuard::automatic}, std::pair{"ON", KernelGuard::on},
                            std::pair{"off", KernelGuard::off}, std::pair{"", KernelGuard::automatic}}) {
    CAPTURE(text);
    g_env = {{"HOME", "/h"}, {"DSCACHE_KERNEL_GUARD", text}};
    REQUIRE(parse(g_config).empty());
    CHECK(g_config.kernel_guard == mode);
  }
}

TEST_CASE("sizes and durations") {
  uint64_t v = 0;
  int64_t ns_unused = 0;
  CHECK((parse_size("4096", &v) && v == 4096));
  CHECK((parse_size("64K", &v) && v == 65536));
  CHECK((parse_size("4MiB", &v) && v == 4u << 20));
  CHECK((parse_size("1.5G", &v) && v == 3u << 29));
  CHECK((parse_size("2T", &v) && v == uint64_t{2} << 40));
  CHECK((parse_size("10gb", &v) && v == uint64_t{10} << 30));
  CHECK_FALSE(parse_size("", &v));
  CHECK_FALSE(parse_size("K", &v));
  CHECK_FALSE(parse_size("1.3", &v));
  CHECK_FALSE(parse_size("5X", &v));
  CHECK_FALSE(parse_size("1e30", &v));
  // Only the documented forms (issue 11: "0x10" was 16 bytes).
  CHECK_FALSE(parse_size("0x10", &v));
  CHECK_FALSE(parse_size("1e3", &v));
  CHECK_FALSE(parse_size("1.", &v));
  CHECK_FALSE(parse_size("infinity", &v));
  CHECK_FALSE(parse_duration("0x10s", &ns_unused));
  CHECK_FALSE(parse_duration("1e3s", &ns_unused));
  int64_t ns = 0;
  CHECK((parse_duration("30s", &ns) && ns == int64_t{30} * 1'000'000'000));
  CHECK((parse_duration("1500ms", &ns) && ns == int64_t{1500} * 1'000'000));
  CHECK((parse_duration("2h", &ns) && ns == int64_t{7200} * 1'000'000'000));
  CHECK((parse_duration("7d", &ns) && ns == int64_t{7} * 86400 * 1'000'000'000));
  CHECK((parse_duration("0", &ns) && ns == 0));
  CHECK((parse_duration("inf", &ns) && ns == INT64_MAX));
  CHECK((parse_duration("never", &ns) && ns == INT64_MAX));
  CHECK_FALSE(parse_duration("5", &ns));
  CHECK_FALSE(parse_duration("-1s", &ns));
  CHECK_FALSE(parse_duration("1y", &ns));
}

TEST_CASE("settings within range are taken, index entries round up to a power of two") {
  g_env = {{"HOME", "/h"},
           {"DSCACHE_CACHE_SIZE", "500G"},
           {"DSCACHE_BLOCK_SIZE", "8M"},
           {"DSCACHE_WHOLE_FILE_MAX", "16M"},
           {"DSCACHE_FREE_SPACE_RATIO", "0.25"},
           {"DSCACHE_META_TTL", "inf"},
           {"DSCACHE_READAHEAD", "256M"},
           {"DSCACHE_IDLE_TIMEOUT", "30s"},
           {"DSCACHE_AUTO_WARM", "yes"},
           {"DSCACHE_FILL_STREAMS", "32"},
           {"DSCACHE_INDEX_ENTRIES", "3000000"}};
  REQUIRE(parse(g_config).empty());
  CHECK(g_config.cache_size == uint64_t{500} << 30);
  CHECK(g_config.block_size == 8u << 20);
  CHECK(g_config.whole_file_max == 16u << 20);
  CHECK(g_config.free_space_ratio == doctest::Approx(0.25));
  CHECK(g_config.meta_ttl_ns == INT64_MAX);
  CHECK(g_config.readahead == 256u << 20);
  CHECK(g_config.idle_timeout_ns == int64_t{30} * 1'000'000'000);
  CHECK(g_config.auto_warm);
  CHECK(g_config.fill_streams == 32);
  CHECK(g_config.index_entries == uint64_t{1} << 22);
}
