#!/usr/bin/env bash
# A real, SigV4-checking S3 server on 127.0.0.1 (or --host) for tests and benchmarks:
# single-node Ceph (1 monitor, 1 in-memory "memstore" OSD) + radosgw.
# All state lives under one directory, so instances in different directories
# can run side by side.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage:
  scripts/s3-server.sh start  [--dir DIR] [--port PORT] [--bucket NAME] [--mem-gib N] [--host ADDR]
  scripts/s3-server.sh env    [--dir DIR]
  scripts/s3-server.sh stop   [--dir DIR]
  scripts/s3-server.sh status [--dir DIR]
  scripts/s3-server.sh --help

start: run radosgw on 127.0.0.1 (a free port unless --port) with a random S3 user and
  bucket NAME (default dscache-test); print export lines: eval "$(scripts/s3-server.sh start)".
  It also serves HTTPS on a second free port, with a certificate from a throwaway
  per-instance CA (DSCACHE_TEST_S3_HTTPS_ENDPOINT, DSCACHE_TEST_S3_CA_FILE).
  --mem-gib: in-memory capacity (default 6). --host: the IPv4 address radosgw listens on
  (default 127.0.0.1; e.g. an address inside a network namespace, for a start run under
  `ip netns exec`; the Ceph daemons stay on 127.0.0.1). If already running: just print the lines.
env: print them again. stop: stop it and delete DIR. status: exit 0 if it answers HTTP(S).
DIR defaults to $DSCACHE_S3_DIR or /tmp/dscache-s3-server.
EOF
}

# fd 3 carries only the env lines; everything else goes to stderr, so that
# eval "$(... start)" never sees progress output.
exec 3>&1 1>&2

log() { printf 's3-server: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

CMD=${1:-}; [ $# -gt 0 ] && shift
DIR=${DSCACHE_S3_DIR:-/tmp/dscache-s3-server} PORT='' BUCKET=dscache-test MEM_GIB=6 HOST=127.0.0.1
while [ $# -gt 0 ]; do
  case $1 in
    --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --bucket) BUCKET=${2:?--bucket needs a value}; shift 2 ;;
    --mem-gib) MEM_GIB=${2:?--mem-gib needs a value}; shift 2 ;;
    --host) HOST=${2:?--host needs a value}; shift 2 ;;
    -h|--help) usage >&3; exit 0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
done
# Absolute, so that the daemons' command lines (-c DIR/ceph.conf) identify them.
DIR=$(realpath -m -- "$DIR")
CONF=$DIR/ceph.conf
MARKER=$DIR/.dscache-s3-server   # proves DIR is ours before we rm -rf it
export CEPH_CONF=$CONF

# PID of our daemon BIN (ceph-mon|ceph-osd|radosgw), or fail. A pid file alone is
# not trusted (PIDs get reused), and right after a daemon forks its pid file
# may not exist yet, so we also accept any BIN process started with our conf.
daemon_pid() {
  local bin=$1 name pid f args
  case $bin in ceph-mon) name=mon.a ;; ceph-osd) name=osd.0 ;; *) name=client.rgw.local ;; esac
  f=$DIR/run/$name.pid
  for pid in $( { cat "$f" 2>/dev/null || true; } ) $(pgrep -x "$bin" || true); do
    args=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") || continue
    [ "$(basename -- "$(head -n1 <<<"$args")")" = "$bin" ] || continue
    grep -qxF -- "$CONF" <<<"$args" && { echo "$pid"; return 0; }
  done
  return 1
}

