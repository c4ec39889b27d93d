#!/usr/bin/env bash
# The built-in demo (README command 1): a local S3 server (Ceph radosgw), a synthetic
# ImageNet-like dataset uploaded to it, `dscache warmup`, then unmodified PyTorch training
# scripts reading s3://demo/imagenet as /data/demo through LD_PRELOAD=libdscache.so:
#   examples/train.py             ImageFolder over 3,000 JPEGs, DataLoader with 4 workers, 2 epochs
#   examples/train_tar_shards.py  the same samples from 4 tar shards (stdlib tarfile), 1 epoch
# then `md5sum -c` through the shim against the uploaded bytes (every file; a mismatch fails
# the demo) and `dscache status`. Every figure printed is measured in this run.
# Environment: DEMO_CLASSES (10), DEMO_PER_CLASS (300), DEMO_WORKERS (4), DEMO_EPOCHS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
classes=${DEMO_CLASSES:-10} per_class=${DEMO_PER_CLASS:-300} workers=${DEMO_WORKERS:-4} epochs=${DEMO_EPOCHS:-2}

scripts/build.sh >/dev/null
echo "demo: built build/tools/dscache and build/shim/libdscache.so"

dir=$(mktemp -d /tmp/dscache-demo-XXXXXX)
trap 'scripts/s3-server.sh stop --dir "$dir/s3" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
echo "demo: starting a local S3 server (Ceph radosgw) ..."
eval "$(scripts/s3-server.sh start --dir "$dir/s3" --bucket demo)"
echo "demo: S3 endpoint $AWS_ENDPOINT_URL, bucket demo"

$PY examples/make_dataset.py --out "$dir/dataset" --classes "$classes" --per-class "$per_class" \
  --shards 4 --upload s3://demo/imagenet
echo "demo: the bucket, listed by dscache's own S3 client:"
build/tools/dscache store ls s3://demo/imagenet/
build/tools/dscache store ls s3://demo/imagenet/shards/

export DSCACHE_MOUNTS="/data/demo=s3://demo/imagenet" DSCACHE_CACHE_DIR=$dir/cache
trap 'build/tools/dscache daemon --stop >/dev/null 2>&1 || true
      scripts/s3-server.sh stop --dir "$dir/s3" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
shim=$PWD/build/shim/libdscache.so

echo
echo "demo: DSCACHE_MOUNTS=$DSCACHE_MOUNTS; dscache warmup /data/demo"
# A live progress line on a terminal; JSON lines when the output is a pipe or a log.
build/tools/dscache warmup /data/demo

echo
echo "demo: dscache run -- python3 examples/train.py --data /data/demo/train --epochs $epochs --workers $workers"
echo "      (dscache run sets LD_PRELOAD=libdscache.so and prints a summary of the reads at the end)"
build/tools/dscache run -- $PY examples/train.py --data /data/demo/train --epochs "$epochs" --workers "$workers"

echo
echo "demo: LD_PRELOAD=libdscache.so python3 examples/train_tar_shards.py --data /data/demo/shards" \
     "--epochs 1 --workers $workers"
LD_PRELOAD=$shim $PY examples/train_tar_shards.py --data /data/demo/shards --epochs 1 --workers "$workers"

echo
# Byte-exact check: every file, read through the shim by coreutils' md5sum, against the md5s
# of the bytes make_dataset.py uploaded (it also checked each object's ETag against them).
manifest=$dir/dataset/manifest.md5
{ sed 's|  |  /data/demo/|' "$manifest"; echo "$(md5sum <"$manifest" | cut -d' ' -f1)  /data/demo/manifest.md5"; } \
  >"$dir/check.md5"
if ! LD_PRELOAD=$shim md5sum --check --quiet "$dir/check.md5"; then
  echo "demo: FAILED: bytes read through dscache differ from the uploaded bytes" >&2
  exit 1
fi
echo "demo: md5sum --check through the shim: all $(wc -l <"$dir/check.md5") files equal to the uploaded bytes"

echo
echo "demo: dscache status"
build/tools/dscache status
echo
echo "demo: dscache stats (one second of counters; nothing is reading now)"
build/tools/dscache stats
