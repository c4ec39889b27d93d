#!/usr/bin/env bash
# Warmup benchmark (issue #5): `dscache warmup` next to the tools people use to
# pull a dataset out of S3 onto a node, each fetching the same objects from the
# same radosgw into a local directory:
#   - dscache:  `dscache warmup` into a fresh cache dir (a fresh daemon) each run;
#   - s3fs:     `cp -r` from a fresh s3fs mount (FUSE) each run;
#   - rclone:   `rclone copy --transfers 32`;
#   - boto3:    a parallel boto3 download, 64 threads (tests/bench/boto3_download.py);
#   - raw:      the bare fetch engine (build/tests/store_bench, into memory, 64 in
#               flight / 16 ranges): the ceiling dscache's own client can reach.
# Workloads: SMALL_COUNT objects of SMALL_KIB (default 10,000 x 100 KiB) and
# LARGE_COUNT objects of LARGE_MIB (default 2 x 256 MiB). Two placements:
#   - loopback: client and radosgw on one host;
#   - link:     radosgw in one network namespace, the clients in another, joined
#               by an emulated 20 ms RTT / 1 Gbit/s link (scripts/bench/netlink-up.sh).
# Tools alternate within each run (the order rotates), RUNS runs each; prints
# Markdown tables of medians, objects/s (small), MiB/s (large), and ratios, and
# each tool's CPU time (user + system, its processes and daemons together): on
# a machine where the server shares the cores, CPU per object is what a tool
# takes from everyone else.
# Every peer's copy is checked (file count and bytes) and the run fails loudly
# otherwise; dscache's cache files are checked to be fully materialized.
#
#   scripts/bench/warmup.sh            full: RUNS=3, 10,000 x 100 KiB, 2 x 256 MiB
#   SMALL=1 scripts/bench/warmup.sh    quick: 500 x 100 KiB, 2 x 32 MiB
# Other settings (environment): RUNS, SMALL_COUNT, SMALL_KIB, LARGE_COUNT,
# LARGE_MIB; LINK=auto|0|1 (auto: the link part if it can be set up, else say
# why and measure loopback only; 1: fail without it); TOOLS (default
# "dscache s3fs rclone boto3 raw"); DEST (where caches and copies go, default
# /dev/shm: this VM's disk, ~270 MB/s, would otherwise be what is measured);
# WARMUP_ARGS (default "--concurrency 64"); BUILD_DIR (default build);
# TOOL_TIMEOUT (seconds per tool run, default 1800); S3FS_LINK_RUNS (runs of
# s3fs on the small objects over the link, default 1 above 2,000 objects: one
# takes about 10 minutes). Needs root for the link
# part (namespaces), s3fs (FUSE) and the peers: scripts/setup.sh installs them.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/../.."