port_in_use() {  # any TCP socket bound to port $1, IPv4 or IPv6, any state
  awk -v p="$(printf ':%04X' "$1")" 'FNR > 1 && substr($2, length($2) - 4) == p { f = 1 }
    END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# A random free port below the ephemeral range (so outgoing connections don't
# grab it before we bind) and above Ceph's OSD range 6800-7300. Random rather
# than "first free" so that instances starting concurrently don't pick the same.
# Arguments: ports already chosen (not bound yet, so port_in_use can't see them).
pick_port() {
  local lo=10000 hi p _
  hi=$(( $(cut -f1 /proc/sys/net/ipv4/ip_local_port_range) - 1 ))
  [ "$hi" -gt $((lo + 1000)) ] || hi=65000
  for _ in $(seq 200); do
    p=$((lo + SRANDOM % (hi - lo + 1)))
    [[ " $* " != *" $p "* ]] && ! port_in_use "$p" && { echo "$p"; return 0; }
  done
  die "no free TCP port found in $lo-$hi"
}

env_var() { sed -n "s/^export $1='\(.*\)'\$/\1/p" "$DIR/env" 2>/dev/null; }

# answers URL [TIMEOUT [CA_FILE]]: any HTTP status at all; with CA_FILE, only
# over TLS with a certificate that CA_FILE vouches for.
answers() { [ "$(curl -s -o /dev/null -m "${2:-5}" ${3:+--cacert "$3"} -w '%{http_code}' "$1/" || true)" != 000 ]; }
# Instances started before HTTPS was added have no such line; they count as
# answering, so that their users are not cut off (start warns about them).
answers_tls() {
  local url; url=$(env_var DSCACHE_TEST_S3_HTTPS_ENDPOINT)
  [ -z "$url" ] || answers "$url" "${1:-5}" "$(env_var DSCACHE_TEST_S3_CA_FILE)"
}
daemons_up() { daemon_pid ceph-mon >/dev/null && daemon_pid ceph-osd >/dev/null && daemon_pid radosgw >/dev/null; }
running() { [ -f "$DIR/env" ] && daemons_up && answers "$(env_var AWS_ENDPOINT_URL)" && answers_tls; }

# Whether PID still runs; a zombie (exited, not yet reaped by PID 1) does not.
alive() { local st; st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${st:0:1}" != Z ]; }

# Ends only our own daemons, then removes DIR (only if it is ours). One at a
# time, clients first: killed together, radosgw and the OSD wait seconds for
# the monitor that is already gone.
stop_instance() {
  local bin pid i
  for bin in radosgw ceph-osd ceph-mon; do
    pid=$(daemon_pid "$bin") || continue
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 150); do  # 10 s of grace, then SIGKILL
      alive "$pid" || break
      [ "$i" = 100 ] && { log "$bin ignored SIGTERM for 10 s, killing it"; kill -KILL "$pid" 2>/dev/null || true; }
      sleep 0.1
    done
  done
  if [ -f "$MARKER" ]; then rm -rf -- "$DIR"
  elif [ -d "$DIR" ] && [ -n "$(ls -A -- "$DIR")" ]; then die "$DIR has no $MARKER: not deleting it"
  else rm -rf -- "$DIR"; fi
}

STARTING=''
# One line naming what failed, the tail of the log that explains it, then
# tear down what we started (via the EXIT trap).
fail() {
  log "start failed: $1 (log: $2)"
  [ -f "$2" ] && tail -n 20 -- "$2" | sed 's/^/    /' >&2
  exit 1
}
# shellcheck disable=SC2317  # invoked by the trap
on_exit() { local rc=$?; if [ -n "$STARTING" ] && [ "$rc" != 0 ]; then STARTING=''; stop_instance || true; fi; }

# Daemons must not inherit our stdout or fd 3: $(... start) would wait for them forever.
run_to() { local out=$1; shift; "$@" </dev/null >>"$out" 2>&1 3>&-; }
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }    # single-quote for the shell
rand() { local s; s=$(head -c 4096 /dev/urandom | tr -dc "$1"); echo "${s:0:$2}"; }

# A throwaway CA (ca.pem, what clients trust) and a server certificate it signs
# (server.pem + server.key, for radosgw), all in DIR/tls. EC P-256: generated in
# milliseconds. The names are in subjectAltName because TLS clients ignore the
# CN; strict verifiers (OpenSSL X509_STRICT, webpki) want the CA's
# basicConstraints/keyUsage and the key identifiers. 30 days outlives any test run.
make_tls() {
  local t=$DIR/tls log=$1 san_extra=''
  [ "$HOST" = 127.0.0.1 ] || san_extra=",IP:$HOST"
  (
    umask 077   # private keys
    mkdir -p "$t"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/ca.key"
    openssl req -x509 -new -key "$t/ca.key" -subj '/CN=dscache s3-server test CA' -days 30 \
      -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
      -out "$t/ca.pem"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/server.key"
    openssl req -new -key "$t/server.key" -subj '/CN=localhost' |
      openssl x509 -req -CA "$t/ca.pem" -CAkey "$t/ca.key" -days 30 -out "$t/server.pem" -extfile <(
        printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
          'extendedKeyUsage=serverAuth' "subjectAltName=IP:127.0.0.1,DNS:localhost${san_extra}" \
          'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid')
    # Nothing else is ever to be signed by this CA.
    rm -f -- "$t/ca.key"
    chmod 644 "$t/ca.pem" "$t/server.pem"
  ) </dev/null >>"$log" 2>&1 3>&-
}

