#!/bin/bash
# scripts/s3-server.sh: two instances started at the same time in different
# directories come up on different ports, each serves signed requests, and
# stopping one leaves the other running.
#   s3_server_test.sh WORKDIR
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
server=$here/scripts/s3-server.sh
work=$1
rm -rf "$work" && mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
trap '"$server" stop --dir "$work/a" >/dev/null 2>&1; "$server" stop --dir "$work/b" >/dev/null 2>&1' EXIT

"$server" start --dir "$work/a" --bucket bucket-a >"$work/a.env" 2>"$work/a.log" & pa=$!
"$server" start --dir "$work/b" --bucket bucket-b >"$work/b.env" 2>"$work/b.log" & pb=$!
wait $pa || fail "instance a did not start: $(tail -3 "$work/a.log")"
wait $pb || fail "instance b did not start: $(tail -3 "$work/b.log")"

# signed_get ENVFILE: 200 for a signed PUT then GET of one object in that instance's bucket.
roundtrip() {
  (
    set -e
    eval "$(cat "$1")"
    body="hello from $DSCACHE_TEST_S3_BUCKET"
    printf '%s' "$body" >"$1.body"
    sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
      -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -sf)
    curl "${sig[@]}" -T "$1.body" "$AWS_ENDPOINT_URL/$DSCACHE_TEST_S3_BUCKET/k" >/dev/null
    [ "$(curl "${sig[@]}" "$AWS_ENDPOINT_URL/$DSCACHE_TEST_S3_BUCKET/k")" = "$body" ]
    # A request signed with the wrong secret must be refused.
    ! curl --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:wrong" \
      -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -sf "$AWS_ENDPOINT_URL/$DSCACHE_TEST_S3_BUCKET/k" >/dev/null
  )
}
roundtrip "$work/a.env" || fail "instance a: signed PUT/GET round trip"
roundtrip "$work/b.env" || fail "instance b: signed PUT/GET round trip"
port_a=$(sed -n "s/.*AWS_ENDPOINT_URL='http:\/\/127.0.0.1:\([0-9]*\)'.*/\1/p" "$work/a.env")
port_b=$(sed -n "s/.*AWS_ENDPOINT_URL='http:\/\/127.0.0.1:\([0-9]*\)'.*/\1/p" "$work/b.env")
[ -n "$port_a" ] && [ "$port_a" != "$port_b" ] || fail "ports '$port_a' and '$port_b' must differ"

"$server" stop --dir "$work/a" 2>/dev/null || fail "stop a"
"$server" status --dir "$work/a" 2>/dev/null && fail "a still answers after stop"
"$server" status --dir "$work/b" 2>/dev/null || fail "stopping a stopped b too"
roundtrip "$work/b.env" || fail "instance b after a stopped"
"$server" stop --dir "$work/b" 2>/dev/null || fail "stop b"
[ -e "$work/b" ] && fail "stop left $work/b behind"

[ "$failures" = 0 ] && echo "ok: two concurrent instances on ports $port_a and $port_b" && exit 0
exit 1
