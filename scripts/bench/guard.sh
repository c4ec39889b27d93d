#!/usr/bin/env bash
# Kernel guard benchmark (fanotify pre-content, cache/content_guard.h), in one
# run against radosgw on loopback, with DSCACHE_KERNEL_GUARD=on and =off:
#   - warm reads of a complete 1 GiB file through libdscache.so: sequential
#     (1 MiB reads, 3 passes) and random (4 KiB preads); a complete file is
#     unmarked, so the goal is ≥ 0.98× of the guard off;
#   - cold reads of the same object into a fresh cache through libdscache.so:
#     sequential (1 MiB reads) and random (64 KiB preads), where the daemon's
#     writes and the shim's reads of the partial file go through the guard;
#   - a warmup of the object into a fresh cache (the daemon's writes to a
#     marked file raise events too, answered at once by pid);
#   - with the guard on only: the same cold reads by a program without the
#     shim, reading the mirror file directly (with the guard off it reads
#     zeros), and the cost of one 4 KiB pread of a range already present in a
#     partial (marked) file against the same pread once the file is complete.
# The cache is on the root file system (tmpfs has no pre-content events).
# Runs alternate on/off, RUNS times each (warm reads 3 times per run); medians and ratios.
#   scripts/bench/guard.sh        (RUNS=3 RANDOM_READS=300 by default; BUILD_DIR=build)
# Prints a Markdown table; paste it into docs/benchmarks.md. Needs root (CAP_SYS_ADMIN).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
RANDOM_READS=${RANDOM_READS:-300}
WARM_RANDOM_READS=${WARM_RANDOM_READS:-100000}
build=${BUILD_DIR:-build}

scripts/build.sh --dir "$build" >/dev/null
bin=$PWD/$build/tools/dscache
lib=$PWD/$build/shim/libdscache.so
work=$(mktemp -d /var/tmp/dscache-guardbench-XXXXXX)
cleanup() {
  for d in "$work"/c-*; do
    [ -d "$d" ] || continue
    DSCACHE_CACHE_DIR=$d "$bin" daemon --stop >/dev/null 2>&1 || true
    stop_keeper "$d"
  done
  scripts/s3-server.sh stop --dir "$work/s3" >/dev/null 2>&1 || true
  rm -rf "$work"
}
# A daemon that stopped with a file still partial leaves its guard keeper.
stop_keeper() {
  local pid
  pid=$(cat "$1/run/guard-keeper.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && grep -q __guard-keeper "/proc/$pid/cmdline" 2>/dev/null; then kill "$pid"; fi
}
trap cleanup EXIT

cat >"$work/readbench.c" <<'C'
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
/* readbench seq FILE BLOCK PASSES | rand FILE LEN COUNT | same FILE LEN COUNT: prints "bytes seconds". */
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char** argv) {
  int fd = open(argv[2], O_RDONLY);
  if (fd < 0) { perror(argv[2]); return 1; }
  off_t size = lseek(fd, 0, SEEK_END);
  size_t len = strtoull(argv[3], 0, 10);
  long n = strtol(argv[4], 0, 10);
  char* buf = aligned_alloc(4096, len);
  unsigned long long total = 0, x = 88172645463325252ull;
  double start = now();
  for (long i = 0; i < n; ++i) {
    if (strcmp(argv[1], "seq") == 0) {
      for (off_t off = 0; off < size; off += (off_t)len) {
        ssize_t r = pread(fd, buf, len, off);
        if (r < 0) { perror("pread"); return 1; }
        total += (unsigned long long)r;
      }
    } else if (strcmp(argv[1], "same") == 0) {
      ssize_t r = pread(fd, buf, len, 0);
      if (r < 0) { perror("pread"); return 1; }
      total += (unsigned long long)r;
    } else {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      off_t off = (off_t)(x % (unsigned long long)(size / (off_t)len)) * (off_t)len;
      ssize_t r = pread(fd, buf, len, off);
      if (r < 0) { perror("pread"); return 1; }
      total += (unsigned long long)r;
    }
  }
  printf("%llu %.6f\n", total, now() - start);
  return 0;
}
C
cc -O2 -o "$work/readbench" "$work/readbench.c"

eval "$(scripts/s3-server.sh start --dir "$work/s3" --bucket bench --mem-gib 4)"
echo "bench: uploading a 1 GiB object ..." >&2
/usr/bin/python3 - <<'PY'
import boto3, os
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=16))
path = os.environ.get("TMPDIR", "/var/tmp") + "/dscache-guardbench-1g"
with open(path, "wb") as f:
    for _ in range(64):
        f.write(os.urandom(16 << 20))
s3.upload_file(path, "bench", "big/1g.bin", Config=TransferConfig(multipart_chunksize=64 << 20, max_concurrency=8))
os.unlink(path)
PY
export DSCACHE_MOUNTS="/data/bench=s3://bench/" DSCACHE_IDLE_TIMEOUT=10m DSCACHE_INDEX_ENTRIES=64K
file=/data/bench/big/1g.bin

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
mib_s() { awk '{printf "%.1f\n", $1 / 1048576 / $2}'; }
us_each() { awk -v n="$1" '{printf "%.2f\n", $2 / n * 1e6}'; }
# warmup_mib_s DIR GUARD: dscache warmup of the object into DIR; MiB/s.
warmup_mib_s() {
  local start end
  start=$(date +%s.%N)
  DSCACHE_CACHE_DIR=$1 DSCACHE_KERNEL_GUARD=$2 "$bin" warmup --quiet "$file" >/dev/null
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN {printf "%.1f\n", 1024 / (e - s)}'
}
reads_s() { awk -v n="$1" '{printf "%.0f\n", n / $2}'; }
mirror_of() { echo "$1/mirror/$(ls "$1/mirror")/big/1g.bin"; }

