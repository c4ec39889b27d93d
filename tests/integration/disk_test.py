#!/usr/bin/python3
"""A cache whose file system fills up (issue 11, items 5 and 6): space or
inodes running out is an error of the operation, named as such, one line; the
daemon never dies of it (SIGBUS on the mapped index before) and a daemon that
cannot start says why itself, never with an older daemon's log line.

Each case mounts a small tmpfs as the cache (root only; skipped, saying so,
where mount is not permitted).

    disk_test.py LIBDSCACHE DSCACHE_BINARY WORKDIR [TEST...]
(environment from tests/integration/with-s3.sh; data from populate.py)
"""
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

LIB = os.path.abspath(sys.argv[1])
DSCACHE = os.path.abspath(sys.argv[2])
WORK = os.path.abspath(sys.argv[3])
BUCKET = os.environ["DSCACHE_TEST_S3_BUCKET"]
PY = "/usr/bin/python3"
STALE = "2020-01-01 00:00:00 dscache[1]: info: stopped (an older daemon's last line)\n"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import dscache_lines, run_tests, shim_env, stop_daemon, tmpfs_cache  # noqa: E402


def env(cache, **extra):
    return shim_env(LIB, DSCACHE, cache, **{"DSCACHE_KERNEL_GUARD": "off", "DSCACHE_LOG": "info", **extra})


def stop(cache):
    stop_daemon(DSCACHE, cache)


def py(cache, code, **extra):
    """Runs code under the shim; returns (rc, stdout, stderr)."""
    r = subprocess.run([PY, "-c", textwrap.dedent(code)], env=env(cache, **extra), capture_output=True, text=True,
                       timeout=600)
    return r.returncode, r.stdout, r.stderr


def tmpfs(name, options):
    return tmpfs_cache(DSCACHE, WORK, name, options)


def fill_up(mnt, leave=0):
    """Writes a filler file until the file system is full, then frees `leave` bytes of it."""
    path = os.path.join(mnt, "filler")
    with open(path, "wb", buffering=0) as f:
        chunk = b"x" * 4096
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    if leave:
        size = os.path.getsize(path)
        os.truncate(path, max(0, size - leave))
    return path


