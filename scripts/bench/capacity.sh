#!/usr/bin/env bash
# A dataset larger than the cache (issue 17), in one run against radosgw
# behind the emulated 20 ms RTT / 1 Gbit/s link (scripts/bench/netlink-up.sh;
# loopback where the link cannot be made, and the table says so):
#   - shuffled epochs (4 reader processes, like a 4-worker DataLoader) over
#     SMALL_COUNT x 100 KiB files with the cache at 1/2 and 1/4 of the data,
#     both eviction policies: files/s and hit ratio per epoch, next to
#     reading every file straight from the store with boto3 (4 processes);
#   - a sequential read of one file twice the cache (LARGE_MIB) through the
#     shim, next to a streaming boto3 GET of it.
#   scripts/bench/capacity.sh      (RUNS=1 EPOCHS=3 SMALL_COUNT=2000 LARGE_MIB=512 LINK=auto)
# Prints Markdown tables (medians over RUNS); paste them into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-1} EPOCHS=${EPOCHS:-3} SMALL_COUNT=${SMALL_COUNT:-2000} LARGE_MIB=${LARGE_MIB:-512} LINK=${LINK:-auto}

log() { printf 'capacity bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
scripts/build.sh >/dev/null
bin=$PWD/build/tools/dscache lib=$PWD/build/shim/libdscache.so
work=$(mktemp -d /tmp/dscache-capbench-XXXXXX)
. scripts/bench/link.sh
cleanup() {
  for d in "$work"/c-*; do [ -d "$d" ] && DSCACHE_CACHE_DIR=$d "$bin" daemon --stop >/dev/null 2>&1 || true; done
  for d in "$work"/c-*; do [ -d "$d" ] && DSCACHE_CACHE_DIR=$d "$bin" clear --remove >/dev/null 2>&1 || true; done
  bench_link_down
  rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bench_link capbench
bench_s3 capb $(( (SMALL_COUNT * 100 / 1024 + LARGE_MIB) / 1024 + 3 ))
log "uploading $SMALL_COUNT x 100 KiB and 1 x $LARGE_MIB MiB ..."
in_ns "$server_ns" /usr/bin/python3 - "$SMALL_COUNT" "$LARGE_MIB" <<'PY'
import boto3, concurrent.futures, os, sys
from botocore.config import Config
count, large_mib = map(int, sys.argv[1:])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))
s3.put_object(Bucket="capb", Key="large/shard", Body=os.urandom(large_mib << 20))
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    list(pool.map(lambda i: s3.put_object(Bucket="capb", Key=f"small/{i:05d}", Body=os.urandom(100 * 1024)),
                  range(count)))
PY
export DSCACHE_MOUNTS="/data/capb=s3://capb/" DSCACHE_IDLE_TIMEOUT=10m DSCACHE_INDEX_ENTRIES=1M DSCACHE_BIN=$bin
data_bytes=$((SMALL_COUNT * 100 * 1024))

# One shuffled epoch by 4 processes; prints "files_per_s".
EPOCH='
import multiprocessing, os, random, sys, time
mode, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = ["small/%05d" % i for i in range(count)]
random.Random(seed).shuffle(names)
def work(part):
    if mode == "boto3":
        import boto3
        from botocore.config import Config
        s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], config=Config(s3={"addressing_style": "path"}))
        for n in part:
            s3.get_object(Bucket="capb", Key=n)["Body"].read()
    else:
        for n in part:
            with open("/data/capb/" + n, "rb") as f:
                f.read()
start = time.time()
with multiprocessing.get_context("fork").Pool(4) as pool:
    pool.map(work, [names[i::4] for i in range(4)])
print("%.1f" % (count / (time.time() - start)))
'
# Sequential read of the shard; prints MiB/s.
SEQ='
import os, sys, time
mode = sys.argv[1]
start = time.time()
total = 0
if mode == "boto3":
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], config=Config(s3={"addressing_style": "path"}))
    body = s3.get_object(Bucket="capb", Key="large/shard")["Body"]
    for chunk in iter(lambda: body.read(1 << 20), b""):
        total += len(chunk)
