#!/bin/bash
# The examples/ programs end to end, small: make_dataset.py uploads 3 classes x 40 JPEGs and
# 2 tar shards to the test S3 server, then train.py (1 epoch, 2 workers) and
# train_tar_shards.py (1 epoch) read them through libdscache.so from a cold cache, and
# md5sum checks every file read through the shim against the uploaded bytes.
#   examples_test.sh LIBDSCACHE DSCACHE_BINARY WORKDIR
# (environment from tests/integration/with-s3.sh; DSCACHE_TEST_PRELOAD_FIRST: a sanitizer
# runtime to preload ahead of the library)
set -euo pipefail
lib=$(realpath "$1") dscache=$(realpath "$2") work=$(realpath -m "$3")
here=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
prefix=examples-$$

rm -rf "$work" && mkdir -p "$work"
export DSCACHE_MOUNTS="/data/ex=s3://$DSCACHE_TEST_S3_BUCKET/$prefix" DSCACHE_CACHE_DIR=$work/cache \
       DSCACHE_BIN=$dscache DSCACHE_INDEX_ENTRIES=64K
trap '"$dscache" daemon --stop >/dev/null 2>&1 || true' EXIT
fail() { echo "examples_test: FAIL: $*" >&2; exit 1; }

"$PY" "$here/examples/make_dataset.py" --out "$work/dataset" --classes 3 --per-class 40 --shards 2 \
  --upload "s3://$DSCACHE_TEST_S3_BUCKET/$prefix"

# Under the shim from here on. A sanitizer build preloads its runtime first; leaks in
# Python itself are not ours (the last detect_leaks setting wins).
shim() {
  LD_PRELOAD="${DSCACHE_TEST_PRELOAD_FIRST:+$DSCACHE_TEST_PRELOAD_FIRST }$lib" \
  ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" "$@"
}

run() {  # NAME ARGS...: runs an example under the shim, keeps its output in $work/NAME.out
  local name=$1; shift
  echo "examples_test: $name $*"
  if ! shim "$PY" "$here/examples/$name" "$@" >"$work/$name.out" 2>&1; then
    cat "$work/$name.out"; fail "$name exited non-zero"
  fi
  cat "$work/$name.out"
}

run train.py --data /data/ex/train --epochs 1 --workers 2 --batch-size 16
grep -q '^train.py: ImageFolder /data/ex/train: 120 images in 3 classes' "$work/train.py.out" \
  || fail "train.py did not list 120 images in 3 classes"
grep -Eq '^train.py: epoch 1/1: 120 samples in [0-9.]+ s, [0-9]+ samples/s' "$work/train.py.out" \
  || fail "train.py printed no epoch line for 120 samples"
grep -q '^train.py: done: 1 epochs, 120 samples' "$work/train.py.out" || fail "train.py printed no final line"

run train_tar_shards.py --data /data/ex/shards --epochs 1 --workers 2 --batch-size 16
grep -q '^train_tar_shards.py: 2 shards .* in /data/ex/shards, 3 classes' "$work/train_tar_shards.py.out" \
  || fail "train_tar_shards.py did not find 2 shards and 3 classes"
grep -Eq '^train_tar_shards.py: epoch 1/1: 120 samples in [0-9.]+ s' "$work/train_tar_shards.py.out" \
  || fail "train_tar_shards.py printed no epoch line for 120 samples"

# Every file through the shim against the md5s of the uploaded bytes.
manifest=$work/dataset/manifest.md5
{ sed 's|  |  /data/ex/|' "$manifest"; echo "$(md5sum <"$manifest" | cut -d' ' -f1)  /data/ex/manifest.md5"; } \
  >"$work/check.md5"
shim md5sum --check --quiet "$work/check.md5" || fail "bytes read through the shim differ from the uploaded bytes"
echo "examples_test: PASS ($(wc -l <"$work/check.md5") files byte-exact)"