start() {
  [[ $MEM_GIB =~ ^[1-9][0-9]*$ ]] || die "--mem-gib must be a positive integer"
  [[ -z $PORT || $PORT =~ ^[1-9][0-9]{0,4}$ ]] || die "--port must be a port number"
  [[ $BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "invalid bucket name: $BUCKET"
  [[ $HOST =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] || die "--host must be an IPv4 address"
  if [ -f "$DIR/env" ] && daemons_up; then
    # A busy server may answer slowly; never kill an instance that may be in use.
    answers "$(env_var AWS_ENDPOINT_URL)" 15 || die "instance in $DIR runs but does not answer HTTP; stop it first"
    answers_tls 15 || die "instance in $DIR runs but does not answer HTTPS; stop it first"
    [ -n "$(env_var DSCACHE_TEST_S3_HTTPS_ENDPOINT)" ] ||
      log "warning: instance in $DIR predates HTTPS support (no DSCACHE_TEST_S3_HTTPS_ENDPOINT); stop and start it to get HTTPS"
    log "already running in $DIR"; cat "$DIR/env" >&3; return 0
  fi
  if [ -e "$DIR" ]; then log "removing stale state in $DIR"; stop_instance; fi
  [ -z "$PORT" ] || ! port_in_use "$PORT" || die "port $PORT is already in use"
  STARTING=1; trap on_exit EXIT; trap 'log interrupted; exit 130' INT TERM
  mkdir -p "$DIR"/{log,run,mon/ceph-a,osd/ceph-0,rgw,crash}; touch "$MARKER"
  local t0=$SECONDS mon_port rgw_port tls_port fsid osd_uuid id code key secret L=$DIR/log
  local ca=$DIR/tls/ca.pem
  rgw_port=${PORT:-$(pick_port)}; mon_port=$(pick_port "$rgw_port")
  tls_port=$(pick_port "$rgw_port" "$mon_port")
  make_tls "$L/tls.log" || fail "generating the TLS certificates with openssl" "$L/tls.log"
  fsid=$(cat /proc/sys/kernel/random/uuid)
  # auth is off between daemons (nothing but loopback); S3 requests are still
  # signature-checked by radosgw. "crc secure": without it radosgw retries
  # forever on "get_initial_auth_request returned -13".
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
ms bind ipv6 = false
ms mon client mode = crc secure
# Keep every file under DIR (the defaults write to /var/log/ceph, /var/lib/ceph).
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
mon cluster log file = default=$DIR/log/ceph.\$channel.log cluster=$DIR/log/ceph.log
crash dir = $DIR/crash
# Never created (auth is off); keeps clients from looking in /etc/ceph.
keyring = $DIR/keyring
mon data = $DIR/mon/\$cluster-\$id
osd data = $DIR/osd/\$cluster-\$id
# A nearly full /tmp must not make the monitor shut itself down.
mon data avail crit = 0
mon data avail warn = 0
# Pools are created one by one at startup; the default 1 s batching of map
# updates made that the bulk of the start time.
paxos propose interval = 0.05
# CLI tools give up on an unreachable monitor after 30 s, not 300 s.
client mount timeout = 30
osd objectstore = memstore
memstore device bytes = $((MEM_GIB << 30))
# RADOS-level cap (default 128 MiB) for tools writing whole objects via librados;
# radosgw itself stripes S3 objects into 4 MiB RADOS objects.
osd max object size = 1073741824
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
mon max pg per osd = 1000
debug ms = 0/0
[client.rgw.local]
# tcp_nodelay: without it ~25% of small GETs stall ~40 ms (Nagle + delayed ACK).
rgw frontends = beast endpoint=$HOST:$rgw_port ssl_endpoint=$HOST:$tls_port ssl_certificate=$DIR/tls/server.pem ssl_private_key=$DIR/tls/server.key tcp_nodelay=1
rgw data = $DIR/rgw
rgw dns name = localhost
rgw max put size = 5368709120
debug rgw = 0/0
rgw enable ops log = false
rgw enable usage log = false
# Lifecycle workers sleep in 5 s steps and radosgw waits for them on exit;
# the tests need no lifecycle rules.
rgw enable lc threads = false
# Deleted/overwritten data is only freed by garbage collection (default: after
# 2 h); free it within a minute so RAM-backed capacity is reusable in tests.
rgw gc obj min wait = 30
rgw gc processor period = 30
EOF
  monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$DIR/monmap" >/dev/null
  run_to "$L/mon.out" ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" || fail "ceph-mon --mkfs" "$L/mon.out"
  run_to "$L/mon.out" ceph-mon -c "$CONF" -i a || fail "starting ceph-mon" "$L/mon.a.log"
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  id=$(timeout 40 ceph -c "$CONF" --connect-timeout 30 osd new "$osd_uuid" 2>>"$L/ceph-cli.log") ||
    fail "monitor on port $mon_port not answering (ceph osd new)" "$L/mon.a.log"
  [ "$id" = 0 ] || fail "unexpected OSD id '$id'" "$L/ceph-cli.log"
  run_to "$L/osd.out" ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" || fail "ceph-osd --mkfs" "$L/osd.out"
  run_to "$L/osd.out" ceph-osd -c "$CONF" -i 0 || fail "starting ceph-osd" "$L/osd.0.log"
  run_to "$L/rgw.out" radosgw -c "$CONF" -n client.rgw.local || fail "starting radosgw" "$L/client.rgw.local.log"
  log "waiting for radosgw on $HOST:$rgw_port (mon port $mon_port)"
  local deadline=$((SECONDS + 45))
  until answers "http://$HOST:$rgw_port" 2; do
    [ $SECONDS -lt $deadline ] || fail "radosgw not answering HTTP after 45 s" "$L/client.rgw.local.log"
    daemon_pid ceph-mon >/dev/null || fail "ceph-mon died" "$L/mon.a.log"
    daemon_pid ceph-osd >/dev/null || fail "ceph-osd died" "$L/osd.0.log"
    daemon_pid radosgw >/dev/null || fail "radosgw died" "$L/client.rgw.local.log"
    sleep 0.2
  done
  # Same frontend, so the TLS listener is bound by now; this catches a
  # certificate radosgw serves but clients reject (name, chain, expiry).
  code=$(curl -sS -o /dev/null -m 10 --cacert "$ca" -w '%{http_code}' \
    "https://$HOST:$tls_port/" 2>"$L/https-check.log") || true
  [ "${code:-000}" != 000 ] ||
    fail "radosgw not answering HTTPS on $HOST:$tls_port ($(head -n1 "$L/https-check.log"))" \
      "$L/client.rgw.local.log"
  key=DSCT$(rand 'A-Z0-9' 16); secret=$(rand 'A-Za-z0-9' 40)
  timeout 60 radosgw-admin -c "$CONF" user create --uid=dscache-test --display-name=dscache-test \
    --access-key="$key" --secret-key="$secret" >/dev/null 2>"$L/radosgw-admin.log" ||
    fail "radosgw-admin user create" "$L/radosgw-admin.log"
  code=$(curl -sS -m 30 -o "$L/create-bucket.log" -w '%{http_code}' -X PUT \
    --aws-sigv4 aws:amz:us-east-1:s3 --user "$key:$secret" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "http://$HOST:$rgw_port/$BUCKET" 2>"$L/curl.err") || true
  cat "$L/curl.err" >>"$L/create-bucket.log"
  [ "$code" = 200 ] || fail "creating bucket $BUCKET (HTTP $code)" "$L/create-bucket.log"
  {
    echo "export AWS_ENDPOINT_URL=$(q "http://$HOST:$rgw_port")"
    echo "export AWS_ACCESS_KEY_ID=$(q "$key")"
    echo "export AWS_SECRET_ACCESS_KEY=$(q "$secret")"
    echo "export AWS_REGION='us-east-1'"
    echo "export DSCACHE_TEST_S3_ENDPOINT=$(q "http://$HOST:$rgw_port")"
    echo "export DSCACHE_TEST_S3_BUCKET=$(q "$BUCKET")"
    echo "export DSCACHE_TEST_S3_DIR=$(q "$DIR")"
    echo "export DSCACHE_TEST_S3_HTTPS_ENDPOINT=$(q "https://$HOST:$tls_port")"
    echo "export DSCACHE_TEST_S3_CA_FILE=$(q "$ca")"
  } >"$DIR/env.tmp"
  mv "$DIR/env.tmp" "$DIR/env"   # atomic: `running` must never see half a file
  STARTING=''
  log "up on http://$HOST:$rgw_port and https://$HOST:$tls_port in $((SECONDS - t0)) s (state in $DIR)"
  cat "$DIR/env" >&3
}

case $CMD in
  start) start ;;
  env) running || die "no running instance in $DIR"; cat "$DIR/env" >&3 ;;
  stop) stop_instance; log "stopped ($DIR)" ;;
  status)
    if running; then echo "running: $(env_var AWS_ENDPOINT_URL) ($DIR)" >&3
    else echo "not running ($DIR)" >&3; exit 1; fi ;;
  -h|--help|help) usage >&3 ;;
  *) usage; exit 2 ;;
esac