# ---------------------------------------------------------------------------
# One measured run of one tool: `warmup.sh __run TOOL WORKLOAD TAG`, run by the
# main part below, directly or under `ip netns exec` (which gives each call
# its own mount namespace: an s3fs mount lives and dies within one call).
# Prints the wall seconds of the transfer alone and the tool's CPU seconds
# (user + system); exit 1 when the copy is wrong.
# Everything else comes from the environment the main part exports.
# ---------------------------------------------------------------------------
# running PID: it exists and has not exited (a zombie has).
running() { local st; st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${st:0:1}" != Z ]; }
# cpu_ticks PID: user + system clock ticks of a live process, all its threads.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0; }
# timed FILE CMD...: CMD with its CPU seconds (user + system, waited-for children
# included) written to FILE.
timed() { local f=$1; shift; /usr/bin/time -f '%U %S' -o "$f" "$@"; }
child_cpu() { awk 'NF == 2 && $1 ~ /^[0-9.]+$/ {s = $1 + $2} END {printf "%.3f", s}' "$1" 2>/dev/null || echo 0; }
run_one() {
  local tool=$1 workload=$2 tag=$3 count bytes out t0 t1 rc=0 extra_ticks=0
  local log=$WB_WORK/logs/$tag.log cpu_file=$WB_WORK/logs/$tag.cpu
  if [ "$workload" = small ]; then count=$WB_SMALL_COUNT bytes=$WB_SMALL_BYTES
  else count=$WB_LARGE_COUNT bytes=$WB_LARGE_BYTES; fi
  out=$WB_DEST/out-$tag
  # check_tree DIR: exactly COUNT files and BYTES bytes under DIR.
  check_tree() {
    local got
    got=$(find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{n++; b+=$1} END {printf "%d %d", n, b}') || true
    [ "$got" = "$count $bytes" ] ||
      { echo "warmup-bench: $tool copied ${got% *} files / ${got#* } bytes of $workload, expected $count / $bytes" >&2; return 1; }
  }
  case $tool in
    dscache)
      local cache=$WB_DEST/cache-$tag
      t0=$EPOCHREALTIME
      # shellcheck disable=SC2086  # WARMUP_ARGS is a word list
      DSCACHE_CACHE_DIR=$cache timed "$cpu_file" timeout "$WB_TOOL_TIMEOUT" "$WB_DSCACHE" warmup $WB_WARMUP_ARGS \
        "/data/wbench/$workload" >"$log" 2>&1 || rc=$?
      t1=$EPOCHREALTIME
      # The daemon the warmup started (not our child): its CPU before it stops.
      local dpid
      dpid=$(cat "$cache/daemon.lock" 2>/dev/null) || dpid=''
      [ -z "$dpid" ] || extra_ticks=$(cpu_ticks "$dpid")
      DSCACHE_CACHE_DIR=$cache "$WB_DSCACHE" daemon --stop >/dev/null 2>&1 || true
      if [ "$rc" != 0 ]; then
        echo "warmup-bench: dscache warmup exited $rc: $(tail -n 3 "$log")" >&2
      else
        # The mirror holds files of the objects' sizes from the listing on; a file is
        # filled when its allocated blocks cover its size (the cache is on tmpfs).
        local got
        got=$(find "$cache"/mirror/*/"$workload" -type f -printf '%s %b\n' 2>/dev/null |
          awk '$2 * 512 >= $1 {n++; b+=$1} END {printf "%d %d", n, b}') || true
        [ "$got" = "$count $bytes" ] || {
          echo "warmup-bench: dscache filled ${got% *} files / ${got#* } bytes of $workload, expected $count / $bytes" \
            "(counted in $cache/mirror/*/$workload)" >&2
          rc=1
        }
      fi
      rm -rf -- "$cache"
      ;;
    s3fs)
      local mnt=$WB_WORK/mnt-$tag pid
      mkdir -p "$mnt" "$out"
      # -f: stay in the foreground, so that $! is s3fs itself (stopped by pid on exit).
      s3fs "$WB_BUCKET" "$mnt" -f -o "use_path_request_style,url=$AWS_ENDPOINT_URL,passwd_file=$WB_WORK/s3fs.passwd,endpoint=us-east-1" \
        >>"$log" 2>&1 &
      pid=$!
      echo "$pid" >>"$WB_WORK/s3fs.pids"
      for _ in $(seq 100); do mountpoint -q "$mnt" && break; running "$pid" || break; sleep 0.1; done
      if ! mountpoint -q "$mnt"; then
        echo "warmup-bench: s3fs did not mount: $(tail -n 3 "$log")" >&2
        kill "$pid" 2>/dev/null || true
        rm -rf -- "$out"
        return 1
      fi
      local s3fs0
      s3fs0=$(cpu_ticks "$pid")
      t0=$EPOCHREALTIME
      timed "$cpu_file" timeout "$WB_TOOL_TIMEOUT" cp -r "$mnt/$workload" "$out/" 2>>"$log" || rc=$?
      t1=$EPOCHREALTIME
      extra_ticks=$(( $(cpu_ticks "$pid") - s3fs0 ))
      fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
      # s3fs exits once unmounted (it is our child: a zombie until waited for).
      for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      rmdir "$mnt" 2>/dev/null || true
      [ "$rc" = 0 ] || echo "warmup-bench: cp -r from s3fs exited $rc: $(tail -n 3 "$log")" >&2
      ;;
    rclone)
      mkdir -p "$out"
      t0=$EPOCHREALTIME
      # Without AWS_CA_BUNDLE: rclone 1.60 fails to start when it is set ("unable to
      # load custom CA bundle ... unsupported transport"), even for plain http.
      timed "$cpu_file" timeout "$WB_TOOL_TIMEOUT" env -u AWS_CA_BUNDLE rclone copy --transfers 32 "wbench:$WB_BUCKET/$workload" "$out/$workload" \
        >"$log" 2>&1 || rc=$?
      t1=$EPOCHREALTIME
      [ "$rc" = 0 ] || echo "warmup-bench: rclone exited $rc: $(tail -n 3 "$log")" >&2
      ;;
    boto3)
      mkdir -p "$out"
      t0=$EPOCHREALTIME
      timed "$cpu_file" timeout "$WB_TOOL_TIMEOUT" /usr/bin/python3 tests/bench/boto3_download.py --threads 64 \
        "$WB_BUCKET" "$workload/" "$out/$workload" >"$log" 2>&1 || rc=$?
      t1=$EPOCHREALTIME
      [ "$rc" = 0 ] || echo "warmup-bench: boto3 download exited $rc: $(tail -n 3 "$log")" >&2
      ;;
    raw)
      # store_bench times its own reads (no process start, no listing: it knows
      # the keys); its median of one run is that run's time.
      local s total=0 k cpu=0
      if [ "$workload" = small ]; then
        s=$(timed "$cpu_file" timeout "$WB_TOOL_TIMEOUT" "$WB_STORE_BENCH" small "s3://$WB_BUCKET" small/ "$count" 64 1 2>"$log" |
          sed -n 's/.* median_s=\([0-9.]*\).*/\1/p') || rc=$?
        total=${s:-} cpu=$(child_cpu "$cpu_file")
      else
        for ((k = 0; k < count; k++)); do
          s=$(timed "$cpu_file" timeout "$WB_TOOL_TIMEOUT" "$WB_STORE_BENCH" large "s3://$WB_BUCKET" "large/$k" 16 8 1 2>>"$log" |
            sed -n 's/.* median_s=\([0-9.]*\).*/\1/p') || rc=$?
          [ -n "$s" ] || break
          total=$(echo "$total + $s" | bc -l)
          cpu=$(echo "$cpu + $(child_cpu "$cpu_file")" | bc -l)
        done
      fi
      if [ "$rc" != 0 ] || [ -z "${s:-}" ]; then
        echo "warmup-bench: store_bench failed: $(tail -n 3 "$log")" >&2
        return 1
      fi
      # (store_bench's CPU includes its set-up and its own timing loop: a little high.)
      echo "$total $cpu"
      return 0
      ;;
    *) echo "warmup-bench: unknown tool $tool" >&2; return 2 ;;
  esac
  if [ "$tool" != dscache ] && [ "$rc" = 0 ]; then check_tree "$out" || rc=1; fi
  rm -rf -- "$out"
  [ "$rc" = 0 ] || return 1
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "$(child_cpu "$cpu_file") + $extra_ticks / $(getconf CLK_TCK)" | bc -l)"
}

