#!/bin/bash
# `dscache store` against the real S3 server: bytes equal boto3's, listings
# complete, and every failure is one clear line on stderr with exit code 1.
#   cli_store_test.sh DSCACHE_BINARY   (environment from tests/integration/with-s3.sh)
set -uo pipefail
dscache=$1
bucket=$DSCACHE_TEST_S3_BUCKET
failures=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect_error NAME PATTERN COMMAND...: exit code 1, exactly one stderr line matching PATTERN.
expect_error() {
  local name=$1 pattern=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [ "$rc" = 1 ] || fail "$name: exit code $rc, expected 1"
  [ "$(wc -l <"$tmp/err")" = 1 ] || fail "$name: expected one line on stderr, got: $(cat "$tmp/err")"
  grep -q -- "$pattern" "$tmp/err" || fail "$name: stderr '$(cat "$tmp/err")' does not match '$pattern'"
  [ -s "$tmp/out" ] && fail "$name: unexpected stdout"
  echo "ok: $name: $(cat "$tmp/err")"
}

# Bytes: the same as boto3 reads.
want=$(/usr/bin/python3 - "$bucket" <<'PY'
import boto3, hashlib, os, sys
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], config=Config(s3={"addressing_style": "path"}))
body = s3.get_object(Bucket=sys.argv[1], Key="ranges/r.bin")["Body"].read()
print(hashlib.md5(body).hexdigest(), hashlib.md5(body[1000:5000]).hexdigest())
PY
)
got_all=$("$dscache" store cat "s3://$bucket/ranges/r.bin" | md5sum | cut -d' ' -f1)
got_range=$("$dscache" store cat --range 1000-5000 "s3://$bucket/ranges/r.bin" | md5sum | cut -d' ' -f1)
[ "$got_all $got_range" = "$want" ] || fail "cat: md5 '$got_all $got_range', boto3 says '$want'"
echo "ok: cat and cat --range match boto3"

n=$("$dscache" store ls "s3://$bucket/list/" | wc -l)
[ "$n" = 2050 ] || fail "ls list/: $n lines, expected 2000 objects + 50 prefixes"
n=$("$dscache" store ls -r "s3://$bucket/list/" | wc -l)
[ "$n" = 2500 ] || fail "ls -r list/: $n lines, expected 2500"
"$dscache" store stat "s3://$bucket/meta/rclone-mtime" | grep -q "mtime: 2020-08-21 15:50:12 (x-amz-meta-mtime)" ||
  fail "stat does not show x-amz-meta-mtime"
echo "ok: ls, ls -r, stat"

secret="wrong-secret-$$"
expect_error "wrong secret" "SignatureDoesNotMatch" \
  env AWS_SECRET_ACCESS_KEY="$secret" "$dscache" store cat "s3://$bucket/ranges/r.bin"
grep -q "$secret" "$tmp/err" && fail "the secret appears in the error message"
expect_error "missing key" "no such key" "$dscache" store cat "s3://$bucket/no/such/key"
expect_error "missing bucket" "bucket 'no-such-bucket-x' does not exist" "$dscache" store ls "s3://no-such-bucket-x/"
expect_error "bad endpoint" "AWS_ENDPOINT_URL='localhost:1'" env AWS_ENDPOINT_URL=localhost:1 "$dscache" store ls "s3://$bucket/"
expect_error "no credentials" "DSCACHE_S3_ANONYMOUS" \
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY HOME="$tmp" "$dscache" store ls "s3://$bucket/"
expect_error "unreachable endpoint" "cannot talk to http://127.0.0.1:1" \
  env AWS_ENDPOINT_URL=http://127.0.0.1:1 AWS_MAX_ATTEMPTS=2 "$dscache" store stat "s3://$bucket/k"
expect_error "bad log level" "DSCACHE_LOG='loud'" env DSCACHE_LOG=loud "$dscache" store ls "s3://$bucket/"

# HTTPS with the instance's own CA, through AWS_CA_BUNDLE.
got_tls=$(AWS_ENDPOINT_URL=$DSCACHE_TEST_S3_HTTPS_ENDPOINT AWS_CA_BUNDLE=$DSCACHE_TEST_S3_CA_FILE \
  "$dscache" store cat "s3://$bucket/ranges/r.bin" | md5sum | cut -d' ' -f1)
[ "$got_tls" = "${want%% *}" ] || fail "cat over https: md5 $got_tls"
echo "ok: cat over https with AWS_CA_BUNDLE"
expect_error "untrusted certificate" "TLS failure" \
  env AWS_ENDPOINT_URL="$DSCACHE_TEST_S3_HTTPS_ENDPOINT" "$dscache" store stat "s3://$bucket/ranges/r.bin"

# The file:// store through the same command.
mkdir -p "$tmp/tree/sub" && printf 'hello file store' >"$tmp/tree/sub/f.txt"
[ "$("$dscache" store cat --range 6-10 "file://$tmp/tree/sub/f.txt")" = "file" ] || fail "file:// cat --range"
"$dscache" store ls "file://$tmp/tree/" | grep -q "PRE sub/" || fail "file:// ls"
echo "ok: file:// store"

"$dscache" --help | grep -q "store" || fail "--help lists no commands"
"$dscache" store --help | grep -q "AWS_PROFILE" || fail "store --help"
"$dscache" nonsense >/dev/null 2>&1; [ $? = 2 ] || fail "unknown command must exit 2"

if [ "$failures" != 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "all dscache store checks passed"
