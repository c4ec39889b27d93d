// Readers of a large file that is still filling, in C where Python cannot
// do it (partial_test.py runs each under the shim):
//   partial_readers threads FILE KEY N      N threads read() one shared fd to its end
//   partial_readers signal FILE KEY OTHER OTHER_KEY
//                                           SIGALRM handlers pread OTHER while main reads FILE
//   partial_readers aio FILE KEY OFFSET LEN aio_read of a range
//   partial_readers execveat FILE           execveat(md5sum /dev/fd/N) with the fd inherited
// Every byte read is checked against the test data's generator (populate.py):
// prints "ok ..." or "WRONG ..." and exits 0 or 1.
#define _GNU_SOURCE
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

// populate.py's content(): splitmix64 of fnv1a64(key) + the word's index.
static uint64_t seed_of(const char* key) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char* p = (const unsigned char*)key; *p; ++p) {
    h ^= *p;
    h *= 0x100000001b3ULL;
  }
  return h;
}
static unsigned char byte_at(uint64_t seed, uint64_t offset) {
  uint64_t x = offset / 8 + seed + 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return (unsigned char)(x >> (8 * (offset % 8)));
}
// -1 if buf holds the bytes at offset, else the first wrong offset.
static int64_t first_wrong(uint64_t seed, uint64_t offset, const unsigned char* buf, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (buf[i] != byte_at(seed, offset + i)) return (int64_t)(offset + i);
  }
  return -1;
}

// ---- threads: concurrent read()s share the fd's offset ----------------------

enum { kChunk = 1 << 20, kMaxChunks = 4096 };
static int g_fd;
static uint64_t g_seed;
static unsigned char* g_seen;  // a chunk whose bytes were found, by index
static volatile int g_wrong, g_errors;

static void* read_chunks(void* unused) {
  (void)unused;
  unsigned char* buf = malloc(kChunk);
  for (;;) {
    ssize_t n = read(g_fd, buf, kChunk);
    if (n < 0) {
      __atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
      break;
    }
    if (n == 0) break;
    // Which chunk is it? Chunks are read whole (the file is a multiple of
    // 1 MiB): find the one whose first word matches.
    int found = -1;
    for (int c = 0; c < kMaxChunks && found < 0; ++c) {
      if (first_wrong(g_seed, (uint64_t)c * kChunk, buf, 8) < 0) found = c;
    }
    if (found < 0 || first_wrong(g_seed, (uint64_t)found * kChunk, buf, (size_t)n) >= 0) {
      __atomic_add_fetch(&g_wrong, 1, __ATOMIC_RELAXED);
    } else {
      __atomic_add_fetch(&g_seen[found], 1, __ATOMIC_RELAXED);
    }
  }
  free(buf);
  return NULL;
}

static int threads(const char* file, const char* key, int count) {
  g_seed = seed_of(key);
  g_fd = open(file, O_RDONLY);
  if (g_fd < 0) return perror(file), 1;
  struct stat st;
  fstat(g_fd, &st);
  int chunks = (int)(st.st_size / kChunk);
  g_seen = calloc(kMaxChunks, 1);
  pthread_t t[64];
  for (int i = 0; i < count; ++i) pthread_create(&t[i], NULL, read_chunks, NULL);
  for (int i = 0; i < count; ++i) pthread_join(t[i], NULL);
  int once = 0;
  for (int c = 0; c < chunks; ++c) once += g_seen[c] == 1;
  printf("%s threads %d: %d of %d chunks read exactly once, %d wrong, %d errors\n",
         once == chunks && g_wrong == 0 && g_errors == 0 ? "ok" : "WRONG", count, once, chunks, g_wrong, g_errors);
  return once == chunks && g_wrong == 0 && g_errors == 0 ? 0 : 1;
}

// ---- signal: a handler reads a partial file while main is inside the shim ----

static int h_fd;
static uint64_t h_seed;
static volatile long h_reads, h_wrong, h_errors, h_offset;
static unsigned char h_buf[65536];

