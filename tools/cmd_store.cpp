// dscache store: one request at a time straight to the object store, with the
// same credential, endpoint and retry logic the cache uses. For checking that
// a bucket is reachable before pointing a training job at it.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

#include "commands.h"
#include "store/object_store.h"
#include "store/open_store.h"

namespace dscache::cli {
namespace {

constexpr const char* kUsage =
    "usage: dscache store ls [-r] URL      list one level (-r: everything) under URL\n"
    "       dscache store stat URL         size, ETag and mtime of one object\n"
    "       dscache store cat [--range OFFSET-END] URL\n"
    "                                      write an object's bytes (END exclusive) to stdout\n\n"
    "URL is s3://bucket/key-or-prefix or file:///path. S3 credentials, region and endpoint come\n"
    "from the environment and ~/.aws as for the AWS CLI (AWS_ACCESS_KEY_ID, AWS_PROFILE,\n"
    "AWS_REGION, AWS_ENDPOINT_URL, ...); DSCACHE_S3_ANONYMOUS=1 sends unsigned requests.\n";

// Splits a URL into the store root and the key or prefix under it.
struct Target {
  std::string root;
  std::string key;
};

Target split(std::string_view url) {
  if (url.starts_with("s3://")) {
    size_t slash = url.find('/', 5);
    if (slash == std::string_view::npos) return {std::string(url), ""};
    return {std::string(url.substr(0, slash)), std::string(url.substr(slash + 1))};
  }
  if (url.starts_with("file://")) return {"file:///", std::string(url.substr(8))};
  return {std::string(url), ""};
}

std::string format_time(int64_t ns) {
  std::time_t t = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

class StdoutSink final : public ByteSink {
 public:
  explicit StdoutSink(uint64_t start) : next_(start) {}
  // Parts may arrive out of order from parallel GETs; `cat` reads one part at
  // a time (parallelism 1), so writes arrive in order and are checked.
  Status write_at(uint64_t offset, std::span<const std::byte> data) override {
    if (offset != next_) return Status::error(EIO, "internal error: out-of-order bytes for stdout");
    while (!data.empty()) {
      ssize_t n = ::write(STDOUT_FILENO, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::error(errno, std::string("writing to stdout: ") + errno_name(errno));
      }
      data = data.subspan(static_cast<size_t>(n));
      next_ += static_cast<uint64_t>(n);
    }
    return {};
  }

 private:
  uint64_t next_;
};

// As `aws s3 ls`: one level shows names relative to the listed directory,
// -r shows whole keys.
int do_ls(ObjectStore& store, const std::string& prefix, bool recursive) {
  ListRequest request;
  request.prefix = prefix;
  request.delimiter = recursive ? "" : "/";
  const size_t strip = recursive ? 0 : prefix.rfind('/') + 1;  // npos + 1 == 0
  do {
    auto page = store.list(request);
    if (!page.ok()) return fail("%s", page.status().message().c_str());
    for (const auto& p : page->common_prefixes) std::printf("%30s %s\n", "PRE", p.c_str() + strip);
    for (const auto& o : page->objects) {
      std::printf("%s %10llu %s\n", format_time(o.last_modified_ns).c_str(),
                  static_cast<unsigned long long>(o.size), o.key.c_str() + strip);
    }
    request.continuation = page->next_continuation;
  } while (!request.continuation.empty());
  return 0;
}

int do_stat(ObjectStore& store, const std::string& key) {
  auto info = store.head(key);
  if (!info.ok()) return fail("%s", info.status().message().c_str());
  std::printf("key:   %s\nsize:  %llu\netag:  %s\nmtime: %s%s\n", info->key.c_str(),
              static_cast<unsigned long long>(info->size), info->etag.c_str(), format_time(info->mtime_ns()).c_str(),
              info->meta_mtime_ns ? " (x-amz-meta-mtime)" : "");
  return 0;
}

int do_cat(ObjectStore& store, const std::string& key, const std::string& range) {
  GetRequest request;
  request.parallelism = 1;
  if (!range.empty()) {
    unsigned long long first = 0, end = 0;
    char extra = 0;
    if (std::sscanf(range.c_str(), "%llu-%llu%c", &first, &end, &extra) != 2 || end < first) {
      return fail("--range '%s': expected OFFSET-END with END >= OFFSET", range.c_str());
    }
    request.range = ByteRange::at(first, end - first);
  }
  StdoutSink sink(request.range.offset);
  auto result = store.get(key, request, sink);
  if (!result.ok()) return fail("%s", result.status().message().c_str());
  return 0;
}

}  // namespace

int cmd_store(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string verb = argv[1];
  bool recursive = false;
  std::string range, url;
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-r" && verb == "ls") {
      recursive = true;
    } else if (arg == "--range" && verb == "cat" && i + 1 < argc) {
      range = argv[++i];
    } else if (!arg.starts_with("-") && url.empty()) {
      url = arg;
    } else {
      std::fprintf(stderr, "dscache store: unexpected argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }
  if (url.empty() || (verb != "ls" && verb != "stat" && verb != "cat")) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  Target target = split(url);
  auto store = open_store(target.root, Env::process(), nullptr);
  if (!store.ok()) return fail("%s", store.status().message().c_str());
  if (verb == "ls") return do_ls(**store, target.key, recursive);
  if (target.key.empty()) return fail("%s: name an object, not a bucket", url.c_str());
  if (verb == "stat") return do_stat(**store, target.key);
  return do_cat(**store, target.key, range);
}

}  // namespace dscache::cli
