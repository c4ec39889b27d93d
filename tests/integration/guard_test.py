#!/usr/bin/python3
"""The daemon's kernel guard (fanotify pre-content marks, cache/content_guard.h)
against a real S3 server: programs that read a large object's MIRROR file
directly, without the shim (a statically linked reader, so no preload could
help it), get the object's exact bytes while the file is partial, EIO when
the store cannot deliver them, and never the placeholder's zeros, also after
the daemon was killed (its keeper then guards the holes). The reader uses
pread, sendfile (the kernel reads for it) and mmap (one event for the whole
mapping at mmap time).

    guard_test.py DSCACHE_BINARY WORKDIR [TEST...]
(environment from tests/integration/with-s3.sh)

Each test fails without the guard: run with DSCACHE_TEST_KERNEL_GUARD=off
and the reader sees zeros where the object's bytes should be (checked when
this test was written: every test but the two that expect the guard off
fails). Exits 77 (skipped) only where the kernel lacks the feature
(fanotify pre-content events: Linux 6.14+, CAP_SYS_ADMIN, a file system
that supports them under WORKDIR), saying which.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from populate import content  # noqa: E402  (the same generator the data came from)
from runner import Skip, run_tests  # noqa: E402
from store_proxy import CountingProxy  # noqa: E402

DSCACHE = os.path.abspath(sys.argv[1])
WORK = os.path.abspath(sys.argv[2])
BUCKET = os.environ["DSCACHE_TEST_S3_BUCKET"]
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
GUARD = os.environ.get("DSCACHE_TEST_KERNEL_GUARD", "auto")
KEY, SIZE = "medium/24m.bin", 24 << 20
MIB = 1 << 20

READER_C = r"""
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <unistd.h>
/* rawread pread|mmap|sendfile|uring FILE OFFSET:LENGTH...: the bytes to
   stdout; on an error "errno N" on stderr and exit 3. */
