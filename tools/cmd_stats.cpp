// dscache stats: the cache's counters, read straight from the shared index
// (no daemon round trip; works while the daemon is busy or gone). Rates are
// differences between two samples an interval apart.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cache/mirror.h"
#include "cli_common.h"
#include "commands.h"
#include "index/index_reader.h"

namespace dscache::cli {
namespace {

constexpr const char* kUsage =
    "usage: dscache stats [--watch] [--interval SECONDS] [--count N] [--json | --prometheus]\n\n"
    "The cache's counters per mount, read from the shared index of DSCACHE_CACHE_DIR:\n"
    "hit ratio, opens/s, bytes served/s and fetched/s, fetch latency p50/p99, fetches in\n"
    "flight, evictions, bytes served through (fetched for a reader but not kept: the cache\n"
    "is smaller than what is read), errors, time programs waited on the store, cache use\n"
    "vs capacity.\n"
    "Rates are over one interval (1 s). --watch prints a line per interval until\n"
    "interrupted (--count N: N lines); --json prints JSON (one object per line);\n"
    "--prometheus prints the cumulative counters in Prometheus' text format.\n";

// One mount's counters at one moment (plain copies of the atomics).
struct Sample {
  uint64_t mount_id = 0, hits = 0, misses = 0, bytes_served = 0, bytes_fetched = 0, objects_fetched = 0,
           in_flight = 0, evictions = 0, bytes_evicted = 0, errors = 0, listings = 0, wait_ns = 0, through_files = 0,
           through_bytes = 0, heads = 0;
  uint64_t latency[MountStats::kLatencyBuckets] = {};
};

Sample take(const MountStats& m) {
  Sample s;
  s.mount_id = m.mount_id.load();
  s.hits = m.hits.load();
  s.misses = m.misses.load();
  s.bytes_served = m.bytes_served.load();
  s.bytes_fetched = m.bytes_fetched.load();
  s.objects_fetched = m.objects_fetched.load();
  s.in_flight = m.fetches_in_flight.load();
  s.evictions = m.evictions.load();
  s.bytes_evicted = m.bytes_evicted.load();
  s.errors = m.errors.load();
  s.listings = m.listings.load();
  s.wait_ns = m.wait_ns.load();
  s.through_files = m.through_files.load();
  s.through_bytes = m.through_bytes.load();
  s.heads = m.heads.load();
  for (int i = 0; i < MountStats::kLatencyBuckets; ++i) s.latency[i] = m.fetch_latency[i].load();
  return s;
}

// The fetch latency (ms) below which fraction q of the fetches in `b - a` fell:
// the upper bound of the histogram bucket (powers of two); -1 without fetches.
double latency_quantile(const Sample& a, const Sample& b, double q) {
  uint64_t total = 0;
  for (int i = 0; i < MountStats::kLatencyBuckets; ++i) total += b.latency[i] - a.latency[i];
  if (total == 0) return -1;
  uint64_t seen = 0;
  for (int i = 0; i < MountStats::kLatencyBuckets; ++i) {
    seen += b.latency[i] - a.latency[i];
    if (static_cast<double>(seen) >= q * static_cast<double>(total)) return static_cast<double>(uint64_t{1} << (i + 1));
  }
  return static_cast<double>(uint64_t{1} << MountStats::kLatencyBuckets);
}

struct Row {
  std::string name;  // the mount's prefix, or its id when DSCACHE_MOUNTS does not name it
  Sample before, after;
};

std::string mount_name(const Config& config, uint64_t id) {
  for (int i = 0; i < config.mount_count; ++i) {
    if (config.mounts[i].id == id) return config.mounts[i].prefix;
  }
  char hex[24];
  std::snprintf(hex, sizeof hex, "mount-%016" PRIx64, id);
  return hex;
}

std::vector<Sample> sample_all(const IndexReader& index) {
  std::vector<Sample> out;
  for (const MountStats& m : index.stats().mounts) {
    if (m.mount_id.load() != 0) out.push_back(take(m));
  }
  return out;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out;
}

void print_table_header() {
  std::printf("%-24s %6s %8s %10s %10s %7s %7s %5s %7s %10s %5s %8s %s\n", "mount", "hit%", "opens/s", "served/s",
              "fetched/s", "p50 ms", "p99 ms", "infl", "evict/s", "through/s", "err", "wait/s", "cache use");
}


void print_rows(const std::vector<Row>& rows, double seconds, const MountStats& total, bool json) {
  const uint64_t cached = total.bytes_cached.load(), capacity = total.capacity_bytes.load();
  for (const Row& r : rows) {
    const Sample &a = r.before, &b = r.after;
    const uint64_t opens = (b.hits - a.hits) + (b.misses - a.misses);
    const double hit = opens == 0 ? -1 : 100.0 * static_cast<double>(b.hits - a.hits) / static_cast<double>(opens);
    const double p50 = latency_quantile(a, b, 0.5), p99 = latency_quantile(a, b, 0.99);
    const double per = 1.0 / seconds;
    if (json) {
      std::printf(
          "{\"mount\":\"%s\",\"interval_s\":%.3f,\"hit_ratio\":%s,\"opens_per_s\":%.1f,\"bytes_served_per_s\":%.0f,"
          "\"bytes_fetched_per_s\":%.0f,\"fetch_p50_ms\":%s,\"fetch_p99_ms\":%s,\"fetches_in_flight\":%" PRIu64
          ",\"evictions_per_s\":%.1f,\"errors\":%" PRIu64 ",\"wait_s_per_s\":%.3f,\"hits\":%" PRIu64
          ",\"misses\":%" PRIu64 ",\"bytes_served\":%" PRIu64 ",\"bytes_fetched\":%" PRIu64
          ",\"objects_fetched\":%" PRIu64 ",\"evictions\":%" PRIu64 ",\"listings\":%" PRIu64
          ",\"heads\":%" PRIu64 ",\"wait_s\":%.3f,\"through_files\":%" PRIu64 ",\"through_bytes\":%" PRIu64
          ",\"bytes_cached\":%" PRIu64 ",\"capacity_bytes\":%" PRIu64 "}\n",
          json_escape(r.name).c_str(), seconds, hit < 0 ? "null" : std::to_string(hit / 100).c_str(),
          static_cast<double>(opens) * per, static_cast<double>(b.bytes_served - a.bytes_served) * per,
          static_cast<double>(b.bytes_fetched - a.bytes_fetched) * per,
          p50 < 0 ? "null" : std::to_string(p50).c_str(), p99 < 0 ? "null" : std::to_string(p99).c_str(),
          b.in_flight, static_cast<double>(b.evictions - a.evictions) * per, b.errors - a.errors,
          static_cast<double>(b.wait_ns - a.wait_ns) * 1e-9 * per, b.hits, b.misses, b.bytes_served, b.bytes_fetched,
          b.objects_fetched, b.evictions, b.listings, b.heads, static_cast<double>(b.wait_ns) * 1e-9, b.through_files,
          b.through_bytes, cached, capacity);
      continue;
    }
    char hit_text[16], p50_text[16], p99_text[16];
    std::snprintf(hit_text, sizeof hit_text, hit < 0 ? "-" : "%.1f", hit);
    std::snprintf(p50_text, sizeof p50_text, p50 < 0 ? "-" : "<%.0f", p50);
    std::snprintf(p99_text, sizeof p99_text, p99 < 0 ? "-" : "<%.0f", p99);
    std::string use = human_bytes(static_cast<double>(cached)) +
                      (capacity != 0 ? " of " + human_bytes(static_cast<double>(capacity)) : std::string(" (free-space bound)"));
    std::printf("%-24s %6s %8.0f %10s %10s %7s %7s %5" PRIu64 " %7.1f %10s %5" PRIu64 " %8.2f %s\n", r.name.c_str(),
                hit_text, static_cast<double>(opens) * per,
                (human_bytes(static_cast<double>(b.bytes_served - a.bytes_served) * per)).c_str(),
                (human_bytes(static_cast<double>(b.bytes_fetched - a.bytes_fetched) * per)).c_str(), p50_text, p99_text,
                b.in_flight, static_cast<double>(b.evictions - a.evictions) * per,
                human_bytes(static_cast<double>(b.through_bytes - a.through_bytes) * per).c_str(), b.errors - a.errors,
                static_cast<double>(b.wait_ns - a.wait_ns) * 1e-9 * per, use.c_str());
  }
}

void print_prometheus(const std::vector<Row>& rows, const MountStats& total) {
  struct Metric {
    const char* name;
    const char* help;
    uint64_t Sample::*field;
  };
  const Metric metrics[] = {
      {"dscache_hits_total", "Opens served from complete cached files without waiting.", &Sample::hits},
      {"dscache_misses_total", "Opens that waited for a fetch.", &Sample::misses},
      {"dscache_served_bytes_total", "Bytes of files opened from the cache.", &Sample::bytes_served},
      {"dscache_fetched_bytes_total", "Bytes fetched from the object store.", &Sample::bytes_fetched},
      {"dscache_fetched_objects_total", "Objects (or ranges) fetched from the object store.",
       &Sample::objects_fetched},
      {"dscache_evictions_total", "Files evicted.", &Sample::evictions},
      {"dscache_evicted_bytes_total", "Bytes evicted.", &Sample::bytes_evicted},
      {"dscache_errors_total", "Fetches that failed.", &Sample::errors},
      {"dscache_listings_total", "Directory listings fetched.", &Sample::listings},
      {"dscache_heads_total", "HEAD requests made while listing (DSCACHE_MTIME=metadata).", &Sample::heads},
      {"dscache_through_files_total", "Files fetched for a reader and evicted first to keep the resident set.",
       &Sample::through_files},
      {"dscache_through_bytes_total",
       "Bytes fetched for readers and not kept (files served through, recycled blocks of files larger than the "
       "cache's room).",
       &Sample::through_bytes},
  };
  for (const Metric& m : metrics) {
    std::printf("# HELP %s %s\n# TYPE %s counter\n", m.name, m.help, m.name);
    for (const Row& r : rows) {
      std::printf("%s{mount=\"%s\"} %" PRIu64 "\n", m.name, json_escape(r.name).c_str(), r.after.*m.field);
    }
  }
  std::printf("# HELP dscache_wait_seconds_total Time programs spent waiting on the daemon.\n"
              "# TYPE dscache_wait_seconds_total counter\n");
  for (const Row& r : rows) {
    std::printf("dscache_wait_seconds_total{mount=\"%s\"} %.6f\n", json_escape(r.name).c_str(),
                static_cast<double>(r.after.wait_ns) * 1e-9);
  }
  std::printf("# HELP dscache_fetch_latency_milliseconds Fetch latency.\n"
              "# TYPE dscache_fetch_latency_milliseconds histogram\n");
  for (const Row& r : rows) {
    uint64_t cumulative = 0;
    for (int i = 0; i < MountStats::kLatencyBuckets; ++i) {
      cumulative += r.after.latency[i];
      if (i + 1 < MountStats::kLatencyBuckets) {
        std::printf("dscache_fetch_latency_milliseconds_bucket{mount=\"%s\",le=\"%llu\"} %" PRIu64 "\n",
                    json_escape(r.name).c_str(), 1ull << (i + 1), cumulative);
      }
    }
    std::printf("dscache_fetch_latency_milliseconds_bucket{mount=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                json_escape(r.name).c_str(), cumulative);
    std::printf("dscache_fetch_latency_milliseconds_count{mount=\"%s\"} %" PRIu64 "\n", json_escape(r.name).c_str(),
                cumulative);
  }
  std::printf("# HELP dscache_fetches_in_flight Fetches in flight.\n# TYPE dscache_fetches_in_flight gauge\n");
  for (const Row& r : rows) {
    std::printf("dscache_fetches_in_flight{mount=\"%s\"} %" PRIu64 "\n", json_escape(r.name).c_str(), r.after.in_flight);
  }
  std::printf("# HELP dscache_cached_bytes Bytes held in the cache.\n# TYPE dscache_cached_bytes gauge\n"
              "dscache_cached_bytes %" PRIu64 "\n",
              total.bytes_cached.load());
  std::printf("# HELP dscache_capacity_bytes The cache's capacity (0: bounded by free space).\n"
              "# TYPE dscache_capacity_bytes gauge\ndscache_capacity_bytes %" PRIu64 "\n",
              total.capacity_bytes.load());
}

}  // namespace

int cmd_stats(int argc, char** argv) {
  bool watch = false, json = false, prometheus = false;
  double interval = 1.0;
  long count = -1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--watch" || arg == "-w") {
      watch = true;
    } else if (arg == "--json") {
      json = true;
    } else if (arg == "--prometheus") {
      prometheus = true;
    } else if (arg == "--interval" && i + 1 < argc) {
      char* end = nullptr;
      interval = std::strtod(argv[++i], &end);
      if (*end != '\0' || !(interval >= 0.1 && interval <= 3600)) return fail("--interval: expected 0.1 to 3600 seconds");
    } else if (arg == "--count" && i + 1 < argc) {
      char* end = nullptr;
      count = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || count < 1) return fail("--count: expected a positive number");
      watch = true;
    } else {
      std::fprintf(stderr, "dscache stats: unexpected argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }
  if (json && prometheus) return fail("--json and --prometheus exclude each other");
  Config& config = global_config();
  if (!load_config(config)) return 1;
  CacheLayout layout(config.cache_dir);
  IndexReader index;
  if (int rc = index.open(layout.index_path().c_str()); rc != 0) {
    if (rc == -ENOENT) return fail("no cache in %s yet (no daemon has run there)", config.cache_dir);
    return fail("%s: %s", layout.index_path().c_str(), std::strerror(-rc));
  }
  if (index.retired()) return fail("%s was replaced by a newer daemon: run the command again", layout.index_path().c_str());
  const MountStats& total = index.stats().total;

  if (prometheus) {
    std::vector<Row> rows;
    for (const Sample& s : sample_all(index)) rows.push_back(Row{mount_name(config, s.mount_id), s, s});
    print_prometheus(rows, total);
    return 0;
  }
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  std::vector<Sample> before = sample_all(index);
  auto t0 = std::chrono::steady_clock::now();
  for (long line = 0; count < 0 || line < count; ++line) {
    std::this_thread::sleep_for(std::chrono::duration<double>(interval));
    std::vector<Sample> after = sample_all(index);
    auto t1 = std::chrono::steady_clock::now();
    std::vector<Row> rows;
    for (const Sample& b : after) {
      Sample a;
      a.mount_id = b.mount_id;
      for (const Sample& s : before) {
        if (s.mount_id == b.mount_id) a = s;
      }
      rows.push_back(Row{mount_name(config, b.mount_id), a, b});
    }
    if (!json && (line == 0 || (tty && line % 20 == 0))) print_table_header();
    if (rows.empty() && line == 0 && !json) std::printf("(no mount has been used in %s yet)\n", config.cache_dir);
    print_rows(rows, std::chrono::duration<double>(t1 - t0).count(), total, json);
    std::fflush(stdout);
    if (!watch) break;
    before = std::move(after);
    t0 = t1;
  }
  return 0;
}

}  // namespace dscache::cli
