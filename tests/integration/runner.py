"""Runs a test file's cases in order (shared by the integration tests): one
"ok"/"skip"/"FAIL" line each, tracebacks for failures, then the plain closing
line "N passed, N failed"."""
import contextlib
import os
import subprocess
import time
import traceback


class Skip(Exception):
    """Raised by a case that cannot run here (a missing kernel feature)."""


def run_tests(tests, selected=()):
    """Runs the tests named in `selected` (all when empty); returns (passed, failed, skipped)."""
    passed = failed = skipped = 0
    for test in tests:
        if selected and test.__name__ not in selected:
            continue
        start = time.time()
        try:
            test()
            passed += 1
            print("ok   %-60s %.1f s" % (test.__name__, time.time() - start), flush=True)
        except Skip as why:
            skipped += 1
            print("skip %-60s %s" % (test.__name__, why), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % test.__name__, flush=True)
            traceback.print_exc()
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""), flush=True)
    return passed, failed, skipped


def shim_env(lib, dscache, cache, **extra):
    """The environment of a program under the shim: the test bucket mounted at
    /data/s, the cache in `cache`, a small index; `extra` on top."""
    e = dict(os.environ)
    first = os.environ.get("DSCACHE_TEST_PRELOAD_FIRST", "")
    e.update({
        "LD_PRELOAD": (first + " " + lib).strip(),
        "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0",
        "DSCACHE_MOUNTS": "/data/s=s3://%s/" % os.environ["DSCACHE_TEST_S3_BUCKET"],
        "DSCACHE_CACHE_DIR": cache,
        "DSCACHE_BIN": dscache,
        "DSCACHE_INDEX_ENTRIES": "65536",
    })
    e.update(extra)
    return e


def stop_daemon(dscache, cache):
    """Stops the daemon of `cache`, if one runs."""
    subprocess.run([dscache, "daemon", "--stop"], env=dict(os.environ, DSCACHE_CACHE_DIR=cache),
                   capture_output=True, timeout=120)


def dscache_lines(stderr):
    """The lines of dscache's own (the shim's, the daemon's) in a program's stderr."""
    return [line for line in stderr.splitlines() if line.startswith("dscache")]


def s3_client():
    """A boto3 client of the test S3 server."""
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], config=Config(s3={"addressing_style": "path"}))


def object_bytes(key):
    """The bytes of the test bucket's object `key`, straight from the store."""
    return s3_client().get_object(Bucket=os.environ["DSCACHE_TEST_S3_BUCKET"], Key=key)["Body"].read()


@contextlib.contextmanager
def tmpfs_cache(dscache, work, name, options):
    """A tmpfs mounted at WORK/name (mode 0700), with the cache directory `c` in
    it: yields (mount point, cache). Root only: Skip where mount is refused."""
    mnt = os.path.join(work, name)
    os.makedirs(mnt, exist_ok=True)
    subprocess.run(["umount", mnt], capture_output=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options + ",mode=0700", "tmpfs", mnt], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise Skip("cannot mount a tmpfs here (%s): these cases need root or CAP_SYS_ADMIN"
                   % (r.stderr.strip() or r.returncode))
    cache = os.path.join(mnt, "c")
    try:
        os.mkdir(cache, 0o700)
        yield mnt, cache
    finally:
        stop_daemon(dscache, cache)
        for _ in range(50):
            if subprocess.run(["umount", mnt], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
