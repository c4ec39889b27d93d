#!/usr/bin/env bash
# What DSCACHE_MTIME=metadata costs (issue 12): the first `ls -l` of a
# directory of COUNT objects uploaded with x-amz-meta-mtime (as rclone and
# s3fs upload them), through radosgw behind the emulated 20 ms RTT / 1 Gbit/s
# link (scripts/bench/netlink-up.sh; loopback where it cannot be made, and the
# table says so). Each run starts cold (a fresh cache, a fresh mount):
#   - dscache, DSCACHE_MTIME=last-modified (the default): one listing;
#   - dscache, DSCACHE_MTIME=metadata: the listing, then a HEAD per object,
#     32 in flight;
#   - rclone lsl: the object's x-amz-meta-mtime too (a HEAD per object), and
#     rclone lsl --use-server-modtime (Last-Modified, no HEADs);
#   - s3fs: `ls -l` of a fresh mount (s3fs HEADs every object it lists).
# Every tool's mtimes are checked against the uploaded ones (or Last-Modified
# where that is what it shows); a wrong one fails the run.
#   scripts/bench/mtime.sh     (RUNS=3 COUNT=2000 LINK=auto TOOLS="dscache rclone s3fs")
# Prints a Markdown table (medians over RUNS); paste it into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3} COUNT=${COUNT:-2000} LINK=${LINK:-auto} TOOLS=${TOOLS:-dscache rclone s3fs}

log() { printf 'mtime bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
scripts/build.sh >/dev/null
bin=$PWD/build/tools/dscache lib=$PWD/build/shim/libdscache.so
work=$(mktemp -d /tmp/dscache-mtimebench-XXXXXX)
. scripts/bench/link.sh
cleanup() {
  for d in "$work"/c-*; do [ -d "$d" ] && DSCACHE_CACHE_DIR=$d "$bin" daemon --stop >/dev/null 2>&1 || true; done
  for m in "$work"/mnt-*; do [ -d "$m" ] && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }; done
  bench_link_down
  rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bench_link mtimebench
bench_s3 mtb 2
log "uploading $COUNT x 1 KiB with x-amz-meta-mtime ..."
in_ns "$server_ns" /usr/bin/python3 - "$COUNT" <<'PY'
import boto3, concurrent.futures, os, sys
from botocore.config import Config
count = int(sys.argv[1])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    list(pool.map(lambda i: s3.put_object(Bucket="mtb", Key=f"ds/{i:05d}", Body=b"x" * 1024,
                                          Metadata={"mtime": "%d.5" % (1_500_000_000 + i)}), range(count)))
PY

printf '%s:%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$work/s3fs.passwd"
chmod 600 "$work/s3fs.passwd"
: >"$work/rclone.conf"
export RCLONE_CONFIG=$work/rclone.conf RCLONE_CONFIG_MTB_TYPE=s3 RCLONE_CONFIG_MTB_PROVIDER=Ceph
export RCLONE_CONFIG_MTB_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_MTB_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_MTB_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_MTB_REGION=us-east-1
export RCLONE_CONFIG_MTB_FORCE_PATH_STYLE=true
export DSCACHE_BIN=$bin DSCACHE_INDEX_ENTRIES=1M

# check KIND: stdin is "name mtime_seconds" lines; KIND meta wants 1500000000+i.5
# (to the second where the tool shows seconds), server wants a recent time.
check() {
  /usr/bin/python3 -c '
import sys, time
kind, count = sys.argv[1], int(sys.argv[2])
seen = {}
for line in sys.stdin:
    name, t = line.split()
    seen[name] = float(t)
assert len(seen) == count, "%d of %d listed" % (len(seen), count)
for name, t in seen.items():
    i = int(name)
    if kind == "meta":
        assert abs(t - (1_500_000_000 + i + 0.5)) <= 0.5, (name, t)
    else:
        assert abs(t - time.time()) < 86400, (name, t)
' "$1" "$COUNT"
}

# One cold run of one variant; prints its wall seconds.
run_one() {
  local variant=$1 n=$2 t0 t1 out=$work/out-$1-$2
  case $variant in
    dscache-lm|dscache-meta)
      local cache=$work/c-$variant-$n mode=last-modified kind=server
      [ "$variant" = dscache-meta ] && mode=metadata kind=meta
      t0=$EPOCHREALTIME
      in_ns "$client_ns" env DSCACHE_CACHE_DIR="$cache" DSCACHE_MOUNTS="/data/mtb=s3://mtb/" DSCACHE_MTIME=$mode \
        LD_PRELOAD="$lib" ls -l --time-style=+%s.%N /data/mtb/ds >"$out"
      t1=$EPOCHREALTIME
      DSCACHE_CACHE_DIR=$cache "$bin" daemon --stop >/dev/null 2>&1 || true
      awk 'NF >= 7 {print $7, $6}' "$out" | check "$kind" || die "$variant: wrong mtimes"
      ;;
    rclone-meta|rclone-server)
      local extra=() kind=meta
      [ "$variant" = rclone-server ] && extra=(--use-server-modtime) kind=server
      t0=$EPOCHREALTIME
      in_ns "$client_ns" env -u AWS_CA_BUNDLE rclone lsl "${extra[@]}" mtb:mtb/ds >"$out"
      t1=$EPOCHREALTIME
      /usr/bin/python3 -c '
