// cache_bench: shuffled epochs through a running daemon, read as the shim
// will read: a complete file is a hit (no daemon round trip), anything else
// a fetch_object request. Prints the hit ratio of each epoch.
//   cache_bench epochs PATH EPOCHS SEED   (DSCACHE_* from the environment)
#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cache/mirror.h"
#include "config/config.h"
#include "index/index_key.h"
#include "index/index_reader.h"
#include "ipc/client.h"

using namespace dscache;

int main(int argc, char** argv) {
  if (argc != 5 || std::strcmp(argv[1], "epochs") != 0) {
    std::fprintf(stderr, "usage: cache_bench epochs PATH EPOCHS SEED\n");
    return 2;
  }
  static Config config;
  char error[512];
  if (!parse_config(config, [](const char* n) -> const char* { return std::getenv(n); }, error, sizeof error)) {
    std::fprintf(stderr, "%s\n", error);
    return 1;
  }
  const char* rel = nullptr;
  const MountConfig* mount = find_mount(config, argv[2], &rel);
  if (mount == nullptr) {
    std::fprintf(stderr, "%s is not under a mount\n", argv[2]);
    return 1;
  }
  std::string dir(rel);
  ipc::DaemonClient client;
  if (client.connect(config, std::getenv("DSCACHE_BIN"), 20000, error, sizeof error) != 0) {
    std::fprintf(stderr, "%s\n", error);
    return 1;
  }
  char text[1024];
  if (int rc = client.call(ipc::MessageType::ensure_listed, mount->id, dir.c_str(), 0, 0, 0, nullptr, text, sizeof text);
      rc != 0) {
    std::fprintf(stderr, "listing: %s\n", text);
    return 1;
  }
  CacheLayout layout(config.cache_dir);
  std::vector<std::string> files;
  if (DIR* d = ::opendir((layout.mount_dir(*mount) + "/" + dir).c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      if (e->d_type == DT_REG) files.push_back(dir + "/" + e->d_name);
    }
    ::closedir(d);
  }
  std::sort(files.begin(), files.end());
  IndexReader index;
  if (index.open(layout.index_path().c_str()) != 0) {
    std::fprintf(stderr, "cannot open the index\n");
    return 1;
  }
  std::mt19937 rng(static_cast<unsigned>(std::atoi(argv[4])));
  const int epochs = std::atoi(argv[3]);
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    std::shuffle(files.begin(), files.end(), rng);
    uint64_t hits = 0;
    auto start = std::chrono::steady_clock::now();
    for (const std::string& f : files) {
      SlotSnapshot s;
      uint64_t slot = 0;
      if (index.find(index_key(mount->id, f.data(), f.size()), s, &slot) == LookupResult::found &&
          s.state() == FileState::complete) {
        ++hits;
        index.touch(slot, std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count());
        continue;
      }
      if (int rc = client.call(ipc::MessageType::fetch_object, mount->id, f.c_str(), 0, 0, 0, nullptr, text,
                               sizeof text);
          rc != 0) {
        std::fprintf(stderr, "fetch %s: %s\n", f.c_str(), text);
        return 1;
      }
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("epoch=%d files=%zu hit_ratio=%.3f seconds=%.2f\n", epoch, files.size(),
                static_cast<double>(hits) / static_cast<double>(files.size()), seconds);
  }
  return 0;
}