def free_bytes(mnt):
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def log_text(cache):
    try:
        with open(os.path.join(cache, "daemon.log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def foreground_daemon(cache, **extra):
    e = env(cache, **extra)
    e.pop("LD_PRELOAD")
    return subprocess.Popen([DSCACHE, "daemon"], env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def end_daemon(daemon):
    """SIGTERM; returns (exit status, output). A signal death is -signum."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        out, _ = daemon.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        out, _ = daemon.communicate()
    return daemon.returncode, out


def wait_socket(cache, daemon, seconds=20):
    sock = os.path.join(cache, "run", "daemon.sock")
    deadline = time.time() + seconds
    while time.time() < deadline and daemon.poll() is None and not os.path.exists(sock):
        time.sleep(0.05)
    return os.path.exists(sock)


def test_a_cache_too_small_for_the_index():
    # Item 5: the file system is full when the daemon starts. Before: the
    # daemon died (SIGBUS on the mapped index, or an error it could not name)
    # and the program saw an older daemon's last log line.
    with tmpfs("full", "size=64k") as (mnt, cache):
        with open(os.path.join(cache, "daemon.log"), "w") as f:
            f.write(STALE)  # the page it is in has room: the next daemon can append
        os.chmod(os.path.join(cache, "daemon.log"), 0o600)
        fill_up(mnt)
        r = subprocess.run(["cat", "/data/s/small/obj-0001.bin"], env=env(cache), capture_output=True, text=True,
                           timeout=120)
        lines = dscache_lines(r.stderr)
        print("  cat on a full cache: rc %d, %r" % (r.returncode, lines))
        assert r.returncode != 0 and not r.stdout, (r.returncode, r.stderr)
        assert len(lines) == 1, r.stderr
        assert "no space left on " + mnt in lines[0], lines[0]
        assert "info: stopped" not in r.stderr, r.stderr  # not the older daemon's line
        assert "Bus error" not in log_text(cache), log_text(cache)

        # The same daemon in the foreground: its own error, an exit status, no signal.
        daemon = foreground_daemon(cache)
        try:
            daemon.wait(timeout=30)  # it exits by itself
        except subprocess.TimeoutExpired:
            pass
        rc, out = end_daemon(daemon)
        print("  dscache daemon on a full cache: exit %d, %r" % (rc, out.strip()[-300:]))
        assert rc > 0, (rc, out)
        assert "no space left on " + mnt in out, out

    # Room for the index's header and first directory, none for it to grow:
    # listings and fills fail with ENOSPC, and the daemon stays up.
    with tmpfs("tiny", "size=256k") as (mnt, cache):
        fill_up(mnt, leave=64 << 10)
        daemon = foreground_daemon(cache)
        try:
            assert wait_socket(cache, daemon), end_daemon(daemon)
            code = """
                import errno, os
                for n in range(0, 300, 37):
                    try:
                        print('ok', len(open('/data/s/small/obj-%04d.bin' % n, 'rb').read()))
                    except OSError as e:
                        print('error', errno.errorcode[e.errno])
            """
            rc, out, err = py(cache, code)
            print("  reads with %dK free: %s" % (free_bytes(mnt) >> 10, " ".join(out.split("\n")[:9])))
            assert "error ENOSPC" in out, (out, err)
            assert all(l.startswith("ok") or l == "error ENOSPC" for l in out.split("\n") if l), (out, err)
            assert any("no space left on " + mnt in l for l in dscache_lines(err)), err
            assert daemon.poll() is None, "the daemon died: %r" % (end_daemon(daemon),)
        finally:
            rc, out = end_daemon(daemon)
        print("  daemon exit status %d" % rc)
        assert rc == 0, (rc, out[-2000:])


def test_fills_on_a_nearly_full_file_system():
    # Item 5: room in DSCACHE_CACHE_SIZE (unlimited) but not on the disk. A
    # read that fits works, one that does not fails with ENOSPC naming the
    # file system (before: "the cache is full ... capacity 18446744073709551615"),
    # and after space is freed the same read works, from the same daemon.
    with tmpfs("nearly", "size=8m") as (mnt, cache):
        # Index: header, directory and a chunk of slots (about 1.1M), the
        # listing of small/; then leave about 1.5M.
        rc, out, err = py(cache, "import os; print(len(os.listdir('/data/s/small')))")
        assert rc == 0 and "300" in out, (out, err)
        with open(os.path.join(cache, "daemon.lock")) as f:
            pid = int(f.read().strip())
        filler = fill_up(mnt, leave=1536 << 10)
        code = """
            import errno, os
            for n in %s:
                try:
                    print('ok', len(open('/data/s/' + n, 'rb').read()))
                except OSError as e:
                    print('error', errno.errorcode[e.errno])
        """
        # small/obj-0001: 8919 bytes, fits; medium/24m.bin: 24M, cannot.
        rc, out, err = py(cache, code % ["small/obj-0001.bin", "medium/24m.bin"])
        print("  with %dK free: %r, %r" % (free_bytes(mnt) >> 10, out.split("\n")[:2], dscache_lines(err)))
        assert out.split("\n")[:2] == ["ok 8919", "error ENOSPC"], (out, err)
        lines = dscache_lines(err)
        assert len(lines) == 1 and "no space left on " + mnt in lines[0], err
        assert "18446744073709551615" not in err and "the cache is full" not in err, err
        os.kill(pid, 0)  # the daemon is up
        os.unlink(filler)
        rc, out, err = py(cache, code % ["medium/24m.bin"])
        assert out.split("\n")[0] == "error ENOSPC", (out, err)  # 24M of 8M: still no room
        rc, out, err = py(cache, code % ["small/obj-0002.bin", "small/obj-0003.bin"])
        assert rc == 0 and out.split("\n")[:2] == ["ok 16838", "ok 24757"], (out, err)
        with open(os.path.join(cache, "daemon.lock")) as f:
            assert int(f.read().strip()) == pid, "the daemon was restarted"
        os.kill(pid, 0)


def test_inode_exhaustion():
    # Item 6: 200 inodes, a directory of 2,000 files. Before: "No space left
    # on device" naming a temporary file, and placeholders bypassed the guard.
    with tmpfs("inodes", "size=64m,nr_inodes=200") as (mnt, cache):
        rc, out, err = py(cache, "import os; print(sorted(os.listdir('/data/s/meta')))")
        assert rc == 0 and "['rclone-mtime', 's3fs-mtime']" in out, (out, err)
        rc, out, err = py(cache, """
            import errno, os
            for d in ('/data/s/list', '/data/s/small'):
                try:
                    print('ok', len(os.listdir(d)))
                except OSError as e:
                    print('error', errno.errorcode[e.errno])
        """)
        st = os.statvfs(mnt)
        print("  listings: %r, %d of %d inodes free, %r" % (out.split("\n")[:2], st.f_favail, st.f_files,
                                                           dscache_lines(err)))
        assert out.split("\n")[:2] == ["error ENOSPC", "error ENOSPC"], (out, err)
        lines = dscache_lines(err)
        assert lines and all("no free inodes on " + mnt in l for l in lines), err
        assert "/tmp/" not in err.replace(mnt, "<mnt>") and "c/tmp" not in err, err  # no temporary file
        # The guard keeps a tenth of them free (DSCACHE_FREE_SPACE_RATIO).
        assert st.f_favail >= 19, (st.f_favail, st.f_files)
        with open(os.path.join(cache, "daemon.lock")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)  # up
        r = subprocess.run([DSCACHE, "status"], env=dict(os.environ, DSCACHE_CACHE_DIR=cache), capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        # What was listed before still reads (a fill takes no inode), from the same daemon.
        rc, out, err = py(cache, "print(len(open('/data/s/meta/s3fs-mtime', 'rb').read()))")
        assert rc == 0 and out.strip() == "100", (out, err)
        os.kill(pid, 0)


if __name__ == "__main__":
    os.makedirs(WORK, exist_ok=True)
    tests = [test_a_cache_too_small_for_the_index, test_fills_on_a_nearly_full_file_system, test_inode_exhaustion]
    passed, failed, skipped = run_tests(tests, sys.argv[4:])
    if failed:
        sys.exit(1)
    sys.exit(77 if skipped and not passed else 0)
