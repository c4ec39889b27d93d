#!/usr/bin/python3
"""The dscache commands against radosgw: warmup (check, shards, resume, --list,
a cache too small, interruption, errors), stats, run, ls, du, evict, clear, fsck.

    cli_test.py DSCACHE_BINARY WORKDIR [TEST...]
(environment from tests/integration/with-s3.sh)
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback

import boto3
from botocore.config import Config

DSCACHE = os.path.abspath(sys.argv[1])
WORK = os.path.abspath(sys.argv[2])
BUCKET = os.environ["DSCACHE_TEST_S3_BUCKET"]
PREFIX = "cli-%d" % os.getpid()
MOUNT = "/data/cli"
PRELOAD_FIRST = os.environ.get("DSCACHE_TEST_PRELOAD_FIRST", "")

s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))

SMALL = {"d%d/f%03d.bin" % (i % 4, i): os.urandom(20000 + 37 * i) for i in range(120)}
LARGE = {"large/l%d.bin" % i: os.urandom((3 << 20) + i) for i in range(12)}  # block by block (4M max whole)
ALL = dict(SMALL, **LARGE)


def env(cache="cache", **extra):
    e = dict(os.environ)
    e.update({
        "DSCACHE_MOUNTS": "%s=s3://%s/%s" % (MOUNT, BUCKET, PREFIX),
        "DSCACHE_CACHE_DIR": os.path.join(WORK, cache),
        "DSCACHE_WHOLE_FILE_MAX": "1M",
        "DSCACHE_BLOCK_SIZE": "1M",
        "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0",
    })
    e.update(extra)
    return e


def dscache(*args, check=True, cache="cache", environ=None, **extra):
    r = subprocess.run([DSCACHE] + list(args), env=environ or env(cache, **extra), capture_output=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError("dscache %s failed (%d):\n%s\n%s" % (" ".join(args), r.returncode, r.stdout.decode()[-3000:],
                                                                  r.stderr.decode()[-3000:]))
    return r


def events(r, kind):
    out = []
    for line in r.stdout.decode().splitlines():
        d = json.loads(line)  # every stdout line of --json is JSON
        if d["event"] == kind:
            out.append(d)
    return out


def summary(r, kind="done"):
    found = events(r, kind)
    assert len(found) == 1, r.stdout.decode()
    return found[0]


def stop(cache="cache"):
    dscache("daemon", "--stop", check=False, cache=cache)


def fresh(cache="cache"):
    stop(cache)
    shutil.rmtree(os.path.join(WORK, cache), ignore_errors=True)


# ---- tests ---------------------------------------------------------------------

def test_warmup_check_shards_and_resume():
    fresh()
    r = dscache("warmup", "--check", "--json", MOUNT, check=False)
    assert r.returncode == 1, r
    c = summary(r, "check")
    assert c["files"] == len(ALL) and c["bytes"] == sum(map(len, ALL.values())) and c["cached_fraction"] == 0, c
    # Two nodes' shards: disjoint, together everything.
    a = summary(dscache("warmup", "--json", "--shard", "0/2", MOUNT))
    mid = summary(dscache("warmup", "--check", "--json", MOUNT, check=False), "check")
    b = summary(dscache("warmup", "--json", "--shard", "1/2", MOUNT))
    assert a["files"] + b["files"] == len(ALL) and 0 < a["files"] < len(ALL), (a, b)
    assert mid["files_cached_before"] == a["files"], (a, mid)
    c = summary(dscache("warmup", "--check", "--json", MOUNT), "check")
    assert c["cached_fraction"] == 1.0 and c["files_cached_before"] == len(ALL), c
    # A re-run fetches nothing.
    again = summary(dscache("warmup", "--json", MOUNT))
    assert again["bytes_fetched"] == 0 and again["files_cached_before"] == len(ALL), again
    # Off a terminal, JSON is the default.
    r = dscache("warmup", "--check", MOUNT)
    assert json.loads(r.stdout.decode().splitlines()[-1])["cached_fraction"] == 1.0


def test_warmup_urls_list_and_failures():
    fresh()
    listing = os.path.join(WORK, "list.txt")
    with open(listing, "w") as f:
        f.write("# a comment\nd0/f000.bin\n%s/d1/f001.bin\ns3://%s/%s/large/l0.bin\nd2/missing.bin\n"
                % (MOUNT, BUCKET, PREFIX))
    r = dscache("warmup", "--json", "--list", listing, MOUNT + "/d3", check=False)
    # "d0/f000.bin" is relative to the first PATH (d3): it does not exist there, nor does missing.bin.
    assert r.returncode == 1, r
    failed = sorted(e["path"] for e in events(r, "failed"))
    assert failed == [MOUNT + "/d3/d0/f000.bin", MOUNT + "/d3/d2/missing.bin"], failed
    d = summary(r)
    # d3's 30 files, d1/f001.bin and large/l0.bin
    assert d["files_done"] == 32 and d["failures"] == 2, d
    r = dscache("warmup", "--json", "s3://%s/%s/d0" % (BUCKET, PREFIX))
    assert summary(r)["files"] == 30
    r = dscache("warmup", "s3://other-bucket/x", check=False)
    assert r.returncode == 1 and b"not under the URL of any mount" in r.stderr, r
    r = dscache("warmup", "/elsewhere", check=False)
    assert r.returncode == 1 and b"not under any mount" in r.stderr, r
    r = dscache("warmup", "--shard", "2/2", MOUNT, check=False)
    assert r.returncode == 1 and b"--shard '2/2'" in r.stderr, r
    r = dscache("warmup", MOUNT + "/nope", check=False)
    assert r.returncode == 1 and b"nope" in r.stdout + r.stderr, r


def test_warmup_larger_than_the_cache():
    fresh("small-cache")
    r = dscache("warmup", "--json", MOUNT, cache="small-cache", DSCACHE_CACHE_SIZE="12M", check=False)
    assert r.returncode == 1, r
    assert b"larger than the cache" in r.stderr and b"DSCACHE_CACHE_SIZE" in r.stderr, r.stderr
    d = summary(r)
    assert d["files_skipped_no_room"] > 0 and d["bytes_fetched"] <= 12 << 20, d
    # It did not cycle the cache: what it warmed is (nearly all) still there. Fills in
    # flight reserve their size, so the daemon may evict a little early near the limit.
    c = summary(dscache("warmup", "--check", "--json", MOUNT, cache="small-cache", DSCACHE_CACHE_SIZE="12M",
                        check=False), "check")
    assert 0.9 * d["bytes_fetched"] <= c["bytes_cached_before"] <= 12 << 20, (c, d)
    fresh("small-cache")


def test_warmup_interrupted_then_resumed():
    fresh()
    p = subprocess.Popen([DSCACHE, "warmup", "--json", "--concurrency", "1", "--progress-interval", "0.01",
                          MOUNT + "/large"], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = b""
    for line in p.stdout:  # interrupted as soon as fetching has begun
        first += line
        if json.loads(line)["event"] != "progress" or json.loads(line)["phase"] == "fetch":
            break
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    out = first + out
    assert p.returncode == 130, (p.returncode, out, err)
    (d,) = [json.loads(line) for line in out.decode().splitlines() if json.loads(line)["event"] == "done"]
    assert d["interrupted"] is True and d["files_done"] < len(LARGE), d
    r = dscache("warmup", "--json", MOUNT + "/large")
    assert summary(r)["files_done"] == len(LARGE)
    # Every byte is the object's.
    check_bytes("large/l%d.bin" % i for i in range(len(LARGE)))


def check_bytes(keys):
    """Reads files through the shim (dscache run) and compares their md5s."""
    keys = list(keys)
    paths = [MOUNT + "/" + k for k in keys]
    e = env()
    if PRELOAD_FIRST:
        e["LD_PRELOAD"] = PRELOAD_FIRST
    r = subprocess.run([DSCACHE, "run", "--", "md5sum"] + paths, env=e, capture_output=True, timeout=300)
    assert r.returncode == 0, r
    got = dict(line.split("  ", 1)[::-1] for line in r.stdout.decode().splitlines())
    for k, p in zip(keys, paths):
        assert got[p] == hashlib.md5(ALL[k]).hexdigest(), k
    return r


def test_run_stats_ls_du():
    fresh()
    dscache("warmup", "--quiet", MOUNT + "/d0")
    before = summary_stats()
    r = check_bytes(sorted(k for k in SMALL if k.startswith("d0/") or k.startswith("d1/")))
    line = r.stderr.decode().strip().splitlines()[-1]
    assert line.startswith("dscache run: md5sum succeeded") and "60 files opened, 50.0% hits" in line, line
    after = summary_stats()
    assert after["hits"] - before["hits"] == 30 and after["misses"] - before["misses"] == 30, (before, after)
    assert after["bytes_served"] - before["bytes_served"] == sum(len(v) for k, v in SMALL.items()
                                                                 if k[:3] in ("d0/", "d1/"))
    assert after["bytes_cached"] >= sum(len(v) for k, v in SMALL.items() if k[:3] in ("d0/", "d1/"))
    prom = dscache("stats", "--prometheus").stdout.decode()
    assert 'dscache_hits_total{mount="%s"} %d' % (MOUNT, after["hits"]) in prom, prom
    r = dscache("stats", "--watch", "--count", "2", "--interval", "0.2")
    assert len(r.stdout.decode().splitlines()) == 3 and MOUNT in r.stdout.decode(), r.stdout  # header + 2 lines
    ls = dscache("ls", MOUNT + "/d0").stdout.decode().splitlines()
    assert len(ls) == 30 and all(line.strip().startswith("100.0%") for line in ls), ls
    ls = dscache("ls", MOUNT).stdout.decode()
    assert "d2/" in ls and "large/" in ls, ls
    du = dscache("du", MOUNT).stdout.decode().splitlines()
    d2 = [line for line in du if line.endswith(MOUNT + "/d2")][0]
    assert "0.0%" in d2 and "0/30" in d2, du
    total = dscache("du", "-s", MOUNT).stdout.decode().splitlines()[-1]
    assert "60/132" in total, total
    # run's own errors
    r = subprocess.run([DSCACHE, "run", "--", "/nonexistent-program"], env=env(), capture_output=True, timeout=60)
    assert r.returncode == 127 and b"nonexistent-program" in r.stderr, r
    e = env()
    del e["DSCACHE_MOUNTS"]
    r = subprocess.run([DSCACHE, "run", "--", "true"], env=e, capture_output=True, timeout=60)
    assert r.returncode == 1 and b"no mounts" in r.stderr, r


def summary_stats():
    r = dscache("stats", "--json", "--interval", "0.1")
    (line,) = r.stdout.decode().splitlines()
    return json.loads(line)


def test_evict_clear_fsck():
    fresh()
    dscache("warmup", "--quiet", MOUNT)
    r = dscache("evict", "--json", MOUNT + "/d1")
    assert summary(r, "evicted")["files_done"] == 30
    assert "0/30" in dscache("du", "-s", MOUNT + "/d1").stdout.decode()
    assert "30/30" in dscache("du", "-s", MOUNT + "/d2").stdout.decode()
    check_bytes(k for k in SMALL if k.startswith("d1/"))  # fetched again, right bytes
    # Damage a whole file and a block of a large one behind the cache's back.
    mirror = os.path.join(WORK, "cache", "mirror")
    (mount_dir,) = os.listdir(mirror)
    for rel, offset in (("d2/f002.bin", 5), ("large/l3.bin", (1 << 20) + 9)):
        with open(os.path.join(mirror, mount_dir, rel), "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0xFF]))
    r = dscache("fsck", check=False)
    assert r.returncode == 1 and b"checksum mismatch" in r.stdout, r
    r = dscache("fsck", "--repair")
    assert b"2 files bad" in r.stdout, r.stdout
    assert dscache("fsck").returncode == 0
    check_bytes(["d2/f002.bin", "large/l3.bin"])
    r = dscache("clear", "--json")
    assert summary(r, "evicted")["failures"] == 0
    c = summary(dscache("warmup", "--check", "--json", MOUNT, check=False), "check")
    assert c["bytes_cached_before"] == 0, c


def main():
    os.makedirs(WORK, exist_ok=True)
    for k, v in ALL.items():
        s3.put_object(Bucket=BUCKET, Key=PREFIX + "/" + k, Body=v)
    tests = [t for name, t in sorted(globals().items()) if name.startswith("test_")]
    if len(sys.argv) > 3:
        tests = [globals()[n] for n in sys.argv[3:]]
    failed = 0
    try:
        for t in tests:
            start = time.time()
            try:
                t()
                print("ok   %-55s %.1f s" % (t.__name__, time.time() - start), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s\n%s" % (t.__name__, traceback.format_exc()), flush=True)
    finally:
        stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