if [ "${1:-}" = __run ]; then
  shift
  run_one "$@"
  exit
fi

# ---------------------------------------------------------------------------
# Main part: server, link, data, the alternating runs, the tables.
# ---------------------------------------------------------------------------
RUNS=${RUNS:-3}
if [ "${SMALL:-0}" = 1 ]; then
  SMALL_COUNT=${SMALL_COUNT:-500} LARGE_MIB=${LARGE_MIB:-32}
fi
SMALL_COUNT=${SMALL_COUNT:-10000}
SMALL_KIB=${SMALL_KIB:-100}
LARGE_COUNT=${LARGE_COUNT:-2}
LARGE_MIB=${LARGE_MIB:-256}
LINK=${LINK:-auto}
TOOLS=${TOOLS:-dscache s3fs rclone boto3 raw}
DEST=${DEST:-/dev/shm}
BUILD_DIR=${BUILD_DIR:-build}
read -ra tools <<<"$TOOLS"

log() { printf 'warmup-bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$SMALL_COUNT" -le 100000 ] || die "SMALL_COUNT above 100000 (store_bench names keys %05d)"
for t in "${tools[@]}"; do
  case $t in
    dscache|raw) ;;
    s3fs) { command -v s3fs && command -v fusermount3; } >/dev/null || die "s3fs/fusermount3 missing: sudo scripts/setup.sh" ;;
    rclone) command -v rclone >/dev/null || die "rclone missing: sudo scripts/setup.sh" ;;
    boto3) /usr/bin/python3 -c 'import boto3' 2>/dev/null || die "python3-boto3 missing: sudo scripts/setup.sh" ;;
    *) die "unknown tool '$t' in TOOLS" ;;
  esac
