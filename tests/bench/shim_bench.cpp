// The shim's costs, measured from a plain program (run it with and without
// LD_PRELOAD=libdscache.so; scripts/bench/shim.sh does both):
//
//   shim_bench read LISTFILE    open/fstat/read whole/close of every path in LISTFILE
//   shim_bench stat LISTFILE    stat of every path in LISTFILE
//   shim_bench loop PATH N      N x open+close and N x stat of PATH (a local file),
//                               through the program's bindings and straight into
//                               libc: the cost the shim adds to paths it does not map
//
// Prints one line of key=value pairs.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

double now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::vector<std::string> read_list(const char* path) {
  std::vector<std::string> paths;
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) {
    std::perror(path);
    std::exit(2);
  }
  char line[4096];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    size_t n = std::strlen(line);
    while (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
    if (n > 0) paths.emplace_back(line);
  }
  std::fclose(f);
  return paths;
}

int bench_read(const std::vector<std::string>& paths) {
  std::vector<char> buf(1 << 20);
  uint64_t bytes = 0;
  double start = now();
  for (const std::string& p : paths) {
    int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      std::perror(p.c_str());
      return 1;
    }
    struct stat st {};
    if (fstat(fd, &st) != 0) {
      std::perror("fstat");
      return 1;
    }
    size_t want = static_cast<size_t>(st.st_size);
    if (want > buf.size()) buf.resize(want);
    ssize_t got = read(fd, buf.data(), want);
    if (got != static_cast<ssize_t>(want)) {
      std::fprintf(stderr, "%s: short read %zd of %zu\n", p.c_str(), got, want);
      return 1;
    }
    bytes += static_cast<uint64_t>(got);
    close(fd);
  }
  double s = now() - start;
  std::printf("files=%zu bytes=%llu seconds=%.4f files_per_s=%.0f mib_per_s=%.1f\n", paths.size(),
              static_cast<unsigned long long>(bytes), s, static_cast<double>(paths.size()) / s,
              static_cast<double>(bytes) / s / 1048576.0);
  return 0;
}

int bench_stat(const std::vector<std::string>& paths) {
  double start = now();
  uint64_t total = 0;
  for (const std::string& p : paths) {
    struct stat st {};
    if (stat(p.c_str(), &st) != 0) {
      std::perror(p.c_str());
      return 1;
    }
    total += static_cast<uint64_t>(st.st_size);
  }
  double s = now() - start;
  std::printf("files=%zu bytes=%llu seconds=%.4f stats_per_s=%.0f ns_per_stat=%.0f\n", paths.size(),
              static_cast<unsigned long long>(total), s, static_cast<double>(paths.size()) / s,
              s * 1e9 / static_cast<double>(paths.size()));
  return 0;
}

// The same calls through the program's own bindings (the shim's, when it is
// preloaded) and straight into libc (dlopen'd, past any preload), interleaved
// in batches so both see the same machine: the difference is the shim's cost.
int bench_loop(const char* path, long n) {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  auto libc_open = reinterpret_cast<int (*)(const char*, int, ...)>(libc != nullptr ? dlsym(libc, "open") : nullptr);
  auto libc_close = reinterpret_cast<int (*)(int)>(libc != nullptr ? dlsym(libc, "close") : nullptr);
  auto libc_stat = reinterpret_cast<int (*)(const char*, struct stat*)>(libc != nullptr ? dlsym(libc, "stat") : nullptr);
  if (libc_open == nullptr || libc_close == nullptr || libc_stat == nullptr) {
    std::fprintf(stderr, "cannot find libc's open/close/stat: %s\n", dlerror());
    return 1;
  }
  constexpr long kBatch = 1000;
  double t_open = 0, t_open_libc = 0, t_stat = 0, t_stat_libc = 0;
  struct stat st {};
  for (long done = 0; done < n; done += kBatch) {
    double a = now();
    for (long i = 0; i < kBatch; ++i) close(open(path, O_RDONLY | O_CLOEXEC));
    double b = now();
    for (long i = 0; i < kBatch; ++i) libc_close(libc_open(path, O_RDONLY | O_CLOEXEC));
    double c = now();
    for (long i = 0; i < kBatch; ++i) stat(path, &st);
    double d = now();
    for (long i = 0; i < kBatch; ++i) libc_stat(path, &st);
    double e = now();
    t_open += b - a;
    t_open_libc += c - b;
    t_stat += d - c;
    t_stat_libc += e - d;
  }
  if (stat(path, &st) != 0) {
    std::perror(path);
    return 1;
  }
  const double calls = static_cast<double>(n);
  std::printf("calls=%ld open_close_ns=%.1f libc_open_close_ns=%.1f stat_ns=%.1f libc_stat_ns=%.1f "
              "added_open_close_ns=%.1f added_stat_ns=%.1f\n",
              n, t_open * 1e9 / calls, t_open_libc * 1e9 / calls, t_stat * 1e9 / calls, t_stat_libc * 1e9 / calls,
              (t_open - t_open_libc) * 1e9 / calls, (t_stat - t_stat_libc) * 1e9 / calls);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "read") == 0) return bench_read(read_list(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "stat") == 0) return bench_stat(read_list(argv[2]));
  if (argc == 4 && std::strcmp(argv[1], "loop") == 0) return bench_loop(argv[2], std::atol(argv[3]));
  std::fprintf(stderr, "usage: shim_bench read LISTFILE | stat LISTFILE | loop PATH N\n");
  return 2;
}
