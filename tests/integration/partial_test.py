#!/usr/bin/python3
"""Large files that are still filling never hand out wrong bytes, on any path
a program can take through the shim (issue 9's matrix).

Every test opens medium/24m.bin (populate.py) with DSCACHE_WHOLE_FILE_MAX=1M
and DSCACHE_BLOCK_SIZE=1M, through a proxy that delays each ranged GET by a
random amount (so blocks arrive slowly and out of order and holes are really
there when the reads happen), and checks every byte it reads against the
generator the object was uploaded with. An error is acceptable where noted;
zeros never are.

    partial_test.py LIBDSCACHE DSCACHE_BINARY WORKDIR [TEST...]
(environment from tests/integration/with-s3.sh; data from populate.py)
"""
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from populate import content  # noqa: E402
from runner import run_tests  # noqa: E402
from store_proxy import CountingProxy  # noqa: E402

LIB = os.path.abspath(sys.argv[1])
DSCACHE = os.path.abspath(sys.argv[2])
WORK = os.path.abspath(sys.argv[3])
BUCKET = os.environ["DSCACHE_TEST_S3_BUCKET"]
PY = "/usr/bin/python3"
KEY, SIZE = "medium/24m.bin", 24 << 20
MIB = 1 << 20
FILE = "/data/p/" + KEY
DATA = content(KEY, SIZE)
MD5 = hashlib.md5(DATA).hexdigest()

PROXY = None
# Defined in every Python program the tests run under the shim.
PRELUDE = textwrap.dedent("""\
    import os, sys, subprocess
    sys.path.insert(0, %r)
    from populate import content
    FILE, SIZE, MIB, DSCACHE, KEY = %r, %d, %d, %r, %r
    ALL = content(KEY, SIZE)
    def check(offset, data, what=''):
        want = ALL[offset:offset + len(data)]
        if data != want:
            bad = next(i for i in range(len(data)) if data[i] != want[i])
            zeros = data[bad:bad + 64] == bytes(len(data[bad:bad + 64]))
            raise SystemExit('%%s: wrong bytes at offset %%d (%%s)' %% (what, offset + bad, 'zeros' if zeros else 'other bytes'))
    """) % (os.path.dirname(os.path.abspath(__file__)), FILE, SIZE, MIB, DSCACHE, KEY)


