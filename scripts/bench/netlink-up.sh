#!/usr/bin/env bash
# An emulated remote link for benchmarks: two network namespaces joined by a
# user-space delay line (scripts/bench/delayline.py; this kernel has no netem)
# with a `tc tbf` rate limit in each direction.
#   scripts/bench/netlink-up.sh [--name NAME] [--delay-ms ONE_WAY] [--rate RATE] [--dir DIR]
# Defaults: NAME=dscache, 10 ms each way (20 ms RTT), 1gbit, DIR=/tmp/dscache-netlink-NAME.
# Creates namespaces NAME-cli (10.77.0.1) and NAME-srv (10.77.0.2); run the
# server with `ip netns exec NAME-srv ...` listening on 10.77.0.2 and the
# clients with `ip netns exec NAME-cli ...`. Prints export lines for eval:
#   NETLINK_CLIENT_NS NETLINK_SERVER_NS NETLINK_CLIENT_ADDR NETLINK_SERVER_ADDR
#   NETLINK_RTT_MS NETLINK_RATE
# On failure: one line saying why on stderr, nothing left behind, exit 1.
# scripts/bench/netlink-down.sh --name NAME removes it. Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

name=dscache delay=10 rate=1gbit dir=''
while [ $# -gt 0 ]; do
  case $1 in
    --name) name=${2:?--name needs a value}; shift 2 ;;
    --delay-ms) delay=${2:?--delay-ms needs a value}; shift 2 ;;
    --rate) rate=${2:?--rate needs a value}; shift 2 ;;
    --dir) dir=${2:?--dir needs a value}; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "netlink-up.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $name =~ ^[A-Za-z0-9_.-]{1,40}$ ]] || { echo "netlink-up.sh: bad --name '$name'" >&2; exit 2; }
[[ $delay =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "netlink-up.sh: bad --delay-ms '$delay'" >&2; exit 2; }
dir=${dir:-/tmp/dscache-netlink-$name}
cli=$name-cli srv=$name-srv cli_addr=10.77.0.1 srv_addr=10.77.0.2

log() { printf 'netlink-up: %s\n' "$*" >&2; }
created=''
cleanup_on_error() {
  [ -n "$created" ] || return 0
  "$here/netlink-down.sh" --name "$name" --dir "$dir" >/dev/null 2>&1 || true
}
fail() { log "error: $*"; cleanup_on_error; exit 1; }

# What the emulation needs, each checked with a message that names it.
[ "$(id -u)" = 0 ] || fail "needs root (network namespaces, TUN devices, tc)"
command -v ip >/dev/null || fail "no 'ip' command (iproute2)"
command -v tc >/dev/null || fail "no 'tc' command (iproute2)"
[ -x /usr/bin/python3 ] || fail "no /usr/bin/python3 for the delay line"
[ -c /dev/net/tun ] || fail "no /dev/net/tun (TUN devices unavailable: modprobe tun, or a container without it)"
for ns in "$cli" "$srv"; do
  ! ip netns list 2>/dev/null | grep -qw -- "$ns" ||
    { log "error: namespace $ns already exists (scripts/bench/netlink-down.sh --name $name)"; exit 1; }
done

mkdir -p "$dir"
created=1
ip netns add "$cli" 2>"$dir/err" || fail "ip netns add: $(head -n1 "$dir/err")"
ip netns add "$srv" 2>"$dir/err" || fail "ip netns add: $(head -n1 "$dir/err")"
ip -n "$cli" link set lo up
ip -n "$srv" link set lo up

nohup /usr/bin/python3 "$here/delayline.py" --ns-a "$cli" --dev-a dl0 --ns-b "$srv" --dev-b dl1 \
  --delay-ms "$delay" --vnet </dev/null >"$dir/delayline.log" 2>&1 &
echo $! >"$dir/delayline.pid"
for _ in $(seq 100); do
  grep -q ready "$dir/delayline.log" 2>/dev/null && break
  kill -0 "$(cat "$dir/delayline.pid")" 2>/dev/null || break
  sleep 0.1
done
grep -q ready "$dir/delayline.log" ||
  fail "the delay line did not start: $(tail -n1 "$dir/delayline.log" 2>/dev/null)"

ip -n "$cli" addr add "$cli_addr" peer "$srv_addr" dev dl0
ip -n "$srv" addr add "$srv_addr" peer "$cli_addr" dev dl1
# A TUN device queues at most txqueuelen packets (default 500, 6 ms at 1 Gbit/s)
# for the delay line to read; on a busy machine the Python process is off the
# CPU for longer than that and the kernel drops the rest: losses the emulated
# link does not have. The tbf below is the link's one bounded queue.
ip -n "$cli" link set dl0 txqueuelen 10000 up
ip -n "$srv" link set dl1 txqueuelen 10000 up
# The bottleneck, each direction; burst covers one GSO packet several times over.
while read -r ns dev; do
  tc -n "$ns" qdisc add dev "$dev" root tbf rate "$rate" burst 256kb latency 20ms 2>"$dir/err" ||
    fail "tc tbf on $dev in $ns: $(head -n1 "$dir/err") (sch_tbf missing?)"
done <<<"$cli dl0
$srv dl1"
# Without this the default buffers cap one TCP flow at about 130 MiB/s per
# 20 ms of RTT (window / RTT), below 1 Gbit/s at larger delays.
for ns in "$cli" "$srv"; do
  ip netns exec "$ns" sysctl -qw net.ipv4.tcp_rmem="4096 131072 33554432" net.ipv4.tcp_wmem="4096 16384 33554432"
done

# One TCP connect across the line proves the path works in both directions.
ip netns exec "$srv" /usr/bin/python3 - "$srv_addr" "$cli" <<'PY' 2>"$dir/err" || fail "no TCP path across the delay line: $(tail -n1 "$dir/err")"
import ctypes, os, socket, sys, threading, time
addr, cli = sys.argv[1], sys.argv[2]
srv = socket.create_server((addr, 0)); port = srv.getsockname()[1]
threading.Thread(target=lambda: srv.accept(), daemon=True).start()
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(f"/run/netns/{cli}", os.O_RDONLY)
assert libc.setns(fd, 0x40000000) == 0, "setns"
t0 = time.monotonic(); socket.create_connection((addr, port), timeout=5).close()
print(f"connect {1000 * (time.monotonic() - t0):.1f} ms", file=sys.stderr)
PY
log "up: $cli=$cli_addr <-> $srv=$srv_addr, RTT $(awk -v d="$delay" 'BEGIN{print 2*d}') ms, $rate each way ($(tail -n1 "$dir/err"))"
created=''
cat <<EOF
export NETLINK_CLIENT_NS='$cli'
export NETLINK_SERVER_NS='$srv'
export NETLINK_CLIENT_ADDR='$cli_addr'
export NETLINK_SERVER_ADDR='$srv_addr'
export NETLINK_RTT_MS='$(awk -v d="$delay" 'BEGIN{print 2*d}')'
export NETLINK_RATE='$rate'
EOF