done
[[ " ${tools[*]} " == *" s3fs "* ]] && [ "$(id -u)" != 0 ] && die "s3fs (FUSE) needs root here; run with sudo or drop it from TOOLS"

scripts/build.sh --dir "$BUILD_DIR" >/dev/null
work=$(mktemp -d /tmp/dscache-warmupbench-XXXXXX)
dest=$(mktemp -d "$DEST/dscache-warmupbench-XXXXXX")
mkdir -p "$work/logs"
link_name=dswb$$ link_up='' link_reason='LINK=0' server_ns=''
cleanup() {
  local d p
  for d in "$dest"/cache-*; do
    if [ -d "$d" ]; then DSCACHE_CACHE_DIR=$d "$BUILD_DIR/tools/dscache" daemon --stop >/dev/null 2>&1 || true; fi
  done
  if [ -f "$work/s3fs.pids" ]; then
    while read -r p; do kill "$p" 2>/dev/null || true; done <"$work/s3fs.pids"
  fi
  for d in "$work"/mnt-*; do [ -d "$d" ] && { fusermount3 -u "$d" 2>/dev/null || umount -l "$d" 2>/dev/null || true; }; done
  scripts/s3-server.sh stop --dir "$work/s3" >/dev/null 2>&1 || true
  [ -z "$link_up" ] || scripts/bench/netlink-down.sh --name "$link_name" >/dev/null 2>&1 || true
  rm -rf -- "$work" "$dest"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The link first: radosgw must start inside its server namespace.
if [ "$LINK" != 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    link_reason="not root: network namespaces and TUN devices need root"
  elif env_lines=$(scripts/bench/netlink-up.sh --name "$link_name" --delay-ms 10 --rate 1gbit 2>"$work/netlink.err"); then
    eval "$env_lines"
    link_up=1 server_ns=$NETLINK_SERVER_NS
  else
    link_reason=$(grep -m1 'error:' "$work/netlink.err" | sed 's/^netlink-up: error: //')
    link_reason=${link_reason:-$(tail -n1 "$work/netlink.err")}
  fi
  if [ -z "$link_up" ]; then
    [ "$LINK" = 1 ] && die "the emulated link cannot be set up: $link_reason"
    log "the emulated link cannot be set up on this machine: $link_reason; measuring loopback only"
  fi
fi
# in_ns NS CMD...: CMD in namespace NS ('' = this one).
in_ns() { local ns=$1; shift; if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi; }

bucket=bench
mem_gib=$(( (SMALL_COUNT * SMALL_KIB / 1024 + LARGE_COUNT * LARGE_MIB) / 1024 + 3 ))
if [ -n "$link_up" ]; then
  eval "$(in_ns "$server_ns" scripts/s3-server.sh start --dir "$work/s3" --bucket "$bucket" \
    --mem-gib "$mem_gib" --host "$NETLINK_SERVER_ADDR")"
else
  eval "$(scripts/s3-server.sh start --dir "$work/s3" --bucket "$bucket" --mem-gib "$mem_gib")"
fi

log "uploading $SMALL_COUNT x $SMALL_KIB KiB and $LARGE_COUNT x $LARGE_MIB MiB ..."
in_ns "$server_ns" /usr/bin/python3 - "$bucket" "$SMALL_COUNT" "$SMALL_KIB" "$LARGE_COUNT" "$LARGE_MIB" <<'PY'
import boto3, concurrent.futures, os, sys
from botocore.config import Config
bucket, count, kib, large_count, large_mib = sys.argv[1], *map(int, sys.argv[2:])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))
for i in range(large_count):
    s3.put_object(Bucket=bucket, Key=f"large/{i}", Body=os.urandom(large_mib << 20))
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    list(pool.map(lambda i: s3.put_object(Bucket=bucket, Key=f"small/{i:05d}", Body=os.urandom(kib * 1024)),
                  range(count)))
PY

