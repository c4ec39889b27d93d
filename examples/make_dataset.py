#!/usr/bin/python3
"""Generates a small synthetic ImageNet-like dataset and optionally uploads it to S3.

    make_dataset.py --out DIR [--classes 10] [--per-class 300] [--shards 4]
                    [--upload s3://BUCKET/PREFIX] [--threads 32]

Writes, under DIR:
  train/classNNN/imgNNNN.jpg   valid JPEGs of 48-96 px; each class has its own colour and
                               pattern (stripes, checks, rings, diagonals) so a model can learn
  shards/shard-NNNNNN.tar      the same samples, shuffled, webdataset-style: NNNNNN.jpg (the
                               same bytes) + NNNNNN.cls (the class index as text)
  shards/classes.txt           the class names, one a line, in index order
  manifest.md5                 `md5sum -c` format: the md5 of every file above, relative to DIR

With --upload, the whole tree (manifest included) goes to s3://BUCKET/PREFIX/... with boto3
(path-style addressing; endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL; credentials
and region from the usual AWS variables), many requests at a time, and every object's ETag
is checked against the local md5. Deterministic for a given --seed.
"""
import argparse
import colorsys
import concurrent.futures
import hashlib
import io
import os
import sys
import tarfile
import time

import numpy as np
from PIL import Image


def class_image(rng, c, n_classes):
    """One image of class c: a class colour and pattern, with random size, phase and noise."""
    h, w = (int(v) for v in rng.integers(48, 97, size=2))
    r, g, b = colorsys.hsv_to_rgb(c / n_classes, 0.75, 0.9)
    fg = np.array([r, g, b]) * 255
    bg = 255 - fg * 0.6
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    period = 6 + 3 * ((c // 4) % 4)
    phase = rng.uniform(0, period)
    kind = c % 4
    if kind == 0:    # horizontal stripes
        mask = ((y + phase) // (period / 2)) % 2
    elif kind == 1:  # vertical stripes
        mask = ((x + phase) // (period / 2)) % 2
    elif kind == 2:  # checks
        mask = (((x + phase) // period + (y + phase) // period) % 2)
    else:            # rings around a random centre
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        mask = (np.sqrt((y - cy) ** 2 + (x - cx) ** 2) // (period / 2)) % 2
    img = bg + (fg - bg) * mask[..., None]
    img *= rng.uniform(0.7, 1.1)                      # brightness
    img += rng.normal(0, 18, size=img.shape)          # noise
    img = np.clip(img, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=int(rng.integers(75, 96)))
    return buf.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def generate(out, n_classes, per_class, n_shards, seed):
    """Writes the tree; returns {relative path: md5} of every file."""
    rng = np.random.default_rng(seed)
    names = ["class%03d" % c for c in range(n_classes)]
    samples = []  # (class index, jpeg bytes)
    sums = {}
    for c, name in enumerate(names):
        for i in range(per_class):
            data = class_image(rng, c, n_classes)
            rel = "train/%s/img%04d.jpg" % (name, i)
            write(os.path.join(out, rel), data)
            sums[rel] = hashlib.md5(data).hexdigest()
            samples.append((c, data))
    order = rng.permutation(len(samples))
    n_shards = max(1, min(n_shards, len(samples)))
    bounds = np.linspace(0, len(samples), n_shards + 1).astype(int)
    os.makedirs(os.path.join(out, "shards"), exist_ok=True)
    for s in range(n_shards):
        rel = "shards/shard-%06d.tar" % s
        with tarfile.open(os.path.join(out, rel), "w", format=tarfile.USTAR_FORMAT) as tf:
            for k in range(bounds[s], bounds[s + 1]):
                c, data = samples[order[k]]
                for ext, body in (("jpg", data), ("cls", b"%d" % c)):
                    info = tarfile.TarInfo("%06d.%s" % (k, ext))
                    info.size, info.mtime, info.mode = len(body), 1700000000, 0o644
                    tf.addfile(info, io.BytesIO(body))
        with open(os.path.join(out, rel), "rb") as f:
            sums[rel] = hashlib.md5(f.read()).hexdigest()
    classes = ("\n".join(names) + "\n").encode()
    write(os.path.join(out, "shards/classes.txt"), classes)
    sums["shards/classes.txt"] = hashlib.md5(classes).hexdigest()
    manifest = "".join("%s  %s\n" % (sums[rel], rel) for rel in sorted(sums)).encode()
    write(os.path.join(out, "manifest.md5"), manifest)
    sums["manifest.md5"] = hashlib.md5(manifest).hexdigest()
    return sums, n_shards


def s3_client(threads):
    import boto3
    from botocore.config import Config
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return boto3.client("s3", endpoint_url=endpoint, region_name=region,
                        config=Config(s3={"addressing_style": "path"}, max_pool_connections=threads,
                                      retries={"max_attempts": 5, "mode": "standard"}))


def upload(out, sums, url, threads):
    if not url.startswith("s3://"):
        sys.exit("make_dataset.py: --upload wants s3://BUCKET/PREFIX, not %r" % url)
    bucket, _, prefix = url[len("s3://"):].partition("/")
    prefix = prefix.strip("/")
    s3 = s3_client(threads)
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(Bucket=bucket)

    def put(rel):
        with open(os.path.join(out, rel), "rb") as f:
            body = f.read()
        key = (prefix + "/" + rel) if prefix else rel
        etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
        if etag != sums[rel]:
            raise RuntimeError("s3://%s/%s: the store's ETag %s is not the md5 %s of the bytes sent"
                               % (bucket, key, etag, sums[rel]))
        return len(body)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(put, sorted(sums)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="local directory for the tree (created)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--per-class", type=int, default=300, help="images per class")
    p.add_argument("--shards", type=int, default=4, help="tar shards of the same samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--upload", metavar="s3://BUCKET/PREFIX", help="upload the tree there")
    p.add_argument("--threads", type=int, default=32, help="concurrent uploads")
    a = p.parse_args()

    t0 = time.monotonic()
    sums, n_shards = generate(a.out, a.classes, a.per_class, a.shards, a.seed)
    size = sum(os.path.getsize(os.path.join(a.out, rel)) for rel in sums)
    print("make_dataset.py: %d JPEGs in %d classes + %d tar shards (%d files, %.1f MB) in %s, %.1f s"
          % (a.classes * a.per_class, a.classes, n_shards, len(sums), size / 1e6, a.out,
             time.monotonic() - t0), flush=True)
    if a.upload:
        t1 = time.monotonic()
        sent = upload(a.out, sums, a.upload, a.threads)
        dt = time.monotonic() - t1
        print("make_dataset.py: uploaded %d objects (%.1f MB) to %s in %.1f s (%.0f objects/s), ETags = md5s"
              % (len(sums), sent / 1e6, a.upload.rstrip("/"), dt, len(sums) / dt), flush=True)


if __name__ == "__main__":
    main()