else:
    fd = os.open("/data/capb/large/shard", os.O_RDONLY)
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        total += len(chunk)
print("%.1f" % (total / 1048576 / (time.time() - start)))
'
hits_misses() {  # CACHE: "hits misses" from dscache status
  DSCACHE_CACHE_DIR=$1 "$bin" status | sed -n 's/.* hits \([0-9]*\), misses \([0-9]*\),.*/\1 \2/p' | head -1
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

declare -A result
for run in $(seq 1 "$RUNS"); do
  log "run $run/$RUNS: boto3 epoch"
  result[boto3,$run]=$(in_ns "$client_ns" /usr/bin/python3 -c "$EPOCH" boto3 "$run" "$SMALL_COUNT")
  for frac in 2 4; do
    for policy in auto lru; do
      cache=$work/c-$frac-$policy-$run
      size=$((data_bytes / frac))
      prev_h=0 prev_m=0
      for epoch in $(seq 1 "$EPOCHS"); do
        drop_caches
        rate=$(in_ns "$client_ns" env LD_PRELOAD="$lib" DSCACHE_CACHE_DIR="$cache" DSCACHE_CACHE_SIZE=$size \
          DSCACHE_EVICTION=$policy /usr/bin/python3 -c "$EPOCH" shim "$((run * 100 + epoch))" "$SMALL_COUNT")
        read -r h m < <(hits_misses "$cache")
        dh=$((h - prev_h)) dm=$((m - prev_m)) prev_h=$h prev_m=$m
        result[$frac,$policy,$epoch,$run]="$rate $(awk -v h=$dh -v m=$dm 'BEGIN {printf "%.2f", (h + m) ? h / (h + m) : 0}')"
        log "  cache 1/$frac, $policy, epoch $epoch: ${result[$frac,$policy,$epoch,$run]}"
      done
      DSCACHE_CACHE_DIR=$cache "$bin" daemon --stop >/dev/null 2>&1 || true
      DSCACHE_CACHE_DIR=$cache "$bin" clear --remove >/dev/null 2>&1 || true
    done
  done
  log "run $run/$RUNS: the large file"
  result[seq,boto3,$run]=$(in_ns "$client_ns" /usr/bin/python3 -c "$SEQ" boto3)
  cache=$work/c-seq-$run
  drop_caches
  result[seq,shim,$run]=$(in_ns "$client_ns" env LD_PRELOAD="$lib" DSCACHE_CACHE_DIR="$cache" \
    DSCACHE_CACHE_SIZE=$(( (LARGE_MIB / 2) << 20 )) /usr/bin/python3 -c "$SEQ" shim)
  result[seq,through,$run]=$(DSCACHE_CACHE_DIR=$cache "$bin" status | sed -n 's/^  served through \([^ ]*\).*/\1/p' | head -1)
  DSCACHE_CACHE_DIR=$cache "$bin" daemon --stop >/dev/null 2>&1 || true
  DSCACHE_CACHE_DIR=$cache "$bin" clear --remove >/dev/null 2>&1 || true
done

pick() {  # KEY-PREFIX FIELD(1: rate, 2: hit ratio): median over runs
  for run in $(seq 1 "$RUNS"); do echo "${result[$1,$run]}" | awk -v f="$2" '{print $f}'; done | median
}
where=$([ -n "$link_up" ] && echo "the emulated link (20 ms RTT, 1 Gbit/s)" || echo "loopback")
boto=$(for run in $(seq 1 "$RUNS"); do echo "${result[boto3,$run]}"; done | median)
echo
echo "Shuffled epochs, 4 reader processes, $SMALL_COUNT x 100 KiB ($((data_bytes >> 20)) MiB) over $where; median of $RUNS run(s)."
echo "boto3 straight from the store (no cache, every epoch): $boto files/s."
echo
printf '| cache | policy |'; for e in $(seq 1 "$EPOCHS"); do printf ' epoch %d files/s (hit ratio) |' "$e"; done
printf ' last epoch / boto3 |\n%s' '|---|---|'; for e in $(seq 1 "$EPOCHS"); do printf '%s' '---|'; done; printf '%s\n' '---|'
for frac in 2 4; do
  for policy in auto lru; do
    printf '| 1/%d of the data | %s |' "$frac" "$policy"
    for e in $(seq 1 "$EPOCHS"); do
      printf ' %s (%s) |' "$(pick "$frac,$policy,$e" 1)" "$(pick "$frac,$policy,$e" 2)"
    done
    printf ' %s |\n' "$(awk -v a="$(pick "$frac,$policy,$EPOCHS" 1)" -v b="$boto" 'BEGIN {printf "%.2f", a / b}')"
  done
done
echo
shim_seq=$(for run in $(seq 1 "$RUNS"); do echo "${result[seq,shim,$run]}"; done | median)
boto_seq=$(for run in $(seq 1 "$RUNS"); do echo "${result[seq,boto3,$run]}"; done | median)
echo "One $LARGE_MIB MiB file read sequentially through a $((LARGE_MIB / 2)) MiB cache (2x the cache), over $where."
echo
echo "| reader | MiB/s | ratio to boto3 |"
echo "|---|---|---|"
echo "| boto3 streaming GET | $boto_seq | 1.00 |"
echo "| dscache shim (served through: ${result[seq,through,1]:-0}) | $shim_seq | $(awk -v a="$shim_seq" -v b="$boto_seq" 'BEGIN {printf "%.2f", a / b}') |"