static struct io_uring ring;
/* One read through io_uring: no system call of the program's names the file. */
static ssize_t uring_read(int fd, char* buf, size_t len, off_t off) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_read(sqe, fd, buf, (unsigned)len, (unsigned long long)off);
  io_uring_submit(&ring);
  struct io_uring_cqe* cqe;
  int rc = io_uring_wait_cqe(&ring, &cqe);
  if (rc < 0) { errno = -rc; return -1; }
  ssize_t n = cqe->res;
  io_uring_cqe_seen(&ring, cqe);
  if (n < 0) { errno = (int)-n; return -1; }
  return n;
}
int main(int argc, char** argv) {
  int fd = open(argv[2], O_RDONLY);
  if (fd < 0) { fprintf(stderr, "errno %d open\n", errno); return 3; }
  if (strcmp(argv[1], "uring") == 0 && io_uring_queue_init(4, &ring, 0) != 0) return 4;
  char* map = NULL;
  if (strcmp(argv[1], "mmap") == 0) {
    off_t size = lseek(fd, 0, SEEK_END);
    map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) { fprintf(stderr, "errno %d mmap\n", errno); return 3; }
  }
  for (int i = 3; i < argc; ++i) {
    unsigned long long off = 0, len = 0;
    if (sscanf(argv[i], "%llu:%llu", &off, &len) != 2) return 2;
    char* buf = malloc(len);
    size_t got = 0;
    while (got < len) {
      ssize_t n;
      if (map != NULL) {
        memcpy(buf, map + off, len);
        n = (ssize_t)len;
      } else if (strcmp(argv[1], "sendfile") == 0) {
        /* The kernel copies file to pipe: the bytes never pass this program. */
        fflush(stdout);
        off_t at = (off_t)(off + got);
        n = sendfile(1, fd, &at, len - got);
        if (n > 0) { got += (size_t)n; continue; }
      } else if (strcmp(argv[1], "uring") == 0) {
        n = uring_read(fd, buf + got, len - got, (off_t)(off + got));
      } else {
        n = pread(fd, buf + got, len - got, (off_t)(off + got));
      }
      if (n < 0) { fprintf(stderr, "errno %d pread %llu\n", errno, off); return 3; }
      if (n == 0) break;
      got += (size_t)n;
    }
    if (strcmp(argv[1], "sendfile") != 0) fwrite(buf, 1, got, stdout);
    free(buf);
  }
  return 0;
}
"""


class Cache:
    """One cache directory (large objects in 1 MiB blocks above 1 MiB), its
    environment and its daemon."""

    def __init__(self, name, endpoint=None, root=None, **settings):
        self.dir = os.path.join(root or WORK, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.env = dict(os.environ)
        self.env.update({
            "DSCACHE_CACHE_DIR": self.dir + "/cache",
            "DSCACHE_MOUNTS": "/data/it=s3://%s/" % BUCKET,
            "DSCACHE_INDEX_ENTRIES": "65536",
            "DSCACHE_IDLE_TIMEOUT": "60s",
            "DSCACHE_WHOLE_FILE_MAX": "1M",
            "DSCACHE_BLOCK_SIZE": "1M",
            "DSCACHE_KERNEL_GUARD": GUARD,
            "DSCACHE_LOG": "info",
        })
        if endpoint:
            self.env["AWS_ENDPOINT_URL"] = endpoint
        for k, v in settings.items():
            self.env["DSCACHE_" + k.upper()] = str(v)
        CACHES.append(self)

    def run(self, *args, check=True):
        r = subprocess.run([DSCACHE, *args], env=self.env, capture_output=True, text=True, timeout=300)
        if check and r.returncode != 0:
            raise AssertionError("dscache %s failed (%d): %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def list_medium(self):
        """Lists medium/ through the daemon (starting it): the placeholder exists, nothing is fetched."""
        self.run("ls", "/data/it/medium")
        path = self.mirror(KEY)
        assert os.path.getsize(path) == SIZE
        assert os.stat(path).st_blocks == 0, "the placeholder should hold no data yet"
        return path

    def mirror(self, key=""):
        root = os.path.join(self.dir, "cache", "mirror")
        mounts = os.listdir(root)
        assert len(mounts) == 1, mounts
        return os.path.join(root, mounts[0], key)

    def guard_line(self):
        m = re.search(r"^kernel guard: (.*)$", self.run("status").stdout, re.M)
        assert m, "dscache status has no kernel guard line"
        return m.group(1)

    def daemon_pid(self):
        try:
            with open(os.path.join(self.dir, "cache", "daemon.lock")) as f:
                text = f.read().strip()
            return int(text) if text else 0
        except FileNotFoundError:
            return 0

    def keeper_pid(self):
        try:
            with open(os.path.join(self.dir, "cache", "run", "guard-keeper.pid")) as f:
                pid = int(f.read().strip() or 0)
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return pid if b"__guard-keeper" in f.read() else 0
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return 0

    def stop(self):
        self.run("daemon", "--stop", check=False)
        pid = self.keeper_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)


CACHES = []
READER = None


def reader():
    global READER
    if READER is None:
        src = os.path.join(WORK, "rawread.c")
        with open(src, "w") as f:
            f.write(READER_C)
        out = os.path.join(WORK, "rawread")
        r = subprocess.run(["cc", "-static", "-O2", "-o", out, src, "-luring"], capture_output=True, text=True)
        if r.returncode != 0:
            if "cannot find -lc" in r.stderr or "cannot find -lc" in r.stdout:
                raise Skip("static libc is missing (libc6-dev's libc.a): no static reader")
            raise AssertionError("cc -static failed: %s" % r.stderr)
        READER = out
    return READER


def raw_read(path, ranges, mode="pread"):
    """Runs the static reader; returns (bytes, errno or 0)."""
    r = subprocess.run([reader(), mode, path] + ["%d:%d" % rl for rl in ranges], capture_output=True, timeout=300)
    if r.returncode == 3:
        return r.stdout, int(r.stderr.split()[1])
    assert r.returncode == 0, r.stderr
    return r.stdout, 0


def expect_exact(path, ranges, mode="pread"):
    data, err = raw_read(path, ranges, mode)
    assert err == 0, "the raw reader got errno %d" % err
    pos = 0
    for off, length in ranges:
        got = data[pos:pos + length]
        pos += length
        want = content(KEY, length, off)
        if got != want:
            zeros = got == bytes(len(got))
            raise AssertionError("%s at %d+%d: %s" % (KEY, off, length, "zeros (a hole read through)" if zeros
                                                      else "wrong bytes"))


def wait_gone(pid, seconds=10):
    """Whether process `pid` is gone (or a zombie) within `seconds`."""
    deadline = time.time() + seconds
    while True:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        if time.time() > deadline:
            return False
        time.sleep(0.2)


def cached_bytes(path):
    return os.stat(path).st_blocks * 512


def require_guard(cache):
    line = cache.guard_line()
    if line.startswith("off") and GUARD != "off":
        for missing in ("pre-content events", "CAP_SYS_ADMIN", "no fanotify", "does not support"):
            if missing in line:
                raise Skip("the kernel guard cannot run here: " + line)
        raise AssertionError("the kernel guard is off: " + line)


# Offsets spread over the object, unaligned, one crossing a block boundary.
RANGES = [(0, 4096), (5_000_000, 100_000), (12 * MIB - 8, 16), (SIZE - 24, 24)]


def test_static_reader_gets_exact_bytes_while_partial():
    proxy = CountingProxy(ENDPOINT, delay=0.3)
    cache = Cache("partial", endpoint=proxy.url)
    path = cache.list_medium()
    require_guard(cache)
    start = time.time()
    expect_exact(path, RANGES)
    waited = time.time() - start
    # Only what was read was fetched: the rest is still holes (the file is partial).
    assert cached_bytes(path) < SIZE // 2, "%d bytes allocated: the whole object was fetched" % cached_bytes(path)
    assert len(proxy.ranged) >= 4 and waited >= 0.3, "the reads did not wait for ranged GETs"
    assert re.match(r"on \(fanotify pre-content, 1 files guarded\)", cache.guard_line()), cache.guard_line()
    # A range read again is present: allowed without a fetch.
    before = len(proxy.ranged)
    expect_exact(path, RANGES[:2])
    assert len(proxy.ranged) == before
    # io_uring: the reads happen in the kernel's own workers.
    expect_exact(path, [(3 * MIB + 8, 65536), (15 * MIB, 4096)], mode="uring")
    # sendfile: the kernel reads the file for the program.
    expect_exact(path, [(9 * MIB + 512, 8192), (17 * MIB, 100)], mode="sendfile")
    # mmap raises one event for the whole mapping: all of it is filled first.
    expect_exact(path, [(7 * MIB + 8, 64), (20 * MIB, 4096)], mode="mmap")
    assert cached_bytes(path) >= SIZE
    # Complete: unmarked (reads no longer pay a round trip through the daemon).
    assert cache.guard_line().startswith("on (fanotify pre-content, 0 files guarded)"), cache.guard_line()
    expect_exact(path, RANGES)
    cache.stop()
    proxy.stop()


def test_failed_fetch_is_eio_not_zeros():
    proxy = CountingProxy(ENDPOINT)
    cache = Cache("deadstore", endpoint=proxy.url)
    cache.env["AWS_MAX_ATTEMPTS"] = "2"
    path = cache.list_medium()
    require_guard(cache)
    expect_exact(path, [(0, 4096)])
    proxy.stop()  # the store is gone: nothing more can be fetched
    data, err = raw_read(path, [(10 * MIB, 4096)])
    assert err != 0, "a read the store could not serve returned %s" % (
        "zeros" if data == bytes(len(data)) else "bytes")
    assert err == 5, "expected EIO, got errno %d" % err
    # What was fetched still reads.
    expect_exact(path, [(0, 4096)])
    cache.stop()


def test_daemon_killed_keeper_denies_holes_then_new_daemon_fills():
    cache = Cache("killed")
    # The daemon starts on demand from a client holding an extra fd (a daemon
    # inherits its client's fds); the keeper, which may outlive both, must not.
    with open(os.path.join(cache.dir, "client-fd"), "w") as extra:
        subprocess.run([DSCACHE, "ls", "/data/it/medium"], env=cache.env, check=True, capture_output=True,
                       pass_fds=[extra.fileno()], timeout=300)
    path = cache.list_medium()
    require_guard(cache)
    expect_exact(path, [(3 * MIB, 4096)])
    keeper = cache.keeper_pid()
    assert keeper, "no guard keeper runs beside the daemon"
    held = [os.readlink("/proc/%d/fd/%s" % (keeper, fd)) for fd in os.listdir("/proc/%d/fd" % keeper)]
    assert not any(t.endswith("client-fd") for t in held), "the keeper holds its daemon's client's fd: %s" % held
    os.kill(cache.daemon_pid(), signal.SIGKILL)
    time.sleep(0.3)
    # No daemon: the keeper allows what was written, and fails the holes.
    expect_exact(path, [(3 * MIB, 4096)])
    data, err = raw_read(path, [(15 * MIB, 4096)])
    assert err == 5, "without a daemon a hole read %s" % ("zeros" if data == bytes(len(data)) else "errno %d" % err)
    # A new daemon marks the file again, retires the old keeper and fills.
    cache.run("ls", "/data/it/medium")
    deadline = time.time() + 5
    while cache.keeper_pid() in (0, keeper) and time.time() < deadline:
        time.sleep(0.1)
    assert cache.keeper_pid() not in (0, keeper), "the new daemon did not take over from the old keeper"
    # The old keeper lets go of the file the new daemon marks, and then goes.
    assert wait_gone(keeper), "the old keeper stayed"
    expect_exact(path, [(15 * MIB, 4096)])
    # A daemon that exits cleanly with the file still partial leaves its keeper guarding.
    cache.run("daemon", "--stop")
    time.sleep(0.3)
    assert cache.keeper_pid(), "no keeper guards the partial file after a clean exit"
    data, err = raw_read(path, [(20 * MIB, 4096)])
    assert err == 5, "after a clean exit a hole read %s" % ("zeros" if data == bytes(len(data)) else "errno %d" % err)
    cache.stop()


def test_restart_with_a_larger_whole_file_max_still_guards_a_block_file():
    # A file filled by block under DSCACHE_WHOLE_FILE_MAX=1M is still sparse
    # when a daemon with the 64M default takes over: it must stay guarded.
    cache = Cache("wfm-restart")
    path = cache.list_medium()
    require_guard(cache)
    expect_exact(path, [(0, 4096)])
    cache.run("daemon", "--stop")
    del cache.env["DSCACHE_WHOLE_FILE_MAX"]
    cache.run("ls", "/data/it/medium")  # starts the new daemon
    assert re.match(r"on \(fanotify pre-content, 1 files guarded\)", cache.guard_line()), cache.guard_line()
    expect_exact(path, [(20 * MIB, 4096), (SIZE - 24, 24)])
    cache.stop()


def test_replaced_file_held_open_stays_guarded_across_daemons():
    # A raw reader (no shim, no pin) holds a partial file that is evicted and
    # the daemon restarts, stops or dies: the old file's holes fail with EIO
    # (the old group's keeper keeps answering for it), never zeros; once the
    # reader closes it, that keeper goes.
    for how in ("restart", "kill9"):
        cache = Cache("held-" + how)
        path = cache.list_medium()
        require_guard(cache)
        fd = os.open(path, os.O_RDONLY)
        assert os.pread(fd, 4096, 0) == content(KEY, 4096, 0)
        cache.run("evict", "/data/it/" + KEY)
        if how == "restart":
            cache.run("daemon", "--stop")
        else:
            os.kill(cache.daemon_pid(), signal.SIGKILL)
            time.sleep(0.5)
        old_keeper = cache.keeper_pid()
        cache.run("ls", "/data/it/medium")  # a new daemon takes over
        deadline = time.time() + 10
        while cache.keeper_pid() in (0, old_keeper) and time.time() < deadline:
            time.sleep(0.1)
        assert cache.keeper_pid() not in (0, old_keeper), "the new daemon did not take over"
        try:
            data = os.pread(fd, 4096, 21 * MIB)
            raise AssertionError("%s: a hole of the replaced file read %s" % (
                how, "zeros" if data == bytes(len(data)) else "bytes"))
        except OSError as e:
            assert e.errno == 5, "%s: expected EIO, got %s" % (how, e)
        assert os.pread(fd, 4096, 0) == content(KEY, 4096, 0), "the filled part no longer reads"
        assert not wait_gone(old_keeper, 1), "the old keeper went while a replaced file it guards is open"
        os.close(fd)
        assert wait_gone(old_keeper), "the old keeper stayed after the last reader closed"
        cache.stop()


def test_off_leaves_holes_unguarded():
    cache = Cache("off", kernel_guard="off")
    path = cache.list_medium()
    assert cache.guard_line() == "off: DSCACHE_KERNEL_GUARD=off", cache.guard_line()
    assert not cache.keeper_pid()
    # What the guard exists for: without it a raw reader sees the placeholder's zeros.
    data, err = raw_read(path, [(5 * MIB, 4096)])
    assert err == 0 and data == bytes(4096)
    cache.stop()


def test_tmpfs_cache_reports_off_and_on_refuses_to_start():
    if not os.path.isdir("/dev/shm"):
        raise Skip("no /dev/shm")
    root = "/dev/shm/dscache-guard-test-%d" % os.getpid()
    try:
        cache = Cache("shm", root=root, kernel_guard="auto")
        cache.run("ls", "/data/it/medium")
        line = cache.guard_line()
        assert re.match(r"off: the file system of .* \(tmpfs\) does not support fanotify pre-content marks$",
                        line) or "CAP_SYS_ADMIN" in line or "pre-content events" in line, line
        cache.stop()
        strict = Cache("shm-on", root=root, kernel_guard="on", log="warn")
        r = subprocess.run([DSCACHE, "daemon"], env=strict.env, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, "DSCACHE_KERNEL_GUARD=on started a daemon without the guard"
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and "DSCACHE_KERNEL_GUARD=on" in lines[0], r.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


TESTS = [
    test_static_reader_gets_exact_bytes_while_partial,
    test_failed_fetch_is_eio_not_zeros,
    test_daemon_killed_keeper_denies_holes_then_new_daemon_fills,
    test_restart_with_a_larger_whole_file_max_still_guards_a_block_file,
    test_replaced_file_held_open_stays_guarded_across_daemons,
    test_off_leaves_holes_unguarded,
    test_tmpfs_cache_reports_off_and_on_refuses_to_start,
]


def main():
    os.makedirs(WORK, exist_ok=True)
    ran, failed, skipped = run_tests(TESTS, sys.argv[3:])
    # Leave no daemon and no keeper behind.
    for cache in CACHES:
        cache.stop()
    if failed:
        sys.exit(1)
    sys.exit(77 if skipped and not ran else 0)


if __name__ == "__main__":
    main()
