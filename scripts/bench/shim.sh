#!/usr/bin/env bash
# Shim benchmark (issue #4), in one run against radosgw on loopback: warm
# reads through libdscache.so next to the same files on the local disk.
#   - open/fstat/read/close of COUNT files of 100-120 KiB (shim_bench read);
#   - stat of every file (shim_bench stat);
#   - one shuffled DataLoader epoch, 4 workers, raw bytes (dataloader_bench.py);
#   - the cost added to paths the shim does not map: open+close and stat of a
#     local file through the shim's hooks and straight into libc, interleaved
#     in one process (shim_bench loop), and the same in instructions (callgrind).
# Local and shim runs alternate, RUNS times each; medians and ratios.
#   scripts/bench/shim.sh        (RUNS=5 COUNT=10000 by default)
# Prints Markdown tables; paste them into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
COUNT=${COUNT:-10000}
LOOP_CALLS=${LOOP_CALLS:-1000000}

scripts/build.sh >/dev/null
bin=$PWD/build/tools/dscache
lib=$PWD/build/shim/libdscache.so
bench=$PWD/build/tests/shim_bench
# Local copy and cache on the same file system (the root disk).
work=$(mktemp -d /var/tmp/dscache-shimbench-XXXXXX)
cleanup() {
  DSCACHE_CACHE_DIR=$work/cache "$bin" daemon --stop >/dev/null 2>&1 || true
  scripts/s3-server.sh stop --dir "$work/s3" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

eval "$(scripts/s3-server.sh start --dir "$work/s3" --bucket bench --mem-gib 4)"
echo "bench: writing and uploading ${COUNT} files of 100-120 KiB in 100 directories ..." >&2
/usr/bin/python3 - "$work/local" "$COUNT" <<'PY'
import boto3, concurrent.futures, os, random, sys
from botocore.config import Config
root, count = sys.argv[1], int(sys.argv[2])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))
rng = random.Random(1)
files = []
for i in range(count):
    rel = "class%03d/%06d.bin" % (i % 100, i)
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(rng.randbytes(rng.randrange(100 << 10, 120 << 10)))
    files.append((path, "ds/" + rel))
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    list(pool.map(lambda f: s3.upload_file(f[0], "bench", f[1]), files))
PY

export DSCACHE_MOUNTS="/data/bench=s3://bench/ds" DSCACHE_CACHE_DIR=$work/cache DSCACHE_IDLE_TIMEOUT=30m
export DSCACHE_BIN=$bin
"$bin" warmup /data/bench >&2
(cd "$work/local" && find . -type f | sort | sed 's|^\.||') >"$work/rel.txt"
sed "s|^|$work/local|" "$work/rel.txt" >"$work/local.txt"
sed "s|^|/data/bench|" "$work/rel.txt" >"$work/shim.txt"
# Every file's bytes through the shim are the local copy's (and warm everything).
if ! LD_PRELOAD=$lib bash -c "cd /data/bench && find . -type f | sort | xargs md5sum" | diff -q - <(cd "$work/local" && find . -type f | sort | xargs md5sum) >/dev/null; then
  echo "bench: the shim's bytes differ from the local copy" >&2
  exit 1
fi

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
field() { sed -n "s/\(^\|.* \)$1=\([0-9.]*\).*/\2/p"; }
ratio() { echo "scale=3; $1 / $2" | bc; }

declare -A results
for ((r = 1; r <= RUNS; r++)); do
  echo "bench: run $r of $RUNS" >&2
  for side in local shim; do
    preload=""
    [ "$side" = shim ] && preload=$lib
    results[read_$side]+="$(LD_PRELOAD=$preload "$bench" read "$work/$side.txt" | field files_per_s) "
    results[stat_$side]+="$(LD_PRELOAD=$preload "$bench" stat "$work/$side.txt" | field stats_per_s) "
    root=$work/local
    [ "$side" = shim ] && root=/data/bench
    results[loader_$side]+="$(LD_PRELOAD=$preload /usr/bin/python3 tests/bench/dataloader_bench.py "$root" 4 |
      field samples_per_s) "
  done
  echo x >"$work/plain-file"
  # Through the program's bindings (the shim's) and straight into libc, interleaved.
  line=$(LD_PRELOAD=$lib "$bench" loop "$work/plain-file" "$LOOP_CALLS")
  results[loop_open_shim]+="$(field open_close_ns <<<"$line") "
  results[loop_open_libc]+="$(field libc_open_close_ns <<<"$line") "
  results[loop_stat_shim]+="$(field stat_ns <<<"$line") "
  results[loop_stat_libc]+="$(field libc_stat_ns <<<"$line") "
  # The same without the preload: both sides are libc, the difference is noise.
  line=$("$bench" loop "$work/plain-file" "$LOOP_CALLS")
  results[loop_open_floor]+="$(field added_open_close_ns <<<"$line") "
  results[loop_stat_floor]+="$(field added_stat_ns <<<"$line") "
done

med() { tr ' ' '\n' <<<"${results[$1]}" | grep . | median; }
echo
echo "Warm, ${COUNT} files of 100-120 KiB, medians of ${RUNS} alternating runs (local disk vs libdscache.so on the same disk):"
echo
echo "| workload | local disk | dscache shim | shim / local |"
echo "|---|---|---|---|"
for w in read stat loader; do
  l=$(med "${w}_local")
  s=$(med "${w}_shim")
  case $w in
    read) name="open/fstat/read/close (files/s)" ;;
    stat) name="stat every file (stats/s)" ;;
    loader) name="DataLoader epoch, 4 workers, shuffled (samples/s)" ;;
  esac
  echo "| $name | $l | $s | $(ratio "$s" "$l") |"
done
echo
echo "Paths the shim does not map (a local file, ${LOOP_CALLS} calls each, ns per call, medians; the same"
echo "calls through the shim's hooks and straight into libc, interleaved in one process):"
echo
echo "| call | libc | through the shim | added | added, no preload (noise) |"
echo "|---|---|---|---|---|"
for c in open stat; do
  l=$(med "loop_${c}_libc")
  h=$(med "loop_${c}_shim")
  name="open+close"
  [ "$c" = stat ] && name="stat"
  echo "| $name | $l | $h | $(echo "$h - $l" | bc) | $(med "loop_${c}_floor") |"
done
if command -v valgrind >/dev/null; then
  # Instructions are exact where the clock is not: the difference between
  # 20,000 and 10,000 iterations, with and without the preload.
  ir() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
      sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' | tr -d ,
  }
  with=$(( $(LD_PRELOAD=$lib ir "$bench" loop "$work/plain-file" 20000) -
           $(LD_PRELOAD=$lib ir "$bench" loop "$work/plain-file" 10000) ))
  without=$(( $(ir "$bench" loop "$work/plain-file" 20000) - $(ir "$bench" loop "$work/plain-file" 10000) ))
  echo
  echo "Instructions the shim adds per open+close+stat of a path it does not map (callgrind):" \
    "$(( (with - without) / 10000 ))"
fi
