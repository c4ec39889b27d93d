#!/usr/bin/env bash
# Cache core benchmark (issue #3), in one run against radosgw on loopback:
#   - fill throughput through the daemon (dscache warmup) next to the raw
#     fetch engine (store_bench) doing the same reads;
#   - index lookup cost and bytes per entry (index_bench);
#   - hit ratio of shuffled epochs over a dataset twice the cache size, with
#     the default eviction and with plain LRU (cache_bench).
#   scripts/bench/cache.sh        (RUNS=3 SMALL_COUNT=5000 by default)
# Prints Markdown tables of medians; paste them into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
SMALL_COUNT=${SMALL_COUNT:-5000}
LARGE_MIB=256

scripts/build.sh >/dev/null
bin=build/tools/dscache
work=$(mktemp -d /tmp/dscache-cachebench-XXXXXX)
cleanup() {
  for d in "$work"/c* "${shm:-/nonexistent}"/c*; do
    [ -d "$d" ] && DSCACHE_CACHE_DIR=$d "$bin" daemon --stop >/dev/null 2>&1 || true
  done
  rm -rf "${shm:-/nonexistent}"
  scripts/s3-server.sh stop --dir "$work/s3" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

eval "$(scripts/s3-server.sh start --dir "$work/s3" --bucket bench --mem-gib 4)"
echo "bench: uploading ${SMALL_COUNT} x 100 KiB and 2 x ${LARGE_MIB} MiB ..." >&2
/usr/bin/python3 - "$LARGE_MIB" "$SMALL_COUNT" <<'PY'
import boto3, concurrent.futures, os, sys
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))
large_mib, count = int(sys.argv[1]), int(sys.argv[2])
for i in range(2):
    s3.put_object(Bucket="bench", Key=f"large/{i}", Body=os.urandom(large_mib << 20))
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    list(pool.map(lambda i: s3.put_object(Bucket="bench", Key=f"small/{i:05d}", Body=os.urandom(100 * 1024)),
                  range(count)))
PY
export DSCACHE_MOUNTS="/data/bench=s3://bench/" DSCACHE_IDLE_TIMEOUT=10m DSCACHE_INDEX_ENTRIES=1M

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
field() { sed -n "s/\(^\|.* \)$1=\([0-9.]*\).*/\2/p"; }

# warmup_run NAME PATH...: one warmup into a fresh cache dir; prints "files MiB seconds".
# The fill runs use a memory-tier cache (/dev/shm): on this VM the disk takes
# about 200 MB/s sustained (measured below), which would bound the daemon
# and hide its own cost. Each run's cache is removed after it.
shm=$(mktemp -d /dev/shm/dscache-cachebench-XXXXXX)
warmup_run() {
  local dir=$shm/c-$1; shift
  DSCACHE_CACHE_DIR=$dir "$bin" warmup --concurrency 64 --json --quiet "$@" |
    /usr/bin/python3 -c 'import json, sys
for line in sys.stdin:
    d = json.loads(line)
    if d["event"] == "done":
        print(d["files_done"], d["bytes_done"] / 2**20, d["elapsed_s"])'
  DSCACHE_CACHE_DIR=$dir "$bin" daemon --stop >/dev/null
  rm -rf "$dir"
}

