// dscache warmup: the preloader. Fills the cache with everything under the
// given paths before a job needs it, in two phases:
//   1. list: every directory is listed through the daemon (in parallel, fanned
//      out over directories) and every file's size and cache state is read
//      from the mirror and the shared index. What is complete is skipped, so a
//      re-run resumes; a dataset larger than the cache is cut to what fits
//      before anything is fetched.
//   2. fetch: N requests in flight, marked as background traffic (a training
//      job's demand misses go first in the daemon's queues). Failures are
//      retried once at the end, then listed with their reasons.
// Ctrl-C stops between requests; the daemon finishes or drops its fills, and
// the cache stays consistent either way.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cache/mirror.h"
#include "cli_common.h"
#include "commands.h"
#include "index/index_key.h"
#include "index/index_reader.h"

namespace dscache::cli {
namespace {

constexpr const char* kUsage =
    "usage: dscache warmup [OPTIONS] PATH|s3://BUCKET/PREFIX...\n\n"
    "Fills the cache with every file under each PATH (a directory or file under a mount of\n"
    "DSCACHE_MOUNTS), or each URL under a mount's URL. What is already cached is skipped, so\n"
    "a re-run resumes. Warmup traffic yields to running jobs' reads.\n\n"
    "  --list FILE        also warm the paths or s3:// URLs in FILE, one per line (- for stdin);\n"
    "                     relative lines are taken relative to the first PATH (or the cwd)\n"
    "  --concurrency N    requests in flight (default 64)\n"
    "  --shard I/N        warm only this node's share: files whose path hashes to I mod N\n"
    "  --metadata-only    list directories only (the namespace); fetch no data\n"
    "  --check            report what fraction is cached; fetch nothing (exit 0 only if all is)\n"
    "  --evict            drop the cached bytes of every file instead (they stay listed)\n"
    "  --json             JSON lines: progress each second, then a summary (the default\n"
    "                     when stdout is not a terminal)\n"
    "  --progress-interval SECONDS   between progress lines (1)\n"
    "  --quiet            the summary line only\n\n"
    "Exit status: 0 when every file was warmed (or is cached, with --check), 1 otherwise,\n"
    "2 for a usage error, 130 when interrupted.\n";

struct Item {
  int mount;  // index into the configuration's mounts
  std::string rel;
  uint64_t size = 0;
  uint64_t cached = 0;  // bytes present before this run
  bool complete = false;
};

struct Failure {
  std::string path;
  std::string reason;
};

std::atomic<bool> g_interrupted{false};

void on_interrupt(int) { g_interrupted.store(true); }

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// "s3://bucket/prefix/key" under a mount's URL: that mount and the key's path.
bool resolve_url(const Config& config, const std::string& url, MountedPath& out) {
  for (int i = 0; i < config.mount_count; ++i) {
    std::string base = config.mounts[i].url;  // ends in '/' unless it is a bucket root
    std::string bare = base.ends_with("/") ? base.substr(0, base.size() - 1) : base;
    if (url == bare || url == base) {
      out.mount = &config.mounts[i];
      out.relative.clear();
      return true;
    }
    if (url.starts_with(base)) {
      out.mount = &config.mounts[i];
      out.relative = url.substr(base.size());
      while (out.relative.ends_with("/")) out.relative.pop_back();
      return true;
    }
  }
  fail("%s is not under the URL of any mount in DSCACHE_MOUNTS", url.c_str());
  return false;
}

// Progress and totals, shared by the workers and the reporter.
struct Progress {
  std::atomic<uint64_t> dirs{0}, files_listed{0}, bytes_listed{0};
  std::atomic<uint64_t> files_done{0}, bytes_done{0}, bytes_fetched{0}, files_failed{0};
  uint64_t files_total = 0, bytes_total = 0;
  std::atomic<bool> listing{true};
};

class Reporter {
 public:
  Reporter(const Progress& p, bool tty, bool json, bool quiet, double interval)
      : p_(p), tty_(tty), json_(json), quiet_(quiet), interval_(interval) {
    if (quiet_ || (!tty_ && !json_)) return;
    thread_ = std::thread([this] { run(); });
  }
  ~Reporter() { stop(); }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (tty_ && drawn_) std::fputs("\r\033[K", stdout);
    drawn_ = false;  // once: stop() runs again from the destructor
    std::fflush(stdout);
  }
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    const auto period = std::chrono::duration<double>(tty_ ? std::min(interval_, 0.5) : interval_);
    while (!cv_.wait_for(lock, period, [this] { return stopped_; })) draw();
  }
  void draw() {
    const double t = elapsed();
    const double rate = static_cast<double>(p_.bytes_fetched.load()) / std::max(t, 1e-3);
    if (json_) {
      std::printf("{\"event\":\"progress\",\"phase\":\"%s\",\"elapsed_s\":%.1f,\"dirs\":%" PRIu64
                  ",\"files_listed\":%" PRIu64 ",\"bytes_listed\":%" PRIu64 ",\"files_done\":%" PRIu64
                  ",\"bytes_done\":%" PRIu64 ",\"files_total\":%" PRIu64 ",\"bytes_total\":%" PRIu64
                  ",\"bytes_fetched\":%" PRIu64 ",\"rate_bytes_per_s\":%.0f,\"failures\":%" PRIu64 "}\n",
                  p_.listing.load() ? "list" : "fetch", t, p_.dirs.load(), p_.files_listed.load(), p_.bytes_listed.load(),
                  p_.files_done.load(), p_.bytes_done.load(), p_.files_total, p_.bytes_total, p_.bytes_fetched.load(),
                  rate, p_.files_failed.load());
    } else if (p_.listing.load()) {
      std::printf("\r\033[Klisting: %" PRIu64 " directories, %" PRIu64 " files, %s", p_.dirs.load(),
                  p_.files_listed.load(), human_bytes(static_cast<double>(p_.bytes_listed.load())).c_str());
    } else {
      const uint64_t left = p_.bytes_total - std::min(p_.bytes_total, p_.bytes_done.load());
      char eta[32] = "-";
      if (rate > 0) {
        const auto s = static_cast<uint64_t>(static_cast<double>(left) / rate);
        std::snprintf(eta, sizeof eta, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600, s / 60 % 60, s % 60);
      }
      std::printf("\r\033[Kwarmup: %" PRIu64 "/%" PRIu64 " files, %s/%s, %s/s, ETA %s%s", p_.files_done.load(),
                  p_.files_total, human_bytes(static_cast<double>(p_.bytes_done.load())).c_str(),
                  human_bytes(static_cast<double>(p_.bytes_total)).c_str(), human_bytes(rate).c_str(), eta,
                  p_.files_failed.load() > 0 ? (", " + std::to_string(p_.files_failed.load()) + " failed").c_str() : "");
    }
    drawn_ = true;
    std::fflush(stdout);
  }