# What the runs (and `__run` under ip netns exec) read.
export WB_WORK=$work WB_DEST=$dest WB_BUCKET=$bucket WB_TOOL_TIMEOUT=${TOOL_TIMEOUT:-1800}
export WB_DSCACHE=$PWD/$BUILD_DIR/tools/dscache WB_STORE_BENCH=$PWD/$BUILD_DIR/tests/store_bench
export WB_WARMUP_ARGS=${WARMUP_ARGS---concurrency 64}
export WB_SMALL_COUNT=$SMALL_COUNT WB_SMALL_BYTES=$((SMALL_COUNT * SMALL_KIB * 1024))
export WB_LARGE_COUNT=$LARGE_COUNT WB_LARGE_BYTES=$((LARGE_COUNT * (LARGE_MIB << 20)))
export DSCACHE_MOUNTS="/data/wbench=s3://$bucket/" DSCACHE_IDLE_TIMEOUT=10m DSCACHE_INDEX_ENTRIES=1M
export DSCACHE_BIN=$WB_DSCACHE
printf '%s:%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$work/s3fs.passwd"
chmod 600 "$work/s3fs.passwd"
: >"$work/rclone.conf"
export RCLONE_CONFIG=$work/rclone.conf RCLONE_CONFIG_WBENCH_TYPE=s3 RCLONE_CONFIG_WBENCH_PROVIDER=Ceph
export RCLONE_CONFIG_WBENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_WBENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_WBENCH_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_WBENCH_REGION=us-east-1
export RCLONE_CONFIG_WBENCH_FORCE_PATH_STYLE=true

# Placements: name and the namespace its clients run in. On loopback the
# clients share the server's namespace (with the link up: the server's; the
# traffic then goes over lo, as on a host without namespaces).
placements=(loopback)
declare -A client_ns=([loopback]=$server_ns)
if [ -n "$link_up" ]; then placements+=(link); client_ns[link]=$NETLINK_CLIENT_NS; fi

# The link's own figures, from its client side: TCP connect time (one RTT) and one
# curl stream reading large/0, the median of 3.
if [ -n "$link_up" ]; then
  sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -sSf -o /dev/null)
  link_rtt_ms=$(for _ in 1 2 3; do
    in_ns "$NETLINK_CLIENT_NS" curl "${sig[@]}" -w '%{time_connect}\n' "$AWS_ENDPOINT_URL/$bucket/small/00000"
  done | sort -g | awk '{v[NR]=$1} END {printf "%.1f", 1000 * v[2]}')
  link_curl_mib=$(for _ in 1 2 3; do
    in_ns "$NETLINK_CLIENT_NS" curl "${sig[@]}" -w '%{speed_download}\n' "$AWS_ENDPOINT_URL/$bucket/large/0"
  done | sort -g | awk '{v[NR]=$1} END {printf "%.1f", v[2] / 1048576}')
  link_line_mib=$(awk -v r="$NETLINK_RATE" 'BEGIN {
    n = r + 0; u = tolower(substr(r, length(n "") + 1))
    m = (u == "gbit") ? 1e9 : (u == "mbit") ? 1e6 : (u == "kbit") ? 1e3 : 1
    printf "%.1f", n * m / 8 / 1048576 }')
fi

# CPU time of the delay line (clock ticks): near one core during a run, the
# emulation rather than the tool was the limit.
ticks=$(getconf CLK_TCK)
delayline_ticks() {
  local pid
  pid=$(cat "/tmp/dscache-netlink-$link_name/delayline.pid" 2>/dev/null) &&
    awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0
}
# retrans NS: TCP segments sent and retransmitted, in NS and the server's namespace.
retrans() {
  { in_ns "$1" cat /proc/net/snmp; [ "$1" = "$server_ns" ] || in_ns "$server_ns" cat /proc/net/snmp; } 2>/dev/null |
    awk '$1 == "Tcp:" && $2 ~ /^[A-Za-z]/ {for (i = 2; i <= NF; i++) col[$i] = i; next}
         $1 == "Tcp:" {out += $col["OutSegs"]; re += $col["RetransSegs"]} END {print out + 0, re + 0}'
}
# s3fs copies the small objects one at a time, about 3 round trips each: over the
# link that is about 16 objects/s, 10 minutes for 10,000, so the full run times it once.
S3FS_LINK_RUNS=${S3FS_LINK_RUNS:-$((SMALL_COUNT > 2000 ? 1 : RUNS))}

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
failures=0
: >"$work/results"
for ((run = 0; run < RUNS; run++)); do
  # Rotate the order each run, so that no tool always follows the same one.
  order=("${tools[@]:run % ${#tools[@]}}" "${tools[@]:0:run % ${#tools[@]}}")
  for place in "${placements[@]}"; do
    for workload in small large; do
      for tool in "${order[@]}"; do
        if [ "$place-$workload-$tool" = link-small-s3fs ] && [ "$run" -ge "$S3FS_LINK_RUNS" ]; then continue; fi
        tag=$place-$workload-$tool-$run
        c0=$(delayline_ticks) r0=$(retrans "${client_ns[$place]}")
        if out=$(in_ns "${client_ns[$place]}" "$self" __run "$tool" "$workload" "$tag"); then
          read -r secs cpu <<<"$out"
          echo "$place $workload $tool $secs $cpu" >>"$work/results"
          note=''
          if [ "$place" = link ]; then
            dl=$(echo "($(delayline_ticks) - $c0) / $ticks / $secs * 100" | bc -l)
            echo "$dl" >>"$work/delayline_cpu"
            echo "$(retrans "${client_ns[$place]}") $r0" | awk '{print $1 - $3, $2 - $4}' >>"$work/retrans"
            note=$(printf ', delay line at %.0f%% of a core' "$dl")
          fi
          log "run $((run + 1))/$RUNS: $place, $workload, $tool: $(printf '%.2f s, %.2f CPU s' "$secs" "$cpu")$note"
        else
          log "FAILED: $tag (log: $(tail -n 2 "$work/logs/$tag.log" 2>/dev/null | tr '\n' ' '))"
          failures=$((failures + 1))
        fi
      done
    done
  done
