#!/usr/bin/env bash
# Object-store layer benchmark: dscache's fetch engine next to parallel curl
# processes doing the same work, in one run, against radosgw on loopback.
#   scripts/bench/store.sh            (RUNS=5 SMALL_COUNT=5000 by default)
# Workloads (issue #2): one 256 MiB object read with 1, 8 and 32 parallel
# ranges; 5,000 objects of 100 KiB with 64 in flight. Prints a Markdown table
# of medians and ratios; paste it into docs/benchmarks.md with the date.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
SMALL_COUNT=${SMALL_COUNT:-5000}
LARGE_MIB=256

scripts/build.sh >/dev/null
bench=build/tests/store_bench
work=$(mktemp -d /tmp/dscache-bench-XXXXXX)
cleanup() { scripts/s3-server.sh stop --dir "$work/s3" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

eval "$(scripts/s3-server.sh start --dir "$work/s3" --bucket bench --mem-gib 4)"
endpoint=$AWS_ENDPOINT_URL
echo "bench: uploading ${LARGE_MIB} MiB object and ${SMALL_COUNT} x 100 KiB objects ..." >&2
/usr/bin/python3 - "$LARGE_MIB" "$SMALL_COUNT" <<'PY'
import boto3, concurrent.futures, os, sys
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))
large_mib, count = int(sys.argv[1]), int(sys.argv[2])
s3.put_object(Bucket="bench", Key="large", Body=os.urandom(large_mib << 20))
body = os.urandom(100 * 1024)
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    list(pool.map(lambda i: s3.put_object(Bucket="bench", Key=f"small/{i:05d}", Body=body), range(count)))
PY

# curl reads its credentials from a config file, not argv.
cat >"$work/curl.conf" <<EOF2
user = "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
aws-sigv4 = "aws:amz:${AWS_REGION:-us-east-1}:s3"
header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"
silent
fail
EOF2

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
now() { date +%s.%N; }

# curl_large N: N curl processes, each GETs one of N equal ranges.
curl_large() {
  local n=$1 size=$((LARGE_MIB << 20)) i first last pids=()
  for ((i = 0; i < n; i++)); do
    first=$((i * size / n)); last=$(((i + 1) * size / n - 1))
    curl -K "$work/curl.conf" -r "$first-$last" -o /dev/null "$endpoint/bench/large" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

# One process per object, 64 at a time: no connection is ever reused.
curl_small_per_object() {
  seq -f '%05g' 0 $((SMALL_COUNT - 1)) |
    xargs -P 64 -I{} curl -K "$work/curl.conf" -o /dev/null "$endpoint/bench/small/{}"
}

# 64 processes, each fetching its share of the objects over one kept-alive connection.
curl_small_64_processes() {
  local i pids=()
  for ((i = 0; i < 64; i++)); do
    seq -f '%05g' "$i" 64 $((SMALL_COUNT - 1)) |
      awk -v e="$endpoint" '{print "url = \"" e "/bench/small/" $1 "\"\noutput = \"/dev/null\""}' >"$work/part$i.conf"
    curl -K "$work/curl.conf" -K "$work/part$i.conf" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

# One curl process with --parallel: libcurl multi inside, like dscache's engine.
curl_small_parallel() {
  seq -f '%05g' 0 $((SMALL_COUNT - 1)) |
    awk -v e="$endpoint" '{print "url = \"" e "/bench/small/" $1 "\"\noutput = \"/dev/null\""}' >"$work/all.conf"
  curl -K "$work/curl.conf" --parallel --parallel-max 64 -K "$work/all.conf"
}

# time_runs RUNS CMD...: median wall seconds over RUNS runs.
time_runs() {
  local runs=$1 t0 i; shift
  for ((i = 0; i < runs; i++)); do
    t0=$(now); "$@"; echo "$(now) - $t0" | bc -l
  done | median
}

rows=()
for n in 1 8 32; do
  echo "bench: 256 MiB, $n parallel ranges ..." >&2
  ours=$($bench large "s3://bench" large "$n" 8 "$RUNS")
  ours_mib=$(sed -n 's/.* mib_s=\([0-9.]*\).*/\1/p' <<<"$ours")
  curl_s=$(time_runs "$RUNS" curl_large "$n")
  curl_mib=$(echo "$LARGE_MIB / $curl_s" | bc -l)
  rows+=("$(printf '| 256 MiB object, %2d parallel ranges | %8.0f MiB/s | %8.0f MiB/s (%d curl processes) | %.2f |' \
    "$n" "$ours_mib" "$curl_mib" "$n" "$(echo "$ours_mib / $curl_mib" | bc -l)")")
done

echo "bench: ${SMALL_COUNT} x 100 KiB objects, 64 in flight ..." >&2
ours=$($bench small "s3://bench" small/ "$SMALL_COUNT" 64 "$RUNS")
ours_obj=$(sed -n 's/.* objects_s=\([0-9.]*\).*/\1/p' <<<"$ours")
ours_conn=$(sed -n 's/.* connections=\([0-9]*\).*/\1/p' <<<"$ours")
small_runs=$((RUNS < 3 ? RUNS : 3))
for variant in per_object 64_processes parallel; do
  s=$(time_runs "$small_runs" "curl_small_$variant")
  obj=$(echo "$SMALL_COUNT / $s" | bc -l)
  case $variant in
    per_object) what="curl, one process per object, 64 at a time" ;;
    64_processes) what="64 curl processes, keep-alive within each" ;;
    parallel) what="one curl --parallel --parallel-max 64" ;;
  esac
  rows+=("$(printf '| %d x 100 KiB objects, 64 in flight | %8.0f obj/s | %8.0f obj/s (%s) | %.2f |' \
    "$SMALL_COUNT" "$ours_obj" "$obj" "$what" "$(echo "$ours_obj / $obj" | bc -l)")")
done

echo
echo "Object-store layer, radosgw on loopback, $(date -u +%Y-%m-%d), $(nproc) cores, medians of $RUNS runs (curl small-object variants: $small_runs)."
echo "dscache used $ours_conn connections for the small objects."
echo
echo "| workload | dscache fetch engine | curl | dscache / curl |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