static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  long off = (h_offset += 7L << 20) % (63L << 20);  // 9 blocks: fetched once, then present
  ssize_t n = pread(h_fd, h_buf, sizeof h_buf, off);
  if (n < 0) {
    h_errors++;
  } else if (first_wrong(h_seed, (uint64_t)off, h_buf, (size_t)n) >= 0) {
    h_wrong++;
  } else {
    h_reads++;
  }
  errno = saved;
}

static int signals(const char* file, const char* key, const char* other, const char* other_key) {
  uint64_t seed = seed_of(key);
  h_seed = seed_of(other_key);
  h_fd = open(other, O_RDONLY);
  if (h_fd < 0) return perror(other), 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval every = {{0, 300}, {0, 300}};
  setitimer(ITIMER_REAL, &every, NULL);
  static unsigned char buf[65536];
  long wrong = 0, errors = 0;
  for (int round = 0; round < 40; ++round) {
    int fd = open(file, O_RDONLY);
    if (fd < 0) {
      errors++;
      continue;
    }
    long off = ((long)round * 104729 * 8) % ((24L << 20) - (long)sizeof buf);
    ssize_t n = pread(fd, buf, sizeof buf, off);
    if (n < 0) {
      errors++;
    } else if (first_wrong(seed, (uint64_t)off, buf, (size_t)n) >= 0) {
      wrong++;
    }
    close(fd);
  }
  struct itimerval never = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &never, NULL);
  int ok = wrong == 0 && errors == 0 && h_wrong == 0 && h_errors == 0 && h_reads > 0;
  printf("%s signal: main %ld wrong %ld errors; handler %ld reads, %ld wrong, %ld errors\n", ok ? "ok" : "WRONG",
         wrong, errors, h_reads, h_wrong, h_errors);
  return ok ? 0 : 1;
}

// ---- aio ----------------------------------------------------------------------

static int aio(const char* file, const char* key, long offset, long length) {
  int fd = open(file, O_RDONLY);
  if (fd < 0) return perror(file), 1;
  char first[16];
  if (read(fd, first, sizeof first) != (ssize_t)sizeof first) return perror("read"), 1;
  unsigned char* buf = malloc((size_t)length);
  struct aiocb cb;
  memset(&cb, 0, sizeof cb);
  cb.aio_fildes = fd;
  cb.aio_buf = buf;
  cb.aio_nbytes = (size_t)length;
  cb.aio_offset = offset;
  if (aio_read(&cb) != 0) return perror("aio_read"), 1;
  const struct aiocb* list[1] = {&cb};
  while (aio_error(&cb) == EINPROGRESS) aio_suspend(list, 1, NULL);
  ssize_t n = aio_return(&cb);
  int64_t bad = n == length ? first_wrong(seed_of(key), (uint64_t)offset, buf, (size_t)n) : offset;
  printf("%s aio_read: %zd bytes, first wrong %lld\n", bad < 0 ? "ok" : "WRONG", n, (long long)bad);
  return bad < 0 ? 0 : 1;
}

// ---- execveat -----------------------------------------------------------------

static int exec_at(const char* file) {
  int fd = open(file, O_RDONLY);  // inherited: no O_CLOEXEC
  if (fd < 0) return perror(file), 1;
  char first[16];
  if (read(fd, first, sizeof first) != (ssize_t)sizeof first) return perror("read"), 1;
  char path[64];
  snprintf(path, sizeof path, "/dev/fd/%d", fd);
  char* const argv[] = {"md5sum", path, NULL};
  execveat(AT_FDCWD, "/usr/bin/md5sum", argv, environ, 0);
  perror("execveat");
  return 1;
}

int main(int argc, char** argv) {
  if (argc >= 5 && strcmp(argv[1], "threads") == 0) return threads(argv[2], argv[3], atoi(argv[4]));
  if (argc >= 6 && strcmp(argv[1], "signal") == 0) return signals(argv[2], argv[3], argv[4], argv[5]);
  if (argc >= 6 && strcmp(argv[1], "aio") == 0) return aio(argv[2], argv[3], atol(argv[4]), atol(argv[5]));
  if (argc >= 3 && strcmp(argv[1], "execveat") == 0) return exec_at(argv[2]);
  fprintf(stderr, "usage: see the comment at the top of partial_readers.c\n");
  return 2;
}
