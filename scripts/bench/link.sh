# Sourced by the benchmark scripts that measure through the emulated link
# (capacity.sh, mtime.sh): the link or loopback, and radosgw on its far side.
# The caller defines log and die, and sets $work (a scratch directory) and
# $LINK (auto, 0 or 1) first.
#   bench_link NAME        the link named NAME (scripts/bench/netlink-up.sh:
#                          20 ms RTT, 1 Gbit/s) where it can be made (root),
#                          else loopback, said on stderr; LINK=1 fails without
#                          it. Sets link_up, server_ns, client_ns, placement.
#   bench_s3 BUCKET GIB    starts radosgw in $work/s3 on the server's side and
#                          exports its environment (AWS_ENDPOINT_URL, keys).
#   bench_link_down        for the caller's cleanup.
#   in_ns NS CMD...        CMD in namespace NS ("" for this one).
link_up='' server_ns='' client_ns='' placement=loopback bench_link_name=''

in_ns() { local ns=$1; shift; if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi; }

bench_link() {
  bench_link_name=$1
  local env_lines
  if [ "$LINK" != 0 ] && [ "$(id -u)" = 0 ] &&
     env_lines=$(scripts/bench/netlink-up.sh --name "$bench_link_name" --delay-ms 10 --rate 1gbit 2>"$work/netlink.err"); then
    eval "$env_lines"
    link_up=1 server_ns=$NETLINK_SERVER_NS client_ns=$NETLINK_CLIENT_NS
    placement="emulated link (20 ms RTT, 1 Gbit/s)"
  else
    [ "$LINK" = 1 ] && die "the emulated link cannot be set up: $(tail -n1 "$work/netlink.err" 2>/dev/null)"
    log "no emulated link here: measuring over loopback"
  fi
}

bench_s3() {
  local bucket=$1 gib=$2
  if [ -n "$link_up" ]; then
    eval "$(in_ns "$server_ns" scripts/s3-server.sh start --dir "$work/s3" --bucket "$bucket" --mem-gib "$gib" \
      --host "$NETLINK_SERVER_ADDR")"
  else
    eval "$(scripts/s3-server.sh start --dir "$work/s3" --bucket "$bucket" --mem-gib "$gib")"
  fi
}

bench_link_down() {
  scripts/s3-server.sh stop --dir "$work/s3" >/dev/null 2>&1 || true
  [ -z "$link_up" ] || scripts/bench/netlink-down.sh --name "$bench_link_name" >/dev/null 2>&1 || true
}
