#!/usr/bin/python3
"""boto3_download: the "parallel boto3 download" peer of scripts/bench/warmup.sh.

    boto3_download.py BUCKET PREFIX DEST [--threads 64] [--part-mib 8]

Lists s3://BUCKET/PREFIX (ListObjectsV2, pages handed to the workers as they arrive) and
downloads every object into DEST/<key without PREFIX> with one pool of THREADS threads sharing one
client (as many pooled connections as threads). Objects larger than a part are fetched as ranged
GETs of PART_MIB written in place with pwrite, so two large objects keep every thread busy too;
no HEAD requests (the listing has the sizes). This is what a careful user writes with boto3, not
the slower default `download_file`, which HEADs every object first.
Prints "objects=N bytes=B" at the end; exits 1 on any failed request.
Endpoint and credentials come from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
"""
import argparse
import concurrent.futures
import os
import sys
import threading

import boto3
from botocore.config import Config


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bucket")
    p.add_argument("prefix")
    p.add_argument("dest")
    p.add_argument("--threads", type=int, default=64)
    p.add_argument("--part-mib", type=int, default=8)
    a = p.parse_args()
    part = a.part_mib << 20
    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
                      config=Config(s3={"addressing_style": "path"}, max_pool_connections=a.threads,
                                    retries={"mode": "standard"}))
    made_dirs = set()
    lock = threading.Lock()

    def path_of(key):
        return os.path.join(a.dest, key[len(a.prefix):].lstrip("/"))

    def ensure_dir(path):
        d = os.path.dirname(path)
        with lock:
            if d in made_dirs:
                return
            made_dirs.add(d)
        os.makedirs(d, exist_ok=True)

    def get_whole(key):
        path = path_of(key)
        ensure_dir(path)
        body = s3.get_object(Bucket=a.bucket, Key=key)["Body"]
        with open(path, "wb") as f:
            for chunk in body.iter_chunks(1 << 20):
                f.write(chunk)

    def get_part(key, path, first, last):
        data = s3.get_object(Bucket=a.bucket, Key=key, Range=f"bytes={first}-{last}")["Body"].read()
        if len(data) != last - first + 1:
            raise RuntimeError(f"{key}: short range {first}-{last}: {len(data)} bytes")
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, first)
        finally:
            os.close(fd)

    objects = total = 0
    futures = []
    with concurrent.futures.ThreadPoolExecutor(a.threads) as pool:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=a.bucket, Prefix=a.prefix):
            for obj in page.get("Contents", []):
                key, size = obj["Key"], obj["Size"]
                if key.endswith("/"):
                    continue
                objects += 1
                total += size
                if size <= part:
                    futures.append(pool.submit(get_whole, key))
                    continue
                path = path_of(key)
                ensure_dir(path)
                with open(path, "wb") as f:
                    f.truncate(size)
                for first in range(0, size, part):
                    futures.append(pool.submit(get_part, key, path, first, min(first + part, size) - 1))
        failed = 0
        for fut in concurrent.futures.as_completed(futures):
            if fut.exception() is not None:
                failed += 1
                if failed == 1:
                    print(f"boto3_download: {fut.exception()}", file=sys.stderr)
    if failed:
        print(f"boto3_download: {failed} requests failed", file=sys.stderr)
        return 1
    print(f"objects={objects} bytes={total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