import datetime, sys
for line in open(sys.argv[1]):
    size, day, clock, name = line.split()
    t = datetime.datetime.fromisoformat(day + " " + clock[:15]).replace(tzinfo=datetime.timezone.utc)
    print(name, t.timestamp())
' "$out" | check "$kind" || die "$variant: wrong mtimes"
      ;;
    s3fs)
      # Mounted, listed and unmounted within one call: `ip netns exec` gives
      # each call its own mount namespace.
      local mnt=$work/mnt-$n
      mkdir -p "$mnt"
      in_ns "$client_ns" bash -c '
        mnt=$1 out=$2 times=$3 log=$4
        s3fs mtb "$mnt" -f -o "use_path_request_style,url=$AWS_ENDPOINT_URL,passwd_file=$5,endpoint=us-east-1" >"$log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
        mountpoint -q "$mnt" || { kill $pid; exit 1; }
        t0=$EPOCHREALTIME
        ls -l --time-style=+%s.%N "$mnt/ds" >"$out"
        t1=$EPOCHREALTIME
        fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
        wait $pid
        echo "$t0 $t1" >"$times"' _ "$mnt" "$out" "$work/s3fs-times" "$work/s3fs-$n.log" "$work/s3fs.passwd" ||
        die "s3fs did not mount: $(tail -n 3 "$work/s3fs-$n.log")"
      read -r t0 t1 <"$work/s3fs-times"
      awk 'NF >= 7 {print $7, $6}' "$out" | check meta || die "s3fs: wrong mtimes"
      ;;
  esac
  echo "$t0 $t1" | awk '{printf "%.3f\n", $2 - $1}'
}

variants=()
for t in $TOOLS; do
  case $t in
    dscache) variants+=(dscache-lm dscache-meta) ;;
    rclone) command -v rclone >/dev/null && variants+=(rclone-meta rclone-server) || log "rclone missing: skipped" ;;
    s3fs) { command -v s3fs && command -v fusermount3; } >/dev/null && [ "$(id -u)" = 0 ] && variants+=(s3fs) ||
            log "s3fs (FUSE, root) unavailable: skipped" ;;
    *) die "unknown tool '$t'" ;;
  esac
done
declare -A times
for n in $(seq "$RUNS"); do
  for v in "${variants[@]}"; do
    s=$(run_one "$v" "$n")
    log "run $n: $v ${s} s"
    times[$v]+="$s "
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
base=$(echo "${times[dscache-lm]:-}" | median)
echo
echo "First \`ls -l\` of $COUNT objects with x-amz-meta-mtime, cold, over $placement; median of $RUNS runs"
echo
echo "| tool | mtime shown | seconds | objects/s | vs dscache (Last-Modified) |"
echo "|---|---|---|---|---|"
for v in "${variants[@]}"; do
  m=$(echo "${times[$v]}" | median)
  case $v in
    dscache-lm) what="dscache, \`DSCACHE_MTIME=last-modified\`"; shown=Last-Modified ;;
    dscache-meta) what="dscache, \`DSCACHE_MTIME=metadata\`"; shown=x-amz-meta-mtime ;;
    rclone-meta) what="rclone lsl"; shown=x-amz-meta-mtime ;;
    rclone-server) what="rclone lsl --use-server-modtime"; shown=Last-Modified ;;
    s3fs) what="s3fs, ls -l"; shown=x-amz-meta-mtime ;;
  esac
  awk -v w="$what" -v s="$shown" -v m="$m" -v b="$base" -v c="$COUNT" \
    'BEGIN {printf "| %s | %s | %.2f | %.0f | %s |\n", w, s, m, c / m, (b > 0 ? sprintf("%.1fx", m / b) : "-")}'
done
