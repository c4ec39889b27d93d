#!/usr/bin/python3
"""The node daemon against a real S3 server (radosgw, data from populate.py),
driven by real processes: `dscache warmup` clients, kill -9, a counting
proxy in front of the store. Files are checked byte for byte against the
deterministic generator the data was uploaded with.

    daemon_test.py DSCACHE_BINARY WORKDIR [TEST...]
(environment from tests/integration/with-s3.sh)
"""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from populate import content  # noqa: E402  (the same generator the data came from)
from store_proxy import CountingProxy  # noqa: E402

DSCACHE = os.path.abspath(sys.argv[1])
WORK = os.path.abspath(sys.argv[2])
BUCKET = os.environ["DSCACHE_TEST_S3_BUCKET"]
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
# In a sanitizer build: the runtime that must come first in LD_PRELOAD.
PRELOAD_FIRST = os.environ.get("DSCACHE_TEST_PRELOAD_FIRST", "")


def small_size(i):
    return 1000 + (i * 7919) % 120000


class Cache:
    """One cache directory, its environment and its daemon."""

    def __init__(self, name, endpoint=None, **settings):
        self.dir = os.path.join(WORK, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.env = dict(os.environ)
        self.env.update({
            "DSCACHE_CACHE_DIR": self.dir + "/cache",
            "DSCACHE_MOUNTS": "/data/it=s3://%s/" % BUCKET,
            "DSCACHE_INDEX_ENTRIES": "65536",
            "DSCACHE_IDLE_TIMEOUT": "60s",
        })
        if endpoint:
            self.env["AWS_ENDPOINT_URL"] = endpoint
        for k, v in settings.items():
            self.env["DSCACHE_" + k.upper()] = str(v)

    def run(self, *args, check=True, **kw):
        r = subprocess.run([DSCACHE, *args], env=self.env, capture_output=True, text=True, timeout=600, **kw)
        if check and r.returncode != 0:
            raise AssertionError("dscache %s failed (%d): %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def spawn(self, *args):
        return subprocess.Popen([DSCACHE, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def mirror(self, key=""):
        root = os.path.join(self.dir, "cache", "mirror")
        mounts = os.listdir(root)
        assert len(mounts) == 1, mounts
        return os.path.join(root, mounts[0], key)

    def daemon_pid(self):
        try:
            with open(os.path.join(self.dir, "cache", "daemon.lock")) as f:
                text = f.read().strip()
            return int(text) if text else 0
        except FileNotFoundError:
            return 0

    def daemons(self):
        """Daemon processes serving this cache dir."""
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().split(b"\0")
                with open("/proc/%s/environ" % pid, "rb") as f:
                    environ = f.read().split(b"\0")
                with open("/proc/%s/stat" % pid) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state == "Z" or len(cmd) < 2 or cmd[1] != b"daemon":
                continue
            if ("DSCACHE_CACHE_DIR=%s/cache" % self.dir).encode() in environ:
                found.append(int(pid))
        return found

    def status(self):
        return self.run("status").stdout

    def stat(self, name):
        m = re.search(r"%s (\d+)" % name, self.status())
        return int(m.group(1)) if m else None

    def fetched(self):
        m = re.search(r"fetched (\d+) objects, (\d+) bytes", self.status())
        return int(m.group(1)), int(m.group(2))

    def stop(self):
        self.run("daemon", "--stop", check=False)

    def check_file(self, key, size):
        with open(self.mirror(key), "rb") as f:
            data = f.read()
        assert len(data) == size, "%s: %d bytes, expected %d" % (key, len(data), size)
        if data != content(key, size):
            first = next(i for i in range(size) if data[i] != content(key, size)[i])
            raise AssertionError("%s: wrong bytes from offset %d" % (key, first))


def test_start_on_demand_one_daemon_idle_exit():
    cache = Cache("ondemand", idle_timeout="2s")
    clients = [cache.spawn("warmup", "/data/it/small/obj-%04d.bin" % i) for i in range(8)]
    for c in clients:
        out, err = c.communicate(timeout=120)
        assert c.returncode == 0, err
    assert len(cache.daemons()) == 1, "expected one daemon, found %s" % cache.daemons()
    for i in range(8):
        cache.check_file("small/obj-%04d.bin" % i, small_size(i))
    deadline = time.time() + 20
    while cache.daemons() and time.time() < deadline:
        time.sleep(0.2)
    assert not cache.daemons(), "the daemon did not exit when idle"
    with open(os.path.join(cache.dir, "cache", "index"), "rb") as f:
        header = f.read(4096)
    assert header[:8] == b"DSCIDX01"
    clean = int.from_bytes(header[152:156], "little")  # IndexHeaderFields::clean
    assert clean == 1, "an idle exit must leave the index marked clean"


def ranges_read(ranges, size):
    """Bytes asked for by a list of Range headers of GETs of one object."""
    total = 0
    for r in ranges:
        if not r:
            total += size
            continue
        first, last = r[len("bytes="):].split("-")
        total += min(int(last) + 1 if last else size, size) - int(first)
    return total


def test_single_flight_across_processes():
    proxy = CountingProxy(ENDPOINT)
    try:
        cache = Cache("singleflight", endpoint=proxy.url)
        cache.run("warmup", "--metadata-only", "/data/it/medium", "/data/it/small")
        procs = [cache.spawn("warmup", "/data/it/small/obj-0007.bin") for _ in range(8)]
        procs += [cache.spawn("warmup", "/data/it/medium/24m.bin") for _ in range(8)]
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        small = proxy.gets.get("/%s/small/obj-0007.bin" % BUCKET, [])
        assert len(small) == 1, "8 processes asked for one object: %d GETs reached the store" % len(small)
        # The 24 MiB object is read as parallel ranges, but only once.
        medium = proxy.gets.get("/%s/medium/24m.bin" % BUCKET, [])
        assert ranges_read(medium, 24 << 20) == 24 << 20, "8 processes: %s" % medium
        cache.check_file("small/obj-0007.bin", small_size(7))
        cache.check_file("medium/24m.bin", 24 << 20)
        objects, nbytes = cache.fetched()
        assert (objects, nbytes) == (2, (24 << 20) + small_size(7)), (objects, nbytes)
        cache.stop()
    finally:
        proxy.stop()


def test_fill_streams_bound_a_warmup_but_not_a_reader():
    """DSCACHE_FILL_STREAMS caps a warmup's ranged GETs at once; a reader
    whose blocks are queued behind the warmup gets them fetched at once."""
    key, size = "medium/24m.bin", 24 << 20  # 24 blocks of 1 MiB: 3 runs of 8 MiB
    runs = ["bytes=%d-%d" % (i << 23, ((i + 1) << 23) - 1) for i in range(3)]
    proxy = CountingProxy(ENDPOINT, delay=2.0)
    try:
        cache = Cache("streams", endpoint=proxy.url, whole_file_max="8M", block_size="1M", fill_streams=1)
        cache.run("warmup", "--metadata-only", "/data/it/medium")
        w = cache.spawn("warmup", "/data/it/" + key)
        deadline = time.time() + 60
        while not proxy.ranged and time.time() < deadline:
            time.sleep(0.01)
        assert proxy.ranged, "the warmup's first ranged GET never reached the store: %s" % (w.communicate(),)
        # The reader's block 20 lies in the last run, queued behind the second.
        e = dict(cache.env, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
        if PRELOAD_FIRST:
            e["LD_PRELOAD"] = PRELOAD_FIRST
        # (pread: dd would dup2 the fd, and a dup'd partial file is completed first.)
        reader = "import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); sys.stdout.buffer.write(os.pread(fd, 1 << 20, 20 << 20))"
        r = subprocess.run([DSCACHE, "run", "--quiet", "--", "/usr/bin/python3", "-c", reader, "/data/it/" + key],
                           env=e, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout == content(key, size)[20 << 20:21 << 20], "the reader got wrong bytes"
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        cache.check_file(key, size)
        got = {rng: (arrived, answered) for rng, arrived, answered in proxy.ranged}
        order = [rng for rng, _, _ in proxy.ranged]
        # The reader's run jumped the queue; the warmup's second run waited for its first.
        assert order == [runs[0], runs[2], runs[1]], proxy.ranged
        assert got[runs[1]][0] >= got[runs[0]][1], "two warmup runs at once with DSCACHE_FILL_STREAMS=1"
        cache.stop()

        # With room for 8 streams the same warmup sends all 3 runs before the first is answered.
        proxy.ranged.clear()
        wide = Cache("streams-wide", endpoint=proxy.url, whole_file_max="8M", block_size="1M", fill_streams=8)
        wide.run("warmup", "/data/it/" + key)
        wide.check_file(key, size)
        got = {rng: (arrived, answered) for rng, arrived, answered in proxy.ranged}
        assert sorted(got) == sorted(runs), proxy.ranged
        assert max(a for a, _ in got.values()) < min(b for _, b in got.values()), proxy.ranged
        wide.stop()
    finally:
        proxy.stop()


def test_kill9_during_fills_then_byte_exact():
    cache = Cache("kill9", whole_file_max="8M", block_size="1M")
    keys = [("small/obj-%04d.bin" % i, small_size(i)) for i in range(150)] + [("medium/24m.bin", 24 << 20)]
    rng = random.Random(7)
    kills = 0
    for round_ in range(6):
        w = cache.spawn("warmup", "--concurrency", "8", "/data/it/small", "/data/it/medium")
        time.sleep(rng.uniform(0.3, 1.5))
        pid = cache.daemon_pid()
        if pid > 0:
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        w.communicate(timeout=300)
        # Whatever the daemon had published must already be right.
        for key, size in keys:
            path = cache.mirror(key) if os.path.isdir(os.path.join(cache.dir, "cache", "mirror")) else None
            if path and os.path.exists(path):
                assert os.path.getsize(path) == size, (key, os.path.getsize(path))
    assert kills >= 3, "the test killed the daemon only %d times" % kills
    cache.run("warmup", "--concurrency", "8", "/data/it/small", "/data/it/medium")
    for key, size in keys:
        cache.check_file(key, size)
    log = open(os.path.join(cache.dir, "cache", "daemon.log")).read()
    assert "did not shut down cleanly" in log, "restarts after kill -9 must notice the unclean shutdown"
    cache.stop()


def test_eviction_keeps_capacity_and_open_files_keep_bytes():
    cache = Cache("evict", cache_size="2M")
    cache.run("warmup", "/data/it/small/obj-0001.bin")
    victim = "small/obj-0001.bin"
    f = open(cache.mirror(victim), "rb")
    first_half = f.read(small_size(1) // 2)
    # Warmup fills only what fits, so two halves (shards) of the directory, warmed one after
    # the other, make the daemon evict the first half's files for the second's.
    for shard in ("0/2", "1/2"):
        r = cache.run("warmup", "--concurrency", "4", "--shard", shard, "/data/it/small", check=False)
        assert r.returncode in (0, 1) and '"failures":0' in r.stdout, r.stdout + r.stderr
    m = re.search(r"cached:\s+(\d+) bytes of (\d+)", cache.status())
    assert m and int(m.group(1)) <= int(m.group(2)) == 2 << 20, cache.status()
    assert cache.stat("evictions") > 0, cache.status()
    rest = f.read()
    f.close()
    assert first_half + rest == content(victim, small_size(1)), "a reader of an evicted file saw other bytes"
    # Whatever is complete is right; evicted files are placeholders of the right size.
    for i in range(300):
        key = "small/obj-%04d.bin" % i
        st = os.stat(cache.mirror(key))
        assert st.st_size == small_size(i)
    cache.stop()


def test_replaced_object_seen_after_ttl():
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url=ENDPOINT, config=Config(s3={"addressing_style": "path"}))
    key = "scratch/replace-%d.bin" % os.getpid()
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"A" * 5000)
    cache = Cache("replace", meta_ttl="1s")
    cache.run("warmup", "/data/it/" + key)
    assert open(cache.mirror(key), "rb").read() == b"A" * 5000
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"B" * 7000)
    time.sleep(1.5)
    cache.run("warmup", "/data/it/" + key)
    assert open(cache.mirror(key), "rb").read() == b"B" * 7000, "the replaced object was not refetched"
    s3.delete_object(Bucket=BUCKET, Key=key)
    time.sleep(1.5)
    r = cache.run("warmup", "/data/it/" + key, check=False)
    # Its directory held nothing else, so the directory is gone too.
    assert r.returncode != 0 and "no such" in r.stderr, r.stderr
    assert not os.path.exists(cache.mirror(key)), "a deleted object stayed in the mirror"
    cache.stop()


def test_bad_configuration_is_one_clear_line():
    for name, value, expect in [("BLOCK_SIZE", "3M", "DSCACHE_BLOCK_SIZE='3M'"),
                                ("CACHE_SIZE", "lots", "DSCACHE_CACHE_SIZE='lots'"),
                                ("META_TTL", "soon", "DSCACHE_META_TTL='soon'"),
                                ("MOUNTS", "/data/it", "DSCACHE_MOUNTS='/data/it'")]:
        cache = Cache("badconfig")
        cache.env["DSCACHE_" + name] = value
        r = cache.run("warmup", "/data/it/small", check=False)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and expect in lines[0], (name, r.returncode, r.stderr)
    cache = Cache("badcreds")
    cache.env["AWS_SECRET_ACCESS_KEY"] = "wrong-secret"
    r = cache.run("warmup", "/data/it/small/obj-0000.bin", check=False)
    assert r.returncode == 1 and "SignatureDoesNotMatch" in r.stderr and "wrong-secret" not in r.stderr, r.stderr
    cache.stop()


TESTS = [
    test_start_on_demand_one_daemon_idle_exit,
    test_single_flight_across_processes,
    test_fill_streams_bound_a_warmup_but_not_a_reader,
    test_kill9_during_fills_then_byte_exact,
    test_eviction_keeps_capacity_and_open_files_keep_bytes,
    test_replaced_object_seen_after_ttl,
    test_bad_configuration_is_one_clear_line,
]


def main():
    os.makedirs(WORK, exist_ok=True)
    selected = sys.argv[3:]
    failed = 0
    for test in TESTS:
        if selected and test.__name__ not in selected:
            continue
        start = time.time()
        try:
            test()
            print("ok   %-60s %.1f s" % (test.__name__, time.time() - start), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % test.__name__, flush=True)
            traceback.print_exc()
    # Leave no daemon behind.
    for name in os.listdir(WORK):
        subprocess.run([DSCACHE, "daemon", "--stop"], env=dict(os.environ, DSCACHE_CACHE_DIR=os.path.join(WORK, name, "cache")),
                       capture_output=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