class Cache:
    """A fresh cache directory and the environment of programs under the shim."""

    def __init__(self, name, **settings):
        self.dir = os.path.join(WORK, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        first = os.environ.get("DSCACHE_TEST_PRELOAD_FIRST", "")
        self.env = dict(os.environ)
        self.env.update({
            "LD_PRELOAD": (first + " " + LIB).strip(),
            "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0",
            "AWS_ENDPOINT_URL": PROXY.url,
            "DSCACHE_MOUNTS": "/data/p=s3://%s/" % BUCKET,
            "DSCACHE_CACHE_DIR": os.path.join(self.dir, "cache"),
            "DSCACHE_BIN": DSCACHE,
            "DSCACHE_INDEX_ENTRIES": "65536",
            "DSCACHE_IDLE_TIMEOUT": "60s",
            "DSCACHE_WHOLE_FILE_MAX": "1M",
            "DSCACHE_BLOCK_SIZE": "1M",
            "DSCACHE_READAHEAD": "2M",  # a small window: most of the file stays a hole while it is read
            "DSCACHE_KERNEL_GUARD": "off",  # the shim alone must be right (the guard has its own test)
        })
        for k, v in settings.items():
            self.env["DSCACHE_" + k.upper()] = str(v)

    def tool(self, *args, check=True):
        e = dict(self.env)
        e.pop("LD_PRELOAD")
        r = subprocess.run([DSCACHE, *args], env=e, capture_output=True, text=True, timeout=300)
        if check and r.returncode != 0:
            raise AssertionError("dscache %s: %d %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def run(self, cmd, shell=False, check=True, **kw):
        r = subprocess.run(cmd, shell=shell, env=self.env, capture_output=True, timeout=300, **kw)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s\n%s" % (cmd, r.returncode, r.stdout.decode(errors="replace")[-3000:],
                                                              r.stderr.decode(errors="replace")[-3000:]))
        return r

    def py(self, code, *args, check=True):
        """Python under the shim; FILE, SIZE, MIB, DSCACHE, KEY and check(offset, data, what) are defined in it."""
        return self.run([PY, "-c", PRELUDE + textwrap.dedent(code), *map(str, args)], check=check)

    def spawn_py(self, code, *args):
        return subprocess.Popen([PY, "-c", PRELUDE + textwrap.dedent(code), *map(str, args)], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def stop(self):
        self.tool("daemon", "--stop", check=False)


def md5_of(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


# ---- the matrix ---------------------------------------------------------------------

def test_read_pread_readv_and_seek_hole():
    c = Cache("plain")
    c.py("""
        fd = os.open(FILE, os.O_RDONLY)
        check(0, os.read(fd, MIB), 'read')
        check(13 * MIB + 8, os.pread(fd, 100000, 13 * MIB + 8), 'pread')
        os.lseek(fd, 20 * MIB, os.SEEK_SET)
        bufs = [bytearray(4096), bytearray(MIB)]
        n = os.readv(fd, bufs)
        check(20 * MIB, bytes(bufs[0]) + bytes(bufs[1]), 'readv')
        bufs = [bytearray(8192), bytearray(8192)]
        os.preadv(fd, bufs, 5 * MIB)
        check(5 * MIB, bytes(bufs[0]) + bytes(bufs[1]), 'preadv')
        # The file looks dense: no hole before its end.
        assert os.lseek(fd, 0, os.SEEK_HOLE) == SIZE, os.lseek(fd, 0, os.SEEK_HOLE)
        assert os.lseek(fd, 3 * MIB, os.SEEK_DATA) == 3 * MIB
        os.lseek(fd, 0, os.SEEK_SET)
        check(0, b''.join(iter(lambda: os.read(fd, 3 * MIB + 5), b'')), 'whole file')
    """)
    c.stop()


def test_subprocess_between_reads():
    # Python's subprocess runs the child with vfork: its close/close_range hooks
    # run in the parent's memory and must not make the parent forget its fds.
    c = Cache("subprocess")
    c.py("""
        with open(FILE, 'rb', buffering=0) as f:
            check(0, f.read(MIB), 'before')
            subprocess.run(['/bin/true'], check=True)
            subprocess.run(['/bin/true'], check=True, close_fds=False)
            rest = f.read()
            check(MIB, rest, 'after subprocess.run')
            assert len(rest) == SIZE - MIB
    """)
    c.stop()


def test_fork_child_reads():
    c = Cache("fork")
    c.py("""
        fd = os.open(FILE, os.O_RDONLY)
        check(0, os.read(fd, MIB), 'parent')
        pid = os.fork()
        if pid == 0:
            try:
                check(7 * MIB, os.pread(fd, 2 * MIB, 7 * MIB), 'child')
                os._exit(0)
            except SystemExit as e:
                print(e, file=sys.stderr)
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert status == 0, 'the child read wrong bytes'
        check(MIB, os.read(fd, 4 * MIB), 'parent after the child')
    """)
    c.stop()


def test_dup_and_redirection():
    # A duplicate is guarded like the original, without fetching the whole
    # file first; a child given the file as stdin reads it whole and right.
    c = Cache("dup")
    r = c.py("""
        fd = os.open(FILE, os.O_RDONLY)
        check(0, os.read(fd, 4096), 'first')
        d = os.dup(fd)
        check(4096, os.read(d, MIB), 'dup')
        os.dup2(fd, 40)
        check(10 * MIB, os.pread(40, MIB, 10 * MIB), 'dup2')
        import fcntl
        e = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 50)
        check(17 * MIB, os.pread(e, MIB, 17 * MIB), 'F_DUPFD_CLOEXEC')
        mirror = os.path.join(sys.argv[1], os.listdir(sys.argv[1])[0], KEY)
        print(os.stat(mirror).st_blocks * 512)
        with open(FILE, 'rb') as f:
            out = subprocess.run(['md5sum'], stdin=f, capture_output=True, check=True).stdout
        print(out.split()[0].decode())
    """, os.path.join(c.dir, "cache", "mirror"))
    held, md5 = r.stdout.decode().split()
    assert int(held) < SIZE // 2, "the dups fetched the whole file first (%s bytes held)" % held
    assert md5 == MD5, "the child read its stdin wrong"
    out = c.run(["dd", "if=" + FILE, "bs=1M", "skip=5", "count=3", "status=none"]).stdout
    assert out == DATA[5 * MIB:8 * MIB], "dd read wrong bytes"
    c.stop()


def test_more_open_than_the_table_holds():
    # The shim tracks 256 partial fds; the next open gets the file completed
    # (no EMFILE where a local file would open).
    c = Cache("many-fds")
    c.py("""
        fds = [os.open(FILE, os.O_RDONLY) for _ in range(300)]
        for i, fd in enumerate(fds):
            off = (i * 7919 * 8) % (SIZE - 4096)
            check(off, os.pread(fd, 4096, off), 'fd %d' % i)
    """)
    c.stop()


def test_proc_self_fd_reopen():
    c = Cache("procfd")
    r = c.py("""
        fd = os.open(FILE, os.O_RDONLY)
        check(0, os.read(fd, 4096), 'first')
        for name in ('/proc/self/fd/%d' % fd, '/dev/fd/%d' % fd, '/proc/%d/fd/%d' % (os.getpid(), fd)):
            fd2 = os.open(name, os.O_RDONLY)
            check(8 * MIB + (fd2 % 7) * MIB, os.pread(fd2, MIB, 8 * MIB + (fd2 % 7) * MIB), name)
            with open(name, 'rb') as f:
                f.seek(15 * MIB)
                check(15 * MIB, f.read(MIB), 'open(%s)' % name)
            os.close(fd2)
        print(os.readlink('/proc/self/fd/%d' % fd))
    """)
    assert r.stdout.decode().strip() == FILE, "readlink of /proc/self/fd shows %r" % r.stdout
    c.stop()


def test_cp_and_tar_sparse():
    c = Cache("cp")
    out = os.path.join(c.dir, "out")
    os.makedirs(out)
    c.run(["cp", FILE, out + "/cp.bin"])
    assert md5_of(out + "/cp.bin") == MD5, "cp copied holes"
    c2 = Cache("cp-sparse")
    c2.run(["cp", "--sparse=always", FILE, out + "/cp-sparse.bin"])
    assert md5_of(out + "/cp-sparse.bin") == MD5, "cp --sparse=always copied holes"
    c3 = Cache("tar")
    c3.run(["tar", "-S", "-cf", out + "/x.tar", "-C", "/data/p", KEY])
    subprocess.run(["tar", "-xf", out + "/x.tar", "-C", out], check=True)
    assert md5_of(os.path.join(out, KEY)) == MD5, "tar -S archived holes"
    for x in (c, c2, c3):
        x.stop()


def test_times_stay_the_objects():
    # Block writes move a file's mtime and ctime; a reader sees the object's
    # throughout, and after completion too (tar compares ctime, cp -p and make mtime).
    c = Cache("times")
    c.py("""
        before = os.stat(FILE)
        fd = os.open(FILE, os.O_RDONLY)
        check(0, os.read(fd, 2 * MIB), 'read')
        during = os.fstat(fd)
        while os.read(fd, 4 * MIB):
            pass
        after, again = os.fstat(fd), os.stat(FILE)
        # The fd that read it shows what it showed at open (tar's check); once
        # complete the file keeps the object's mtime (its ctime is the kernel's).
        for name, st in (('during', during), ('after', after)):
            assert (st.st_mtime_ns, st.st_ctime_ns) == (before.st_mtime_ns, before.st_ctime_ns), (name, st, before)
        assert again.st_mtime_ns == before.st_mtime_ns, (again, before)
    """)
    c.stop()


def test_cp_reflink_on_xfs():
    """coreutils' cp tries FICLONE first: on XFS it would clone the holes."""
    if shutil.which("mkfs.xfs") is None or os.geteuid() != 0:
        print("  skipped: needs mkfs.xfs and root for a loop mount")
        return
    image = os.path.join(WORK, "xfs.img")
    mnt = os.path.join(WORK, "xfs-mount")
    os.makedirs(mnt, exist_ok=True)
    subprocess.run(["umount", mnt], capture_output=True)
    subprocess.run(["truncate", "-s", "400M", image], check=True)
    subprocess.run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", image], check=True)
    r = subprocess.run(["mount", "-o", "loop", image, mnt], capture_output=True, text=True)
    if r.returncode != 0:
        print("  skipped: no loop mount here: %s" % r.stderr.strip())
        return
    try:
        c = Cache("xfs")
        c.env["DSCACHE_CACHE_DIR"] = os.path.join(mnt, "cache")
        c.run(["cp", "--reflink=always", FILE, mnt + "/clone.bin"], check=False)
        c.run(["cp", FILE, mnt + "/cp.bin"])
        assert md5_of(mnt + "/cp.bin") == MD5, "cp on XFS cloned the holes"
        if os.path.exists(mnt + "/clone.bin") and os.path.getsize(mnt + "/clone.bin") == SIZE:
            assert md5_of(mnt + "/clone.bin") == MD5, "cp --reflink=always cloned the holes"
        # FICLONERANGE through Python: the shim completes the source first.
        c.py("""
            import fcntl, struct
            src = os.open(FILE, os.O_RDONLY)
            dst = os.open(%r, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
            try:
                fcntl.ioctl(dst, 0x40209417, struct.pack('qQQQ', src, 0, 4 * MIB, 0))  # FICLONERANGE
            except OSError as e:
                print('FICLONERANGE:', e)
            os.lseek(dst, 0, os.SEEK_SET)
            got = os.read(dst, 4 * MIB)
            if got:
                check(0, got, 'FICLONERANGE')
        """ % (mnt + "/range.bin"))
        c.stop()
    finally:
        # The cache's guard keeper outlives its daemon while partial files
        # remain; it exits once the cache directory is gone, and the file
        # system can then be unmounted (else a later rm -rf of WORK fails).
        subprocess.run(["rm", "-rf", os.path.join(mnt, "cache")], capture_output=True)
        for _ in range(100):
            if subprocess.run(["umount", mnt], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:
            subprocess.run(["umount", "-l", mnt], capture_output=True)


def test_daemon_restart_keeps_offset_flags_and_pins():
    c = Cache("restart")
    c.py("""
        import fcntl
        fd = os.open(FILE, os.O_RDONLY | os.O_NONBLOCK)
        check(0, os.read(fd, MIB), 'before')
        subprocess.run([DSCACHE, 'daemon', '--stop'], check=True, env={k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'})
        plain = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}
        # Another process fills the file; the new daemon knows no pin of ours
        # yet, so the file can be evicted: our fd is then on a replaced file.
        subprocess.run([DSCACHE, 'warmup', '--quiet', FILE], check=True, env=plain)
        r = subprocess.run([DSCACHE, 'evict', FILE], capture_output=True, text=True, env=plain)
        assert r.returncode == 0, 'not evicted: ' + r.stdout + r.stderr
        check(MIB, os.read(fd, 16), 'after a restart and an eviction')
        assert os.lseek(fd, 0, os.SEEK_CUR) == MIB + 16, os.lseek(fd, 0, os.SEEK_CUR)
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK, 'O_NONBLOCK was dropped'
        # The read re-pinned the file with the new daemon: it cannot be evicted now.
        r = subprocess.run([DSCACHE, 'evict', FILE], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'})
        assert r.returncode != 0, 'a partial file open in a reader was evicted: ' + r.stdout + r.stderr
        check(MIB + 16, b''.join(iter(lambda: os.read(fd, 3 * MIB), b'')), 'the rest')
    """)
    c.stop()


def test_kill9_daemon_mid_read():
    c = Cache("kill9")
    c.py("""
        import signal, time
        fd = os.open(FILE, os.O_RDONLY)
        check(0, os.read(fd, 2 * MIB), 'before')
        with open(os.environ['DSCACHE_CACHE_DIR'] + '/daemon.lock') as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
        time.sleep(0.2)
        check(2 * MIB, os.read(fd, 3 * MIB), 'after kill -9')
        check(19 * MIB, os.pread(fd, MIB, 19 * MIB), 'pread after kill -9')
        assert os.lseek(fd, 0, os.SEEK_CUR) == 5 * MIB
    """)
    c.stop()


def test_eviction_pressure_while_partial():
    # Readers of the partial file while another process evicts it again and
    # again (it can: a daemon restart dropped the pins) and a third reads it
    # from the start: every read exact.
    c = Cache("evict")
    reader = """
        import random, time
        fd = os.open(FILE, os.O_RDONLY)
        rng = random.Random(int(sys.argv[1]))
        if sys.argv[1] == '0':
            subprocess.run([DSCACHE, 'daemon', '--stop'], env={k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'})
        end = time.time() + 8
        n = 0
        while time.time() < end:
            off = rng.randrange(0, SIZE // 8) * 8
            check(off, os.pread(fd, rng.randrange(1, 3 * MIB), off), 'pread')
            n += 1
        print(n)
    """
    env = dict(c.env)
    env.pop("LD_PRELOAD")
    readers = [c.spawn_py(reader, i) for i in range(3)]
    stop = time.time() + 8
    evictions = 0
    while time.time() < stop:
        r = subprocess.run([DSCACHE, "evict", FILE], env=env, capture_output=True)
        evictions += r.returncode == 0
        time.sleep(0.1)
    for p in readers:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-6000:]
    print("  %d evictions while 3 readers read" % evictions)
    c.stop()


def test_system_and_popen_with_inherited_fd():
    # glibc's system() and popen() spawn through internal calls no preload
    # sees; the child reads an inherited partial fd without the parent's shim.
    c = Cache("system")
    r = c.py("""
        fd = os.open(FILE, os.O_RDONLY)
        os.set_inheritable(fd, True)
        check(0, os.read(fd, MIB), 'before')
        rc = os.system('md5sum < /dev/fd/%d > %s/system.md5' % (fd, os.environ['DSCACHE_CACHE_DIR']))
        assert rc == 0, rc
        fd2 = os.open(FILE, os.O_RDONLY)
        os.set_inheritable(fd2, True)
        check(0, os.read(fd2, MIB), 'before')
        import ctypes
        libc = ctypes.CDLL(None)
        libc.popen.restype = ctypes.c_void_p
        p = libc.popen(b'md5sum < /dev/fd/%d' % fd2, b'r')
        buf = ctypes.create_string_buffer(256)
        libc.fgets.restype = ctypes.c_char_p
        libc.fgets(buf, 256, ctypes.c_void_p(p))
        libc.pclose(ctypes.c_void_p(p))
        print(buf.value.decode().split()[0])
    """)
    with open(os.path.join(c.dir, "cache", "system.md5")) as f:
        assert f.read().split()[0] == MD5, "system(): the child read holes"
    assert r.stdout.decode().strip() == MD5, "popen(): the child read holes: %r" % r.stdout
    c.stop()


READERS = os.environ.get("DSCACHE_TEST_PARTIAL_READERS", "")


def readers(c, *args):
    """partial_readers.c under the shim: every byte it reads is checked."""
    r = c.run([READERS, *map(str, args)], check=False)
    out = r.stdout.decode()
    assert r.returncode == 0 and out.startswith("ok"), "%s: %s%s" % (args[0], out, r.stderr.decode()[-3000:])
    return out


def test_posix_aio():
    c = Cache("aio")
    readers(c, "aio", FILE, KEY, 9 * MIB, 2 * MIB)
    c.stop()


def test_threads_sharing_an_offset():
    # Threads read() one fd to its end: each 1 MiB chunk exactly once, as
    # from a local file (the check and the read must see the same offset).
    c = Cache("threads")
    readers(c, "threads", FILE, KEY, 4)
    c.stop()


def test_signal_handler_reads_while_main_is_in_the_shim():
    # SIGALRM every 300 us: the handler preads a partial 1 GiB file while
    # main opens and reads another (often inside a daemon call): no hang, no
    # wrong bytes.
    c = Cache("signal")
    readers(c, "signal", FILE, KEY, "/data/p/big/1g.bin", "big/1g.bin")
    c.stop()


def test_execveat_with_an_inherited_fd():
    c = Cache("execveat")
    out = c.run([READERS, "execveat", FILE]).stdout.decode()
    assert out.split()[0] == MD5, "execveat: the program read holes: %s" % out
    c.stop()


def test_reopens_the_shim_does_not_name():
    # Reopens through paths the shim cannot recognise by name, an O_PATH fd,
    # an fd from another process (SCM_RIGHTS), and a full table.
    c = Cache("reopen-any")
    c.py("""
        import socket, fcntl
        fd = os.open(FILE, os.O_RDONLY)
        check(0, os.read(fd, 4096), 'first')
        proc = os.open('/proc/self/fd', os.O_RDONLY | os.O_DIRECTORY)
        link = os.path.join(os.environ['DSCACHE_CACHE_DIR'], 'fdlink')
        os.symlink('/proc/self/fd', link)
        for what, opener in (('//proc/self/fd', lambda: os.open('//proc/self/fd/%d' % fd, os.O_RDONLY)),
                             ('dir_fd', lambda: os.open(str(fd), os.O_RDONLY, dir_fd=proc)),
                             ('symlink', lambda: os.open('%s/%d' % (link, fd), os.O_RDONLY))):
            f2 = opener()
            check(11 * MIB, os.pread(f2, MIB, 11 * MIB), what)
            os.close(f2)
        os.dup2(fd, 0)
        with open('/dev/stdin', 'rb') as f:
            f.seek(13 * MIB)
            check(13 * MIB, f.read(MIB), '/dev/stdin')
        # O_PATH, then a reopen through it (no other fd on the file).
        path_fd = os.open(FILE, os.O_PATH)
        os.close(fd)
        os.close(0)
        f3 = os.open('/proc/self/fd/%d' % path_fd, os.O_RDONLY)
        check(15 * MIB, os.pread(f3, MIB, 15 * MIB), 'O_PATH reopen')
        os.close(f3)
        os.close(path_fd)
        # SCM_RIGHTS: a child process that has its own shim receives the fd.
        a, b = socket.socketpair()
        fd = os.open(FILE, os.O_RDONLY)
        pid = os.fork()
        if pid == 0:
            a.close()
            got = socket.recv_fds(b, 16, 1)[1][0]
            try:
                check(19 * MIB, os.pread(got, MIB, 19 * MIB), 'SCM_RIGHTS')
                os._exit(0)
            except SystemExit as e:
                print(e, file=sys.stderr)
                os._exit(1)
        b.close()
        socket.send_fds(a, [b'x'], [fd])
        assert os.waitpid(pid, 0)[1] == 0, 'the receiver read wrong bytes'
        # A full table: 256 partial fds, then dups and reopens of one.
        os.close(fd)
        a.close()
        fds = [os.open(FILE, os.O_RDONLY) for _ in range(256)]
        d = os.dup(fds[0])
        check(21 * MIB, os.pread(d, MIB, 21 * MIB), 'dup with a full table')
        r = os.open('/proc/self/fd/%d' % fds[1], os.O_RDONLY)
        check(22 * MIB, os.pread(r, MIB, 22 * MIB), 'reopen with a full table')
    """)
    c.stop()


def test_exec_after_a_failed_completion_does_not_run():
    # The store goes away while a partial fd is inherited: the program that
    # would read its holes is not run (system() -1, EIO), and says why.
    c = Cache("exec-fails", **{"IDLE_TIMEOUT": "60s"})
    c.env["AWS_MAX_ATTEMPTS"] = "1"
    r = c.py("""
        from store_proxy import CountingProxy
        proxy = CountingProxy(os.environ['AWS_ENDPOINT_URL'])
        os.environ['AWS_ENDPOINT_URL'] = proxy.url  # the daemon this program starts uses it
        fd = os.open(FILE, os.O_RDONLY)
        os.set_inheritable(fd, True)
        check(0, os.read(fd, MIB), 'before')
        proxy.stop()
        rc = os.system('cat /dev/fd/%d > /dev/null; echo ran' % fd)
        print('system', rc)
    """, check=False)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert "ran" not in out and "system -1" in out, (out, err)
    assert "not run" in err, err
    c.stop()


TESTS = [
    test_read_pread_readv_and_seek_hole,
    test_subprocess_between_reads,
    test_fork_child_reads,
    test_dup_and_redirection,
    test_more_open_than_the_table_holds,
    test_proc_self_fd_reopen,
    test_cp_and_tar_sparse,
    test_times_stay_the_objects,
    test_cp_reflink_on_xfs,
    test_daemon_restart_keeps_offset_flags_and_pins,
    test_kill9_daemon_mid_read,
    test_eviction_pressure_while_partial,
    test_system_and_popen_with_inherited_fd,
    test_posix_aio,
    test_threads_sharing_an_offset,
    test_signal_handler_reads_while_main_is_in_the_shim,
    test_execveat_with_an_inherited_fd,
    test_reopens_the_shim_does_not_name,
    test_exec_after_a_failed_completion_does_not_run,
]


def main():
    global PROXY
    os.makedirs(WORK, exist_ok=True)
    PROXY = CountingProxy(os.environ["AWS_ENDPOINT_URL"], delay=0.05, jitter=0.25)
    try:
        _, failed, _ = run_tests(TESTS, sys.argv[4:])
    finally:
        for name in os.listdir(WORK):
            cache = os.path.join(WORK, name, "cache")
            if os.path.isdir(cache):
                subprocess.run([DSCACHE, "daemon", "--stop"], env=dict(os.environ, DSCACHE_CACHE_DIR=cache),
                               capture_output=True)
        PROXY.stop()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
