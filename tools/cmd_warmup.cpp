// dscache warmup: fills the cache with everything under the given paths
// before a job needs it. (This is the first version: the full preloader with
// progress, shards, --check and --json comes with the CLI issue.)
#include <dirent.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cache/mirror.h"
#include "cli_common.h"
#include "commands.h"

namespace dscache::cli {
namespace {

constexpr const char* kUsage =
    "usage: dscache warmup [--concurrency N] [--metadata-only] PATH...\n\n"
    "Lists and fetches everything under PATH (a directory or a file under a mount in\n"
    "DSCACHE_MOUNTS) into the cache. --metadata-only lists directories only.\n";

struct Work {
  const MountConfig* mount;
  std::string path;
  bool directory;
};

}  // namespace

int cmd_warmup(int argc, char** argv) {
  int concurrency = 16;
  bool metadata_only = false;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--concurrency" && i + 1 < argc) {
      concurrency = std::atoi(argv[++i]);
      if (concurrency < 1 || concurrency > 1024) return fail("--concurrency: expected 1 to 1024");
    } else if (arg == "--metadata-only") {
      metadata_only = true;
    } else if (!arg.starts_with("-")) {
      paths.push_back(arg);
    } else {
      std::fprintf(stderr, "dscache warmup: unexpected argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }
  if (paths.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  Config& config = global_config();
  if (!load_config(config)) return 1;
  CacheLayout layout(config.cache_dir);

  std::mutex mutex;
  std::deque<Work> queue;
  int busy = 0;
  std::atomic<uint64_t> files{0}, bytes{0}, failures{0};
  for (const std::string& p : paths) {
    MountedPath mp;
    if (!resolve_mounted(config, p, mp)) return 1;
    // Whether it is a file or a directory: its parent's listing says.
    ipc::DaemonClient client;
    if (!connect_daemon(config, client)) return 1;
    char text[2048];
    std::string parent(parent_of(mp.relative));
    bool is_dir = mp.relative.empty();
    if (!is_dir) {
      int rc = client.call(ipc::MessageType::ensure_listed, mp.mount->id, parent.c_str(), 0, 0, 0, nullptr, text,
                           sizeof text);
      if (rc != 0) return fail("%s", rc < 0 ? std::strerror(-rc) : text);
      struct stat st {};
      std::string mirror = layout.mount_dir(*mp.mount) + "/" + mp.relative;
      if (::stat(mirror.c_str(), &st) != 0) return fail("%s: no such file or directory", p.c_str());
      is_dir = S_ISDIR(st.st_mode);
    }
    queue.push_back(Work{mp.mount, mp.relative, is_dir});
  }

  auto started = std::chrono::steady_clock::now();
  std::condition_variable cv;
  auto worker = [&] {
    ipc::DaemonClient client;
    if (!connect_daemon(config, client)) {
      failures.fetch_add(1);
      return;
    }
    char text[2048];
    while (true) {
      Work work;
      {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return !queue.empty() || busy == 0; });
        if (queue.empty()) return;
        work = std::move(queue.front());
        queue.pop_front();
        ++busy;
      }
      std::vector<Work> more;
      if (work.directory) {
        int rc = client.call(ipc::MessageType::ensure_listed, work.mount->id, work.path.c_str(), 0, 0,
                             ipc::kFlagBackground, nullptr, text, sizeof text);
        if (rc != 0) {
          std::fprintf(stderr, "dscache warmup: %s\n", rc < 0 ? std::strerror(-rc) : text);
          failures.fetch_add(1);
        } else {
          std::string dir = layout.mount_dir(*work.mount) + (work.path.empty() ? "" : "/" + work.path);
          if (DIR* d = ::opendir(dir.c_str())) {
            while (struct dirent* e = ::readdir(d)) {
              std::string_view name = e->d_name;
              if (name == "." || name == "..") continue;
              std::string child = work.path.empty() ? std::string(name) : work.path + "/" + std::string(name);
              bool is_dir = e->d_type == DT_DIR;
              if (is_dir || !metadata_only) more.push_back(Work{work.mount, child, is_dir});
            }
            ::closedir(d);
          }
        }
      } else {
        int rc = client.call(ipc::MessageType::complete_file, work.mount->id, work.path.c_str(), 0, 0,
                             ipc::kFlagBackground, nullptr, text, sizeof text);
        if (rc != 0) {
          std::fprintf(stderr, "dscache warmup: %s\n", rc < 0 ? std::strerror(-rc) : text);
          failures.fetch_add(1);
          if (rc < 0) connect_daemon(config, client);
        } else {
          struct stat st {};
          if (::stat((layout.mount_dir(*work.mount) + "/" + work.path).c_str(), &st) == 0) {
            bytes.fetch_add(static_cast<uint64_t>(st.st_size));
          }
          files.fetch_add(1);
        }
      }
      {
        std::lock_guard lock(mutex);
        for (Work& w : more) queue.push_back(std::move(w));
        --busy;
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < concurrency; ++i) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("warmup: %llu files, %.1f MiB in %.1f s (%.1f MiB/s), %llu failures\n",
              static_cast<unsigned long long>(files.load()), static_cast<double>(bytes.load()) / (1 << 20), seconds,
              static_cast<double>(bytes.load()) / (1 << 20) / std::max(seconds, 1e-9),
              static_cast<unsigned long long>(failures.load()));
  return failures.load() == 0 ? 0 : 1;
}

}  // namespace dscache::cli
