// index_bench: the shared index's lookup cost and size, for scripts/bench/cache.sh.
//   index_bench DIR ENTRIES...   (one line per entry count)
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "index/index_writer.h"

using namespace dscache;

namespace {

double now_ns() {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

std::string path_of(uint64_t i) {
  return "train/n" + std::to_string(10000000 + i % 1000) + "/img_" + std::to_string(i) + ".JPEG";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: index_bench DIR ENTRIES...\n");
    return 2;
  }
  for (int a = 2; a < argc; ++a) {
    const uint64_t n = std::strtoull(argv[a], nullptr, 10);
    std::string path = std::string(argv[1]) + "/index-" + std::to_string(n);
    ::unlink(path.c_str());
    auto opened = IndexWriter::open(path, uint64_t{1} << 24, 4 << 20, nullptr);
    if (!opened.ok()) {
      std::fprintf(stderr, "%s\n", opened.status().message().c_str());
      return 1;
    }
    IndexWriter& w = **opened;
    double t0 = now_ns();
    for (uint64_t i = 0; i < n; ++i) {
      std::string p = path_of(i);
      SlotSnapshot s;
      s.key = index_key(1, p.data(), p.size());
      s.size = 110'000;
      s.meta = SlotMeta::make(SlotKind::file, FileState::complete, false, 0);
      if (!w.upsert(s).ok()) return 1;
    }
    double insert_ns = (now_ns() - t0) / static_cast<double>(n);

    IndexReader reader;
    if (reader.open(path.c_str()) != 0) return 1;
    std::mt19937_64 rng(1);
    const int lookups = 2'000'000;
    std::vector<std::string> hits, misses;
    for (int i = 0; i < 4096; ++i) {
      hits.push_back(path_of(rng() % n));
      misses.push_back("train/absent/" + std::to_string(rng()));
    }
    // Key hashing included: that is what the shim pays per open().
    auto bench = [&](const std::vector<std::string>& keys, LookupResult want) {
      uint64_t found = 0;
      double start = now_ns();
      for (int i = 0; i < lookups; ++i) {
        const std::string& p = keys[static_cast<size_t>(i) & 4095];
        SlotSnapshot s;
        found += reader.find(index_key(1, p.data(), p.size()), s, nullptr) == want ? 1 : 0;
      }
      double per = (now_ns() - start) / lookups;
      return found == static_cast<uint64_t>(lookups) ? per : -1.0;
    };
    double hit_ns = bench(hits, LookupResult::found);
    double miss_ns = bench(misses, LookupResult::not_found);
    // Cold-ish: a different key every time, spread over the whole index.
    double start = now_ns();
    uint64_t cold_found = 0;
    for (int i = 0; i < lookups / 4; ++i) {
      std::string p = path_of(rng() % n);
      SlotSnapshot s;
      cold_found += reader.find(index_key(1, p.data(), p.size()), s, nullptr) == LookupResult::found ? 1 : 0;
    }
    double random_ns = (now_ns() - start) / (lookups / 4);

    const IndexHeader& h = w.header();
    uint64_t logical = h.slots_used.load() * sizeof(IndexSlot) + (h.directory_mask.load() + 1) * 8;
    struct stat st {};
    ::stat(path.c_str(), &st);
    uint64_t physical = static_cast<uint64_t>(st.st_blocks) * 512;
    std::printf(
        "entries=%llu insert_ns=%.0f lookup_hit_ns=%.0f lookup_miss_ns=%.0f lookup_random_ns=%.0f "
        "bytes_per_entry=%.0f disk_bytes_per_entry=%.0f random_found=%llu\n",
        static_cast<unsigned long long>(n), insert_ns, hit_ns, miss_ns, random_ns,
        static_cast<double>(logical) / static_cast<double>(n), static_cast<double>(physical) / static_cast<double>(n),
        static_cast<unsigned long long>(cold_found));
    reader.close();
    ::unlink(path.c_str());
  }
  return 0;
}
