// store_bench: raw fetch-engine figures against a live S3 endpoint, for
// scripts/bench/store.sh. Prints one line per measurement:
//   large <key> parallelism=N part_mib=P runs=R median_s=S mib_s=X connections=C
//   small <prefix> count=N inflight=K runs=R median_s=S objects_s=X connections=C
// Credentials and endpoint come from the environment as for the AWS CLI.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "s3/s3_store.h"
#include "store/open_store.h"

using namespace dscache;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "store_bench: %s\n", message.c_str());
  std::exit(1);
}

std::unique_ptr<S3Store> open(const std::string& url, int inflight, uint64_t part_size, uint32_t parallelism) {
  auto settings = resolve_s3_settings(Env::process());
  if (!settings.ok()) die(settings.status().message());
  FetchEngineOptions engine_options = fetch_engine_options(*settings);
  engine_options.max_in_flight = inflight;
  S3StoreOptions options;
  options.part_size = part_size;
  options.parallelism = parallelism;
  auto store = S3Store::open(url, *settings, std::make_shared<FetchEngine>(engine_options), options);
  if (!store.ok()) die(store.status().message());
  return std::move(*store);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: store_bench large s3://bucket KEY [parallelism] [part_mib] [runs]\n"
                 "       store_bench small s3://bucket PREFIX COUNT [inflight] [runs]\n");
    return 2;
  }
  std::string mode = argv[1], url = argv[2], key = argv[3];
  if (mode == "large") {
    uint32_t parallelism = argc > 4 ? static_cast<uint32_t>(std::stoul(argv[4])) : 8;
    uint64_t part_mib = argc > 5 ? std::stoull(argv[5]) : 8;
    int runs = argc > 6 ? std::stoi(argv[6]) : 5;
    auto store = open(url, static_cast<int>(std::max<uint32_t>(parallelism, 1)), part_mib << 20, parallelism);
    auto info = store->head(key);
    if (!info.ok()) die(info.status().message());
    void* mem = ::mmap(nullptr, info->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) die("mmap failed");
    std::span<std::byte> buf(static_cast<std::byte*>(mem), info->size);
    std::memset(mem, 0, info->size);  // fault the pages in outside the timing
    std::vector<double> times;
    for (int i = 0; i < runs; ++i) {
      double t0 = now_s();
      auto r = store->read(key, 0, buf);
      if (!r.ok() || r->length != info->size) die(r.ok() ? "short read" : r.status().message());
      times.push_back(now_s() - t0);
    }
    double m = median(times);
    std::printf("large %s parallelism=%u part_mib=%llu runs=%d median_s=%.4f mib_s=%.1f connections=%llu\n",
                key.c_str(), parallelism, static_cast<unsigned long long>(part_mib), runs, m,
                static_cast<double>(info->size) / (1 << 20) / m,
                static_cast<unsigned long long>(store->engine().stats().connections));
    return 0;
  }
  if (mode == "small") {
    int count = std::stoi(argv[4]);
    int inflight = argc > 5 ? std::stoi(argv[5]) : 64;
    int runs = argc > 6 ? std::stoi(argv[6]) : 5;
    auto store = open(url, inflight, 8 << 20, 1);
    std::vector<std::string> keys;
    for (int i = 0; i < count; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "%05d", i);
      keys.push_back(key + name);
    }
    constexpr size_t kMax = 1 << 20;
    std::vector<std::byte> buffers(static_cast<size_t>(inflight) * kMax);
    std::vector<double> times;
    for (int run = 0; run < runs; ++run) {
      std::mutex mutex;
      std::condition_variable cv;
      int next = 0, running = 0, done = 0, failed = 0;
      std::vector<int> free_slots;
      for (int s = 0; s < inflight; ++s) free_slots.push_back(s);
      std::vector<std::unique_ptr<BufferSink>> sinks(static_cast<size_t>(inflight));
      double t0 = now_s();
      std::unique_lock lock(mutex);
      while (done < count) {
        // Keep `inflight` reads outstanding, as a loader with a fixed pool would.
        while (next < count && running < inflight) {
          int slot = free_slots.back();
          free_slots.pop_back();
          sinks[static_cast<size_t>(slot)] = std::make_unique<BufferSink>(
              std::span(buffers).subspan(static_cast<size_t>(slot) * kMax, kMax), 0);
          ++running;
          GetRequest request;
          request.range = ByteRange::at(0, kMax);
          std::string k = keys[static_cast<size_t>(next++)];
          lock.unlock();
          store->get_async(k, request, *sinks[static_cast<size_t>(slot)], Priority::demand,
                           [&, slot](Result<GetResult> r) {
                             std::lock_guard guard(mutex);
                             if (!r.ok()) {
                               if (failed++ == 0) std::fprintf(stderr, "store_bench: %s\n", r.status().message().c_str());
                             }
                             free_slots.push_back(slot);
                             --running;
                             ++done;
                             cv.notify_all();
                           });
          lock.lock();
        }
        cv.wait(lock, [&] { return done == count || (running < inflight && next < count); });
      }
      lock.unlock();
      if (failed > 0) die(std::to_string(failed) + " reads failed");
      times.push_back(now_s() - t0);
    }
    double m = median(times);
    std::printf("small %s count=%d inflight=%d runs=%d median_s=%.4f objects_s=%.1f connections=%llu\n", key.c_str(),
                count, inflight, runs, m, count / m,
                static_cast<unsigned long long>(store->engine().stats().connections));
    return 0;
  }
  die("unknown mode '" + mode + "'");
}