# fresh GUARD NAME: a new cache dir (the previous one of that name stopped and removed).
fresh() {
  local dir=$work/c-$1-$2
  if [ -d "$dir" ]; then
    DSCACHE_CACHE_DIR=$dir "$bin" daemon --stop >/dev/null 2>&1 || true
    stop_keeper "$dir"
    rm -rf "$dir"
  fi
  echo "$dir"
}
shim() { DSCACHE_CACHE_DIR=$1 DSCACHE_KERNEL_GUARD=$2 LD_PRELOAD=$lib "${@:3}"; }

declare -A results
for ((i = 0; i < RUNS; i++)); do
  for guard in on off; do
    echo "bench: run $((i + 1))/$RUNS, guard $guard ..." >&2
    dir=$(fresh "$guard" seq)
    shim "$dir" "$guard" stat "$file" >/dev/null  # lists big/ (and starts the daemon): not timed
    if ! DSCACHE_CACHE_DIR=$dir "$bin" status | grep -q "kernel guard: $guard"; then
      DSCACHE_CACHE_DIR=$dir "$bin" status | grep "kernel guard" >&2
      echo "bench: the guard is not $guard (run as root on a file system with pre-content events)" >&2
      exit 1
    fi
    results[cold_seq_$guard]+="$(shim "$dir" "$guard" "$work/readbench" seq "$file" 1048576 1 | mib_s) "
    dir=$(fresh "$guard" rand)
    shim "$dir" "$guard" stat "$file" >/dev/null
    results[cold_rand_$guard]+="$(shim "$dir" "$guard" "$work/readbench" rand "$file" 65536 "$RANDOM_READS" |
      reads_s "$RANDOM_READS") "
    dir=$(fresh "$guard" warm)
    shim "$dir" "$guard" stat "$file" >/dev/null
    results[warmup_$guard]+="$(warmup_mib_s "$dir" "$guard") "
    if [ "$guard" = on ]; then
      # One block present, the rest holes: the file is marked.
      dir=$(fresh raw same)
      shim "$dir" on stat "$file" >/dev/null
      "$work/readbench" same "$(mirror_of "$dir")" 4096 1 >/dev/null
      results[pread_partial]+="$("$work/readbench" same "$(mirror_of "$dir")" 4096 20000 | us_each 20000) "
      results[pread_complete]+="$("$work/readbench" same "$(mirror_of "$work/c-on-warm")" 4096 20000 |
        us_each 20000) "
      dir=$(fresh raw seq)
      shim "$dir" on stat "$file" >/dev/null
      results[raw_seq]+="$("$work/readbench" seq "$(mirror_of "$dir")" 1048576 1 | mib_s) "
      dir=$(fresh raw rand)
      shim "$dir" on stat "$file" >/dev/null
      results[raw_rand]+="$("$work/readbench" rand "$(mirror_of "$dir")" 65536 "$RANDOM_READS" |
        reads_s "$RANDOM_READS") "
    fi
  done
  # Warm reads of the complete files (c-on-seq, c-off-seq), on and off
  # alternating three times, in turns first: the machine's noise moves both alike.
  for ((k = 0; k < 3; k++)); do
    order="on off"
    if (((i + k) % 2)); then order="off on"; fi
    for guard in $order; do
      dir=$work/c-$guard-seq
      results[warm_seq_$guard]+="$(shim "$dir" "$guard" "$work/readbench" seq "$file" 1048576 3 | mib_s) "
      results[warm_rand_$guard]+="$(shim "$dir" "$guard" "$work/readbench" rand "$file" 4096 "$WARM_RANDOM_READS" |
        reads_s "$WARM_RANDOM_READS") "
    done
  done
done

m() { printf '%s\n' ${results[$1]} | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
row() {  # label unit key
  local on off
  on=$(m "$3_on") off=$(m "$3_off")
  printf '| %s | %s %s | %s %s | %s |\n' "$1" "$on" "$2" "$off" "$2" "$(ratio "$on" "$off")"
}
echo
echo "Medians of $RUNS runs (warm: 3 alternating measurements per run); 1 GiB object, DSCACHE_BLOCK_SIZE 4M, cache on $(df --output=fstype "$work" | tail -1)."
echo
echo "| workload | guard on | guard off | on / off |"
echo "|---|---|---|---|"
row "warm, sequential 1 MiB reads (3 passes), through the shim" MiB/s warm_seq
row "warm, random 4 KiB preads, through the shim" reads/s warm_rand
row "cold, sequential 1 MiB reads, through the shim" MiB/s cold_seq
row "cold, random 64 KiB preads ($RANDOM_READS), through the shim" reads/s cold_rand
row "warmup of the object into a fresh cache (daemon writes only)" MiB/s warmup
printf '| 4 KiB pread of a present range, no shim: partial file (marked) vs complete (unmarked) | %s µs | %s µs | |\n' \
  "$(m pread_partial)" "$(m pread_complete)"
printf '| cold, sequential 1 MiB reads, no shim (mirror file) | %s MiB/s | zeros | |\n' "$(m raw_seq)"
printf '| cold, random 64 KiB preads (%s), no shim (mirror file) | %s reads/s | zeros | |\n' "$RANDOM_READS" "$(m raw_rand)"
echo
echo "All runs (on / off):"
for k in warm_seq warm_rand cold_seq cold_rand warmup; do
  echo "  $k: ${results[${k}_on]}/ ${results[${k}_off]}"
done
echo "  raw_seq: ${results[raw_seq]}; raw_rand: ${results[raw_rand]}"
echo "  pread partial / complete (µs): ${results[pread_partial]}/ ${results[pread_complete]}"
