#!/usr/bin/python3
"""A dataset larger than the cache still trains (issue 17): capacity is a
preference, never a read error.

    capacity_test.py LIBDSCACHE DSCACHE_BINARY WORKDIR [TEST...]
(environment from tests/integration/with-s3.sh; data from populate.py)
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

LIB = os.path.abspath(sys.argv[1])
DSCACHE = os.path.abspath(sys.argv[2])
WORK = os.path.abspath(sys.argv[3])
PY = "/usr/bin/python3"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import object_bytes, run_tests, shim_env, stop_daemon  # noqa: E402

READER = r"""
import hashlib, json, random, sys, time
truth = json.loads(open(sys.argv[1]).read())
names = sorted(truth)
rng = random.Random(int(sys.argv[2]))
end = time.time() + float(sys.argv[3])
out = {"ok": 0, "errors": 0, "wrong": 0, "why": {}}
while time.time() < end:
    n = rng.choice(names)
    try:
        with open('/data/s/' + n, 'rb') as f:
            good = hashlib.md5(f.read()).hexdigest() == truth[n]
        out["ok" if good else "wrong"] += 1
    except OSError as e:
        out["errors"] += 1
        out["why"][e.strerror] = out["why"].get(e.strerror, 0) + 1
print(json.dumps(out))
"""


def test_churn_in_a_cache_smaller_than_the_data_never_fails_a_read():
    # Four readers loop over 300 files (18 MB) through a 300 KB cache while
    # `dscache evict` runs every 4 s. Before: about 15% of reads failed, with
    # ENOSPC ("the cache is full and nothing in it can be evicted (0 cached)":
    # the room was all reserved by other readers' fills) and EIO ("the file
    # kept changing while it was opened": evicted by another reader's fill
    # before its own reader could open it).
    cache = os.path.join(WORK, "churn")
    stop_daemon(DSCACHE, cache)
    shutil.rmtree(cache, ignore_errors=True)
    truth_file = os.path.join(WORK, "truth.json")
    names = ["small/obj-%04d.bin" % i for i in range(300)]
    with open(truth_file, "w") as f:
        json.dump({n: hashlib.md5(object_bytes(n)).hexdigest() for n in names}, f)
    e = shim_env(LIB, DSCACHE, cache, DSCACHE_CACHE_SIZE="300K", DSCACHE_KERNEL_GUARD="off")
    plain = dict(e)
    plain.pop("LD_PRELOAD")
    seconds = 20
    readers = [subprocess.Popen([PY, "-c", READER, truth_file, str(i), str(seconds)], env=e, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True) for i in range(4)]
    evictions = 0
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(4)
        subprocess.run([DSCACHE, "evict", "/data/s/small"], env=plain, capture_output=True, timeout=120)
        evictions += 1
    results = [json.loads(r.communicate(timeout=300)[0]) for r in readers]
    status = subprocess.run([DSCACHE, "status"], env=plain, capture_output=True, text=True, timeout=60).stdout
    stop_daemon(DSCACHE, cache)
    ok = sum(r["ok"] for r in results)
    errors = sum(r["errors"] for r in results)
    wrong = sum(r["wrong"] for r in results)
    cached = [line for line in status.splitlines() if line.startswith("cached:")]
    print("  %d reads by 4 readers in %d s, %d dscache evict runs: %d errors, %d wrong; %s" % (
        ok + errors + wrong, seconds, evictions, errors, wrong, cached[0] if cached else status))
    assert wrong == 0, results
    assert errors == 0, [r["why"] for r in results]
    assert ok > 1000, results


def test_a_file_larger_than_the_cache_reads():
    # A 24 MiB file through a 10 MiB cache, fetched whole and by block (before:
    # "the cache is full and nothing in it can be evicted", ENOSPC); the cache
    # is back under its capacity once the file can go.
    want = hashlib.md5(object_bytes("medium/24m.bin")).hexdigest()
    for whole_max in ("64M", "4M"):
        cache = os.path.join(WORK, "big-%s" % whole_max)
        stop_daemon(DSCACHE, cache)
        shutil.rmtree(cache, ignore_errors=True)
        e = shim_env(LIB, DSCACHE, cache, DSCACHE_CACHE_SIZE="10M", DSCACHE_WHOLE_FILE_MAX=whole_max,
                     DSCACHE_BLOCK_SIZE="1M", DSCACHE_KERNEL_GUARD="off")
        r = subprocess.run(["md5sum", "/data/s/medium/24m.bin"], env=e, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and r.stdout.split()[0] == want, (whole_max, r.stdout, r.stderr)
        plain = dict(e)
        plain.pop("LD_PRELOAD")
        cached = None
        for _ in range(40):  # the daemon checks its capacity every 5 s
            status = subprocess.run([DSCACHE, "status"], env=plain, capture_output=True, text=True).stdout
            line = [x for x in status.splitlines() if x.startswith("cached:")][0]
            cached = int(line.split()[1])
            if cached <= 10 << 20:
                break
            time.sleep(0.5)
        stop_daemon(DSCACHE, cache)
        assert cached <= 10 << 20, line
        print("  %s: read byte-exact; then %s" % ("whole" if whole_max == "64M" else "by block", line))


TESTS = [test_churn_in_a_cache_smaller_than_the_data_never_fails_a_read, test_a_file_larger_than_the_cache_reads]


def main():
    os.makedirs(WORK, exist_ok=True)
    _, failed, _ = run_tests(TESTS, sys.argv[4:])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