  const Progress& p_;
  const bool tty_, json_, quiet_;
  const double interval_;
  bool drawn_ = false;
  bool stopped_ = false;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::thread thread_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Runs `work` on N threads, each with its own daemon connection, over a queue
// that work items may extend (directories add their children).
template <class T, class Work>
bool run_pool(const Config& config, int threads, std::deque<T> queue, Work work) {
  std::mutex mutex;
  std::condition_variable cv;
  int busy = 0;
  std::atomic<bool> connect_failed{false};
  auto worker = [&] {
    ipc::DaemonClient client;
    if (!connect_daemon(config, client)) {
      connect_failed.store(true);
      g_interrupted.store(true);
      cv.notify_all();
      return;
    }
    while (true) {
      T item;
      {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return !queue.empty() || busy == 0 || g_interrupted.load(); });
        if (queue.empty() || g_interrupted.load()) return;
        item = std::move(queue.front());
        queue.pop_front();
        ++busy;
      }
      std::vector<T> more;
      work(client, item, more);
      {
        std::lock_guard lock(mutex);
        for (T& m : more) queue.push_back(std::move(m));
        --busy;
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  return !connect_failed.load();
}

// The cache's room for this dataset: its capacity, or the file system's
// space less the share DSCACHE_FREE_SPACE_RATIO keeps free.
uint64_t cache_room(const Config& config) {
  if (config.cache_size != 0) return config.cache_size;
  struct statvfs vfs {};
  if (::statvfs(config.cache_dir, &vfs) != 0) return UINT64_MAX;
  const double total = static_cast<double>(vfs.f_blocks) * static_cast<double>(vfs.f_frsize);
  const double avail = static_cast<double>(vfs.f_bavail) * static_cast<double>(vfs.f_frsize);
  return static_cast<uint64_t>(std::max(0.0, avail - total * config.free_space_ratio));
}

}  // namespace

int cmd_warmup(int argc, char** argv) {
  int concurrency = 64;
  bool metadata_only = false, check = false, evict = false, quiet = false;
  int json = -1;  // -1: JSON when stdout is not a terminal
  uint64_t shard = 0, shards = 1;
  double progress_interval = 1.0;
  std::vector<std::string> args, list_files;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "dscache warmup: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--concurrency" || arg == "-j") {
      char* end = nullptr;
      long n = std::strtol(value("--concurrency"), &end, 10);
      if (*end != '\0' || n < 1 || n > 1024) return fail("--concurrency: expected 1 to 1024");
      concurrency = static_cast<int>(n);
    } else if (arg == "--shard") {
      const char* v = value("--shard");
      unsigned long long a = 0, b = 0;
      char tail = 0;
      if (std::sscanf(v, "%llu/%llu%c", &a, &b, &tail) != 2 || b == 0 || a >= b) {
        return fail("--shard '%s': expected I/N with 0 <= I < N (this node's index and the node count)", v);
      }
      shard = a;
      shards = b;
    } else if (arg == "--list") {
      list_files.push_back(value("--list"));
    } else if (arg == "--metadata-only") {
      metadata_only = true;
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "--evict") {
      evict = true;
    } else if (arg == "--json") {
      json = 1;
    } else if (arg == "--quiet" || arg == "-q") {
      quiet = true;
    } else if (arg == "--progress-interval") {
      char* end = nullptr;
      progress_interval = std::strtod(value("--progress-interval"), &end);
      if (*end != '\0' || !(progress_interval >= 0.01 && progress_interval <= 3600)) {
        return fail("--progress-interval: expected 0.01 to 3600 seconds");
      }
    } else if (!arg.starts_with("-") || arg == "-") {
      args.push_back(arg);
    } else {
      std::fprintf(stderr, "dscache warmup: unexpected argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }
  if (check + evict + metadata_only > 1) return fail("--check, --evict and --metadata-only exclude each other");
  Config& config = global_config();
  if (!load_config(config)) return 1;
  // --list lines join the arguments; relative ones are under the first PATH.
  for (const std::string& file : list_files) {
    std::ifstream in_file;
    std::istream* in = &std::cin;
    if (file != "-") {
      in_file.open(file);
      if (!in_file) return fail("--list %s: %s", file.c_str(), std::strerror(errno));
      in = &in_file;
    }
    const std::string base = args.empty() ? "" : args.front();
    std::string line;
    while (std::getline(*in, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (line.empty() || line[0] == '#') continue;
      if (line[0] == '/' || line.starts_with("s3://") || base.empty()) {
        args.push_back(line);
      } else {
        args.push_back(base + (base.ends_with("/") ? "" : "/") + line);
      }
    }
  }
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  const bool as_json = json == 1 || (json == -1 && !tty);
  const CacheLayout layout(config.cache_dir);

  // Resolve the arguments; a file's parent is listed to learn that it is one.
  struct Root {
    int mount;
    std::string rel;
    bool directory;
  };
  std::deque<Root> roots;
  std::vector<Failure> missing;
  std::vector<Item> items;
  std::mutex items_mutex;
  {
    ipc::DaemonClient client;
    if (!connect_daemon(config, client)) return 1;
    char text[ipc::kMaxReplyText];
    for (const std::string& a : args) {
      MountedPath mp;
      if (a.starts_with("s3://") ? !resolve_url(config, a, mp) : !resolve_mounted(config, a, mp)) return 1;
      const int mount = static_cast<int>(mp.mount - config.mounts);
      if (mp.relative.empty()) {
        roots.push_back(Root{mount, "", true});
        continue;
      }
      std::string parent(parent_of(mp.relative));
      std::string reason;
      int rc = request(config, client, ipc::MessageType::ensure_listed, *mp.mount, parent, ipc::kFlagBackground, reason);
      if (rc == EIO && !client.connected()) return fail("%s: %s", a.c_str(), reason.c_str());
      std::snprintf(text, sizeof text, "%s", reason.c_str());
      struct stat st {};
      if (rc == 0 && ::lstat((layout.mount_dir(*mp.mount) + "/" + mp.relative).c_str(), &st) != 0) {
        rc = ENOENT;
        std::snprintf(text, sizeof text, "no such file or directory in %.900s", mp.mount->url);
      }
      if (rc != 0) {
        // One bad line of a long --list is reported with the other failures.
        missing.push_back(Failure{a, text});
        continue;
      }
      roots.push_back(Root{mount, mp.relative, S_ISDIR(st.st_mode)});
    }
  }

  Progress progress;
  Reporter reporter(progress, tty && !as_json, as_json, quiet, progress_interval);
  std::vector<Failure> failures = missing;
  std::mutex failures_mutex;
  auto add_item = [&](int mount, std::string rel, uint64_t size) {
    if (shards > 1) {
      const IndexKey key = index_key(config.mounts[mount].id, rel.data(), rel.size());
      if (key.lo % shards != shard) return;
    }
    progress.files_listed.fetch_add(1);
    progress.bytes_listed.fetch_add(size);
    std::lock_guard lock(items_mutex);
    items.push_back(Item{mount, std::move(rel), size});
  };

  // Phase 1: list.
  std::deque<Root> dirs;
  for (Root& r : roots) {
    if (r.directory) {
      dirs.push_back(r);
    } else {
      struct stat st {};
      ::stat((layout.mount_dir(config.mounts[r.mount]) + "/" + r.rel).c_str(), &st);
      add_item(r.mount, r.rel, static_cast<uint64_t>(st.st_size));
    }
  }
  bool ok = run_pool(config, concurrency, std::move(dirs), [&](ipc::DaemonClient& client, Root& dir, std::vector<Root>& more) {
    const MountConfig& m = config.mounts[dir.mount];
    const std::string shown = std::string(m.prefix) + (dir.rel.empty() ? "" : "/" + dir.rel);
    std::string reason;
    if (request(config, client, ipc::MessageType::ensure_listed, m, dir.rel, ipc::kFlagBackground, reason) != 0) {
      std::lock_guard lock(failures_mutex);
      failures.push_back(Failure{shown, reason});
      return;
    }
    progress.dirs.fetch_add(1);
    const std::string mirror = layout.mount_dir(m) + (dir.rel.empty() ? "" : "/" + dir.rel);
    DIR* d = ::opendir(mirror.c_str());
    if (d == nullptr) {
      std::lock_guard lock(failures_mutex);
      failures.push_back(Failure{shown, std::strerror(errno)});
      return;
    }
    while (struct dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string child = dir.rel.empty() ? std::string(name) : dir.rel + "/" + std::string(name);
      struct stat st {};
      if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        more.push_back(Root{dir.mount, std::move(child), true});
      } else if (S_ISREG(st.st_mode)) {
        add_item(dir.mount, std::move(child), static_cast<uint64_t>(st.st_size));
      }
    }
    ::closedir(d);
  });
  if (!ok) {
    reporter.stop();
    return 1;
  }

  IndexReader index;
  index.open(layout.index_path().c_str());
  uint64_t cached_files = 0, bytes_cached = 0;
  for (Item& item : items) {
    item.cached = cached_bytes(index, config.mounts[item.mount], item.rel, item.size, &item.complete);
    cached_files += item.complete ? 1 : 0;
    bytes_cached += item.cached;
  }
  uint64_t total_bytes = 0;
  for (const Item& item : items) total_bytes += item.size;
  progress.files_total = items.size();
  progress.bytes_total = total_bytes;
  progress.listing.store(false);

  auto summary_json = [&](const char* event, double seconds, const std::string& extra) {
    std::printf("{\"event\":\"%s\",\"elapsed_s\":%.2f,\"dirs\":%" PRIu64 ",\"files\":%zu,\"bytes\":%" PRIu64
                ",\"files_cached_before\":%" PRIu64 ",\"bytes_cached_before\":%" PRIu64 "%s,\"failures\":%zu}\n",
                event, seconds, progress.dirs.load(), items.size(), total_bytes, cached_files, bytes_cached,
                extra.c_str(), failures.size());
  };
  auto print_failures = [&] {
    // On stderr always (one line each, for people and logs); as events too in JSON.
    for (const Failure& f : failures) {
      // The daemon's reasons mostly name the file already: say it once.
      std::string_view reason = f.reason;
      if (reason.starts_with(f.path + ": ")) reason.remove_prefix(f.path.size() + 2);
      if (as_json) {
        std::printf("{\"event\":\"failed\",\"path\":%s,\"error\":%s}\n", json_string(f.path).c_str(),
                    json_string(std::string(reason)).c_str());
      }
      std::fprintf(stderr, "dscache %s: failed: %s: %.*s\n", evict ? "evict" : "warmup", f.path.c_str(),
                   static_cast<int>(reason.size()), reason.data());
    }
  };

  if (metadata_only || check) {
    reporter.stop();
    const double seconds = reporter.elapsed();
    const double share = total_bytes == 0 ? 1.0 : static_cast<double>(bytes_cached) / static_cast<double>(total_bytes);
    if (as_json) {
      char extra[96];
      std::snprintf(extra, sizeof extra, ",\"cached_fraction\":%.6f", share);
      summary_json(check ? "check" : "listed", seconds, extra);
    } else if (check) {
      std::printf("check: %zu files, %s: %" PRIu64 " files complete, %s cached (%.1f%%)\n", items.size(),
                  human_bytes(static_cast<double>(total_bytes)).c_str(), cached_files,
                  human_bytes(static_cast<double>(bytes_cached)).c_str(), 100 * share);
    } else {
      std::printf("warmup: listed %" PRIu64 " directories, %zu files, %s in %.1f s (metadata only)\n",
                  progress.dirs.load(), items.size(), human_bytes(static_cast<double>(total_bytes)).c_str(), seconds);
    }
    print_failures();
    if (!failures.empty()) return 1;
    return check && cached_files < items.size() ? 1 : 0;
  }

  // Phase 2: fetch (or evict).
  std::deque<size_t> todo;
  uint64_t skipped_files = 0, skipped_bytes = 0;
  if (evict) {
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].cached > 0) todo.push_back(i);
    }
  } else {
    // More than fits: warm what fits (in listing order) and say so, rather
    // than evict the first files to make room for the last.
    // A large file's fill reserves whole blocks: plan with what it reserves,
    // and leave a tenth for other fills and metadata.
    const uint64_t room = cache_room(config);
    const uint64_t limit = room == UINT64_MAX ? room : room / 10 * 9;
    auto charged = [&](uint64_t size) {
      return size <= config.whole_file_max ? size : (size + config.block_size - 1) / config.block_size * config.block_size;
    };
    uint64_t used = 0;
    for (const Item& item : items) used += item.complete ? charged(item.size) : 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].complete) continue;
      if (limit != UINT64_MAX && used + charged(items[i].size) > limit) {
        ++skipped_files;
        skipped_bytes += items[i].size;
        continue;
      }
      used += charged(items[i].size);
      todo.push_back(i);
    }
    if (skipped_files > 0) {
      std::fprintf(stderr,
                   "dscache warmup: the data (%s in %zu files) is larger than the cache (%s, %s): warming %s "
                   "that fits; %" PRIu64 " files (%s) are left to be fetched on demand\n",
                   human_bytes(static_cast<double>(total_bytes)).c_str(), items.size(),
                   human_bytes(static_cast<double>(room)).c_str(),
                   config.cache_size != 0 ? "DSCACHE_CACHE_SIZE" : "free space less DSCACHE_FREE_SPACE_RATIO",
                   human_bytes(static_cast<double>(total_bytes - skipped_bytes)).c_str(), skipped_files,
                   human_bytes(static_cast<double>(skipped_bytes)).c_str());
    }
  }
  progress.files_done.store(evict ? 0 : cached_files);
  progress.bytes_done.store(evict ? 0 : bytes_cached);

  // Failures so far (missing arguments, listings) stay; fetch failures may clear on the second pass.
  const std::vector<Failure> listing_failures = failures;
  std::vector<size_t> failed_items;
  auto fetch = [&](ipc::DaemonClient& client, size_t& index_of, std::vector<size_t>&) {
    Item& item = items[index_of];
    const MountConfig& m = config.mounts[item.mount];
    std::string reason;
    int rc = request(config, client, evict ? ipc::MessageType::evict : ipc::MessageType::complete_file, m, item.rel,
                     ipc::kFlagBackground, reason);
    if (rc != 0) {
      std::lock_guard lock(failures_mutex);
      failed_items.push_back(index_of);
      failures.push_back(Failure{std::string(m.prefix) + "/" + item.rel, reason});
      progress.files_failed.fetch_add(1);
      return;
    }
    progress.files_done.fetch_add(1);
    progress.bytes_done.fetch_add(evict ? item.cached : item.size - item.cached);
    if (!evict) progress.bytes_fetched.fetch_add(item.size - item.cached);
  };
  ok = run_pool(config, concurrency, todo, fetch);
  if (ok && !failed_items.empty() && !g_interrupted.load()) {
    // A second pass over what failed (the store's retries were already spent
    // on each): transient trouble often clears; what fails again is reported.
    std::deque<size_t> again(failed_items.begin(), failed_items.end());
    failed_items.clear();
    failures = listing_failures;
    progress.files_failed.store(0);
    ok = run_pool(config, std::min<int>(concurrency, 8), std::move(again), fetch);
  }
  reporter.stop();
  const double seconds = reporter.elapsed();
  const bool interrupted = g_interrupted.load();
  const uint64_t fetched = progress.bytes_fetched.load();
  if (as_json) {
    char extra[256];
    std::snprintf(extra, sizeof extra,
                  ",\"files_done\":%" PRIu64 ",\"bytes_done\":%" PRIu64 ",\"bytes_fetched\":%" PRIu64
                  ",\"rate_bytes_per_s\":%.0f,\"files_skipped_no_room\":%" PRIu64 ",\"interrupted\":%s",
                  progress.files_done.load(), progress.bytes_done.load(), fetched,
                  static_cast<double>(fetched) / std::max(seconds, 1e-3), skipped_files, interrupted ? "true" : "false");
    summary_json(evict ? "evicted" : "done", seconds, extra);
  } else if (evict) {
    std::printf("evict: %" PRIu64 " files, %s dropped from the cache in %.1f s%s\n", progress.files_done.load(),
                human_bytes(static_cast<double>(progress.bytes_done.load())).c_str(), seconds,
                interrupted ? " (interrupted)" : "");
  } else {
    std::printf("warmup: %" PRIu64 " of %zu files, %s of %s in %.1f s (%s/s, %.0f files/s); %" PRIu64
                " were cached already; %zu failed%s\n",
                progress.files_done.load(), items.size(), human_bytes(static_cast<double>(progress.bytes_done.load())).c_str(),
                human_bytes(static_cast<double>(total_bytes)).c_str(), seconds,
                human_bytes(static_cast<double>(fetched) / std::max(seconds, 1e-3)).c_str(),
                static_cast<double>(progress.files_done.load() - cached_files) / std::max(seconds, 1e-3), cached_files,
                failures.size(), interrupted ? " (interrupted: run it again to resume)" : "");
  }
  print_failures();
  std::fflush(stdout);
  if (interrupted) return 130;
  return ok && failures.empty() && skipped_files == 0 ? 0 : 1;
}

}  // namespace dscache::cli
