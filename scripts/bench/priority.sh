#!/usr/bin/env bash
# Demand before warmup (issue #5): a training job's cold-open latency while a
# `dscache warmup` of other data runs, next to the same job with no warmup.
# radosgw on loopback. The job is one process that opens and reads JOB files
# it has never read (each a miss: one fetch) one after another, through
# libdscache.so; the warmup fetches WARM other files, 64 requests in flight.
# Alternating, RUNS times each; the job's files are evicted between runs.
#   scripts/bench/priority.sh      (RUNS=3 JOB=200 WARM=6000 by default)
# Prints a Markdown table; paste it into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
JOB=${JOB:-200}
WARM=${WARM:-6000}

scripts/build.sh >/dev/null
bin=$PWD/build/tools/dscache
lib=$PWD/build/shim/libdscache.so
work=$(mktemp -d /var/tmp/dscache-prio-XXXXXX)
cleanup() {
  DSCACHE_CACHE_DIR=$work/cache "$bin" daemon --stop >/dev/null 2>&1 || true
  scripts/s3-server.sh stop --dir "$work/s3" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

eval "$(scripts/s3-server.sh start --dir "$work/s3" --bucket bench --mem-gib 4)"
echo "bench: uploading $WARM warmup files and $JOB job files of 100 KiB ..." >&2
/usr/bin/python3 - "$WARM" "$JOB" <<'PY'
import boto3, concurrent.futures, os, sys
from botocore.config import Config
warm, job = int(sys.argv[1]), int(sys.argv[2])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))
body = os.urandom(100 << 10)
keys = ["ds/warm/d%02d/%05d.bin" % (i % 50, i) for i in range(warm)] + ["ds/job/%05d.bin" % i for i in range(job)]
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    list(pool.map(lambda k: s3.put_object(Bucket="bench", Key=k, Body=body), keys))
PY

export DSCACHE_MOUNTS="/data/bench=s3://bench/ds" DSCACHE_CACHE_DIR=$work/cache DSCACHE_IDLE_TIMEOUT=30m
export DSCACHE_BIN=$bin
"$bin" warmup --metadata-only --quiet /data/bench >/dev/null  # listings are not what is measured

job() {  # prints the job's per-open latencies in ms, one per line
  LD_PRELOAD=$lib /usr/bin/python3 - <<'PY'
import os, time
names = sorted(os.listdir("/data/bench/job"))
for n in names:
    t = time.perf_counter()
    with open("/data/bench/job/" + n, "rb") as f:
        f.read()
    print("%.3f" % ((time.perf_counter() - t) * 1000))
PY
}

: >"$work/results"
for run in $(seq 1 "$RUNS"); do
  echo "bench: run $run of $RUNS" >&2
  "$bin" evict --quiet /data/bench/job >/dev/null
  job | sed 's/^/alone /' >>"$work/results"
  "$bin" evict --quiet /data/bench/job /data/bench/warm >/dev/null
  "$bin" warmup --quiet --concurrency 64 /data/bench/warm >"$work/warm.out" &
  warm_pid=$!
  sleep 1  # the warmup is fetching at full rate
  job | sed 's/^/during /' >>"$work/results"
  if kill -0 "$warm_pid" 2>/dev/null; then
    echo "during-finished-first yes" >>"$work/results"
  else
    echo "bench: warning: the warmup ended before the job did; make WARM larger" >&2
  fi
  wait "$warm_pid" || true
done

/usr/bin/python3 - "$work/results" "$JOB" "$WARM" <<'PY'
import statistics, sys
path, job, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lat = {"alone": [], "during": []}
overlapped = 0
for line in open(path):
    k, v = line.split()
    if k == "during-finished-first":
        overlapped += 1
    else:
        lat[k].append(float(v))
def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]
print()
print("Cold open+read of %d job files of 100 KiB, one after another (all runs pooled; the warmup of %d"
      " other files ran through the whole job in %d of the runs):" % (job, warm, overlapped))
print()
print("| job | p50 ms | p90 ms | p99 ms | mean ms |")
print("|---|---|---|---|---|")
for k, name in (("alone", "alone"), ("during", "while `dscache warmup` runs (64 in flight)")):
    xs = lat[k]
    print("| %s | %.2f | %.2f | %.2f | %.2f |" % (name, q(xs, .5), q(xs, .9), q(xs, .99), statistics.mean(xs)))
a, d = lat["alone"], lat["during"]
print()
print("p50 during / alone: %.2f; p99 during / alone: %.2f" % (q(d, .5) / q(a, .5), q(d, .99) / q(a, .99)))
PY