done

# rate PLACE WORKLOAD TOOL: objects/s (small) or MiB/s (large) of the median run; empty if none.
rate() {
  local s
  s=$(awk -v p="$1" -v w="$2" -v t="$3" '$1 == p && $2 == w && $3 == t {print $4}' "$work/results")
  [ -n "$s" ] || return 0
  s=$(median <<<"$s")
  if [ "$2" = small ]; then echo "$SMALL_COUNT / $s" | bc -l
  else echo "$LARGE_COUNT * $LARGE_MIB / $s" | bc -l; fi
}
label() {
  case $1 in
    dscache) echo "dscache warmup" ;; s3fs) echo "s3fs + cp -r" ;; rclone) echo "rclone copy --transfers 32" ;;
    boto3) echo "boto3, 64 threads" ;; raw) echo "raw engine (store_bench)" ;;
  esac
}
ratio() { [ -n "$1" ] && [ -n "$2" ] && printf '%.2f' "$(echo "$1 / $2" | bc -l)" || echo "-"; }

echo
echo "Warmup, radosgw $(radosgw --version 2>/dev/null | awk '{print $3}'), $(date -u +%Y-%m-%d), $(nproc) cores," \
  "medians of $RUNS runs; $SMALL_COUNT x $SMALL_KIB KiB and $LARGE_COUNT x $LARGE_MIB MiB; copies and caches in $DEST."
echo "dscache warmup ${WB_WARMUP_ARGS:-(no flags)}; raw engine: 64 in flight (small), 16 parallel ranges per object, one object after the other (large), into memory, no listing."
if [ -n "$link_up" ]; then
  echo "Link: radosgw and clients in two network namespaces joined by scripts/bench/delayline.py + tc tbf:" \
    "$NETLINK_RTT_MS ms RTT nominal ($link_rtt_ms ms TCP connect measured), $NETLINK_RATE each way" \
    "($link_line_mib MiB/s line rate; one curl stream: $link_curl_mib MiB/s)."
  echo "Loopback: clients in the server's namespace, over lo."
  [[ " ${tools[*]} " != *" s3fs "* ]] || [ "$S3FS_LINK_RUNS" -ge "$RUNS" ] ||
    echo "s3fs, small objects over the link: $S3FS_LINK_RUNS run(s) (S3FS_LINK_RUNS), its copies take minutes."
  [ ! -s "$work/delayline_cpu" ] || echo "The delay line (one Python process) used $(median <"$work/delayline_cpu" |
    xargs printf '%.0f')% of a core in the median link run, at most $(sort -g "$work/delayline_cpu" | tail -n1 |
    xargs printf '%.0f')%."
  [ ! -s "$work/retrans" ] || awk '{o += $1; r += $2} END {printf "TCP retransmitted %d of %d segments over the link runs (%.2f%%).\n", r, o, o ? 100 * r / o : 0}' "$work/retrans"
else
  echo "Link: not measured: $link_reason."
