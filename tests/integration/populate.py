#!/usr/bin/python3
"""Uploads the integration-test dataset to the S3 server named by the
environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
DSCACHE_TEST_S3_BUCKET), as scripts/s3-server.sh prints it.

Contents are deterministic (see tests/support/test_data.h): the 8-byte word
at offset 8k of object KEY is splitmix64(fnv1a64(KEY) + k), little-endian.
Idempotent: objects already present with the right size are skipped.
"""
import concurrent.futures
import os
import sys
import tempfile

import boto3
import numpy as np
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MASK = (1 << 64) - 1

# Keys that stress encoding and naming rules; tests/integration/s3_store_it.cpp
# has the same list.
SPECIAL_KEYS = [
    "special/with space.txt",
    "special/plus+equals=percent%tilde~hash#.txt",
    "special/unicode-\u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9-\u65e5\u672c.txt",
    "special/double//slash.txt",
    "special/dot/./segment.txt",
    "special/dotdot/../segment.txt",
    "special/question?and&star*.txt",
    "special/quote'paren(bang)!dollar$comma,semi;colon:at@.txt",
    "special/trailing-space .txt",
    "special/ctl\x01char.txt",
]


def fnv1a64(text: bytes) -> int:
    h = 0xcbf29ce484222325
    for c in text:
        h ^= c
        h = (h * 0x100000001b3) & MASK
    return h


def content(key: str, size: int, offset: int = 0) -> bytes:
    """Bytes [offset, offset+size) of object `key`; offset must be 8-aligned."""
    assert offset % 8 == 0
    seed = np.uint64(fnv1a64(key.encode()))
    words = (size + 7) // 8
    with np.errstate(over="ignore"):
        x = np.arange(offset // 8, offset // 8 + words, dtype=np.uint64) + seed
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x.astype("<u8").tobytes()[:size]


def dataset():
    """(key, size, extra put arguments) of every test object."""
    objs = []
    for i in range(300):
        objs.append((f"small/obj-{i:04d}.bin", 1000 + (i * 7919) % 120000, {}))
    objs.append(("ranges/r.bin", 1_000_003, {}))
    objs.append(("empty", 0, {}))
    for i in range(2000):
        objs.append((f"list/f{i:05d}", 16, {}))
    for d in range(50):
        for i in range(10):
            objs.append((f"list/sub{d:02d}/g{i}", 16, {}))
    for key in SPECIAL_KEYS:
        objs.append((key, 1234, {}))
    objs.append(("meta/rclone-mtime", 100, {"Metadata": {"mtime": "1598025012.123456789"}}))
    objs.append(("meta/s3fs-mtime", 100, {"Metadata": {"mtime": "1598025012"}}))
    objs.append(("public/readable.bin", 4096, {"ACL": "public-read"}))
    objs.append(("private/secret.bin", 4096, {}))
    objs.append(("medium/24m.bin", 24 << 20, {}))
    return objs


BIG_KEY, BIG_SIZE = "big/1g.bin", 1 << 30


def main():
    bucket = os.environ["DSCACHE_TEST_S3_BUCKET"]
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32,
                      retries={"mode": "standard", "max_attempts": 5}),
    )
    present = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            present[o["Key"]] = o["Size"]

    def put(item):
        key, size, extra = item
        if present.get(key) == size:
            return 0
        s3.put_object(Bucket=bucket, Key=key, Body=content(key, size), **extra)
        return 1

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        uploaded = sum(pool.map(put, dataset()))

    if present.get(BIG_KEY) != BIG_SIZE:
        # Multipart with 8 MiB parts: the ETag is "<md5>-128", as real datasets' are.
        with tempfile.TemporaryFile() as f:
            chunk = 64 << 20
            for off in range(0, BIG_SIZE, chunk):
                f.write(content(BIG_KEY, min(chunk, BIG_SIZE - off), off))
            f.seek(0)
            s3.upload_fileobj(f, bucket, BIG_KEY,
                              Config=TransferConfig(multipart_chunksize=8 << 20, max_concurrency=8))
        uploaded += 1
    print(f"populate: {uploaded} objects uploaded, {len(present)} already present", file=sys.stderr)


if __name__ == "__main__":
    main()