echo "bench: raw fetch engine ..." >&2
raw_small=$(build/tests/store_bench small s3://bench small/ "$SMALL_COUNT" 64 "$RUNS" | field objects_s)
raw_large=$(build/tests/store_bench large s3://bench large/0 16 8 "$RUNS" | field mib_s)

echo "bench: fills through the daemon ..." >&2
small_obj=() small_mib=() large_mib=()
for ((i = 0; i < RUNS; i++)); do
  read -r files mib secs < <(warmup_run "small-$i" "/data/bench/small")
  small_obj+=("$(echo "$files / $secs" | bc -l)")
  small_mib+=("$(echo "$mib / $secs" | bc -l)")
  read -r files mib secs < <(warmup_run "large-$i" "/data/bench/large")
  large_mib+=("$(echo "$mib / $secs" | bc -l)")
done
daemon_small=$(printf '%s\n' "${small_obj[@]}" | median)
daemon_small_mib=$(printf '%s\n' "${small_mib[@]}" | median)
daemon_large=$(printf '%s\n' "${large_mib[@]}" | median)

disk_mb_s=$(dd if=/dev/zero of="$work/dd" bs=1M count=1024 conv=fdatasync 2>&1 | sed -n 's/.*, \([0-9.]*\) MB\/s$/\1/p')
rm -f "$work/dd"

echo "bench: index ..." >&2
index_lines=$(build/tests/index_bench "$work" 100000 1000000 5000000)

echo "bench: shuffled epochs, dataset twice the cache ..." >&2
cache_size=$((SMALL_COUNT * 100 * 1024 / 2))
epochs() {  # epochs POLICY: hit ratios of 3 epochs
  local dir=$work/c-epochs-$1
  DSCACHE_CACHE_DIR=$dir DSCACHE_CACHE_SIZE=$cache_size DSCACHE_EVICTION=$1 DSCACHE_BIN=$PWD/$bin \
    build/tests/cache_bench epochs /data/bench/small 3 42 | field hit_ratio | paste -sd' '
  DSCACHE_CACHE_DIR=$dir "$bin" daemon --stop >/dev/null
}
auto_ratios=$(epochs auto)
lru_ratios=$(epochs lru)

echo
echo "Cache core, radosgw on loopback, $(date -u +%Y-%m-%d), $(nproc) cores, medians of $RUNS runs."
echo "Fills into a /dev/shm cache; this machine's disk writes ${disk_mb_s:-?} MB/s (dd, 1 GiB, fdatasync)."
echo
echo "| fill workload | through the daemon (\`dscache warmup\`) | raw fetch engine (\`store_bench\`) | daemon / raw |"
echo "|---|---|---|---|"
printf '| %d x 100 KiB, 64 in flight | %.0f obj/s (%.0f MiB/s) | %.0f obj/s | %.2f |\n' "$SMALL_COUNT" \
  "$daemon_small" "$daemon_small_mib" "$raw_small" "$(echo "$daemon_small / $raw_small" | bc -l)"
printf '| 2 x %d MiB (block fills) / 1 x %d MiB (raw, 16 ranges) | %.0f MiB/s | %.0f MiB/s | %.2f |\n' "$LARGE_MIB" \
  "$LARGE_MIB" "$daemon_large" "$raw_large" "$(echo "$daemon_large / $raw_large" | bc -l)"
echo
echo "| index entries | insert | lookup, hot | lookup, absent | lookup, random over all | bytes/entry (layout) | bytes/entry (disk) |"
echo "|---|---|---|---|---|---|---|"
while read -r line; do
  printf '| %s | %s ns | %s ns | %s ns | %s ns | %s | %s |\n' "$(field entries <<<"$line")" \
    "$(field insert_ns <<<"$line")" "$(field lookup_hit_ns <<<"$line")" "$(field lookup_miss_ns <<<"$line")" \
    "$(field lookup_random_ns <<<"$line")" "$(field bytes_per_entry <<<"$line")" \
    "$(field disk_bytes_per_entry <<<"$line")"
done <<<"$index_lines"
echo
echo "Shuffled epochs over $SMALL_COUNT x 100 KiB with DSCACHE_CACHE_SIZE=$cache_size (half the data):"
echo
echo "| eviction | epoch 1 | epoch 2 | epoch 3 |"
echo "|---|---|---|---|"
echo "| auto (default) | $(sed 's/ / | /g' <<<"$auto_ratios") |"
echo "| lru | $(sed 's/ / | /g' <<<"$lru_ratios") |"