fi
# table_header COLUMN...: a Markdown header and separator: placement, workload, one column per tool, then COLUMN...
table_header() {
  local header="| placement | workload |" sep="|---|---|" t c
  for t in "${tools[@]}"; do header+=" $(label "$t") |"; sep+="---|"; done
  for c in "$@"; do header+=" $c |"; sep+="---|"; done
  printf '%s\n%s\n' "$header" "$sep"
}
ratio_columns=("dscache / best peer" "dscache / raw")
[ -z "$link_up" ] || ratio_columns+=("dscache / line rate")
echo
table_header "${ratio_columns[@]}"
for place in "${placements[@]}"; do
  for workload in small large; do
    if [ "$workload" = small ]; then what="$SMALL_COUNT x $SMALL_KIB KiB (objects/s)"; else what="$LARGE_COUNT x $LARGE_MIB MiB (MiB/s)"; fi
    row="| $place | $what |"
    declare -A r=()
    best='' best_tool=''
    for t in "${tools[@]}"; do
      r[$t]=$(rate "$place" "$workload" "$t")
      if [ -z "${r[$t]}" ]; then row+=" FAILED |"; continue; fi
      if [ "$workload" = small ]; then
        row+=" $(printf '%.0f (%.0f MiB/s)' "${r[$t]}" "$(echo "${r[$t]} * $SMALL_KIB / 1024" | bc -l)") |"
      else
        row+=" $(printf '%.1f' "${r[$t]}") |"
      fi
      case $t in dscache|raw) ;; *)
        if [ -z "$best" ] || (( $(echo "${r[$t]} > $best" | bc -l) )); then best=${r[$t]} best_tool=$t; fi ;;
      esac
    done
    row+=" $(ratio "${r[dscache]:-}" "$best")${best_tool:+ ($best_tool)} | $(ratio "${r[dscache]:-}" "${r[raw]:-}") |"
    if [ -n "$link_up" ]; then
      if [ "$place" = link ] && [ "$workload" = large ]; then row+=" $(ratio "${r[dscache]:-}" "$link_line_mib") |"
      elif [ "$place" = link ]; then
        row+=" $(ratio "$(echo "${r[dscache]:-0} * $SMALL_KIB / 1024" | bc -l)" "$link_line_mib") (MiB/s) |"
      else row+=" - |"; fi
    fi
    unset r
    echo "$row"
  done
done
# cpu_rate PLACE WORKLOAD TOOL: CPU ms per object (small) or CPU s per GiB (large), median over runs.
cpu_rate() {
  local v
  v=$(awk -v p="$1" -v w="$2" -v t="$3" -v n="$SMALL_COUNT" -v g="$(echo "$LARGE_COUNT * $LARGE_MIB / 1024" | bc -l)" \
    '$1 == p && $2 == w && $3 == t && NF >= 5 {print (w == "small") ? 1000 * $5 / n : $5 / g}' "$work/results")
  [ -z "$v" ] || median <<<"$v"
}
echo
echo "CPU time of each tool (user + system of its processes, dscache's daemon and s3fs included; medians):"
echo "milliseconds per object (small), seconds per GiB (large)."
echo
table_header "best peer / dscache"
for place in "${placements[@]}"; do
  for workload in small large; do
    if [ "$workload" = small ]; then what="CPU ms per object"; else what="CPU s per GiB"; fi
    row="| $place | $what |"
    declare -A c=()
    lowest=''
    for t in "${tools[@]}"; do
      c[$t]=$(cpu_rate "$place" "$workload" "$t")
      if [ -z "${c[$t]}" ]; then row+=" - |"; continue; fi
      row+=" $(printf '%.3f' "${c[$t]}") |"
      case $t in dscache|raw) ;; *)
        if [ -z "$lowest" ] || (( $(echo "${c[$t]} < $lowest" | bc -l) )); then lowest=${c[$t]}; fi ;;
      esac
    done
    row+=" $(ratio "$lowest" "${c[dscache]:-}") |"
    unset c
    echo "$row"
  done
done
echo
echo "Goals: small objects >= 1.5x the best peer in objects/s; large objects >= 0.9x the link rate / raw engine in MiB/s."
if [ "$failures" != 0 ]; then
  echo
  echo "$failures tool run(s) FAILED (copy incomplete or tool error): see the warmup-bench lines above."
  exit 1
fi
