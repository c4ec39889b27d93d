#!/usr/bin/python3
"""What a program under the shim can and cannot do to the shared cache and to
its children (issue 10): the cache is read-only however the program reaches
it, credentials stay where the program put them, and each new program gets
the environment its caller built.

    security_test.py LIBDSCACHE DSCACHE_BINARY WORKDIR [TEST...]
(environment from tests/integration/with-s3.sh; data from populate.py)
"""
import os
import shutil
import subprocess
import sys
import textwrap
import time

LIB = os.path.abspath(sys.argv[1])
DSCACHE = os.path.abspath(sys.argv[2])
WORK = os.path.abspath(sys.argv[3])
BUCKET = os.environ["DSCACHE_TEST_S3_BUCKET"]
PY = "/usr/bin/python3"
CACHE = os.path.join(WORK, "cache")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import object_bytes, run_tests, s3_client, shim_env  # noqa: E402


def env(**extra):
    # The keys are set here so that a test can see whether a child gets them back.
    keys = {"AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"]}
    return shim_env(LIB, DSCACHE, extra.pop("DSCACHE_CACHE_DIR", CACHE), **{**keys, **extra})


def py(code, check=True, **extra):
    r = subprocess.run([PY, "-c", textwrap.dedent(code)], env=env(**extra), capture_output=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError("python failed (%d):\n%s\n%s" % (r.returncode, r.stdout.decode()[-3000:],
                                                              r.stderr.decode()[-3000:]))
    return r.stdout.decode()


def test_fd_mutations_are_erofs():
    # An fd opened read-only under a mount must not change the shared cache
    # (before: os.utime(fd, (0, 0)) and fchmod went through, for every later job).
    out = py("""
        import errno, os, stat
        path = '/data/s/small/obj-0001.bin'
        fd = os.open(path, os.O_RDONLY)
        before = os.stat(path)  # (after the fetch: a listing's mtime has ms, a GET's s precision)
        dfd = os.open('/data/s/small', os.O_RDONLY | os.O_DIRECTORY)
        calls = {
            'fchmod': lambda: os.fchmod(fd, 0o600),
            'fchown': lambda: os.fchown(fd, os.getuid(), os.getgid()),
            'futimens': lambda: os.utime(fd, (0, 0)),
            'fsetxattr': lambda: os.setxattr(fd, 'user.x', b'1'),
            'fremovexattr': lambda: os.removexattr(fd, 'user.x'),
            'ftruncate': lambda: os.ftruncate(fd, 0),
            'fchmod of a directory': lambda: os.fchmod(dfd, 0o700),
            'utimensat(dirfd, NULL)': lambda: os.utime(dfd, (0, 0)),
            'open /proc/self/fd O_RDWR': lambda: os.open('/proc/self/fd/%d' % fd, os.O_RDWR),
            'open /dev/fd O_WRONLY|O_TRUNC': lambda: os.open('/dev/fd/%d' % fd, os.O_WRONLY | os.O_TRUNC),
            'fopen /proc/self/fd r+': lambda: open('/proc/self/fd/%d' % fd, 'r+b'),
        }
        for name, call in calls.items():
            try:
                call()
                print('%s: succeeded' % name)
            except OSError as e:
                if e.errno != errno.EROFS:
                    print('%s: %s' % (name, e))
        after = os.stat(path)
        for field in ('st_mode', 'st_uid', 'st_mtime_ns', 'st_size'):
            if getattr(before, field) != getattr(after, field):
                print('%s changed: %r -> %r' % (field, getattr(before, field), getattr(after, field)))
        # Reading still works, and local files are untouched by all this.
        assert os.pread(fd, 16, 0)
        local = os.path.join(WORKDIR, 'local.txt')
        with open(local, 'w') as f:
            f.write('x')
        lfd = os.open(local, os.O_RDONLY)
        os.fchmod(lfd, 0o600)
        os.utime(lfd, (0, 0))
    """.replace("WORKDIR", repr(WORK)))
    assert out.strip() == "", "fd mutations reached the cache:\n" + out


def test_credentials_not_put_back_into_a_scrubbed_child():
    # subprocess.run(env={...}) without the AWS keys: the child sees the
    # mounts (LD_PRELOAD, DSCACHE_*), never the secrets the program removed.
    out = py("""
        import subprocess
        r = subprocess.run(['/usr/bin/env'], env={'PATH': '/usr/bin:/bin'}, capture_output=True, check=True)
        print(r.stdout.decode())
    """)
    names = {line.split("=", 1)[0] for line in out.splitlines() if "=" in line}
    assert "AWS_SECRET_ACCESS_KEY" not in names and "AWS_ACCESS_KEY_ID" not in names, sorted(names)
    assert "LD_PRELOAD" in names and "DSCACHE_MOUNTS" in names, sorted(names)


def test_each_spawn_gets_its_own_environment():
    # Two threads posix_spawn at once, each with its own TAG in an environment
    # without the shim's settings (so the shim builds one): each child must see
    # its own (before: one static array, 20 of 300 children saw the other
    # thread's). And an environment of 5,000 entries arrives whole.
    out = py("""
        import os, threading
        def spawner(tag, results):
            for i in range(150):
                r, w = os.pipe()
                pid = os.posix_spawn('/usr/bin/printenv', ['printenv', 'TAG'],
                                     {'TAG': tag, 'PATH': '/usr/bin'}, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
                os.close(w)
                got = os.read(r, 100).decode().strip()
                os.close(r)
                os.waitpid(pid, 0)
                results.append(got)
        a, b = [], []
        threads = [threading.Thread(target=spawner, args=('alpha', a)), threading.Thread(target=spawner, args=('beta', b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wrong = [x for x in a if x != 'alpha'] + [x for x in b if x != 'beta']
        print('wrong', len(wrong), 'of', len(a) + len(b))
        big = {'V%d' % i: str(i) for i in range(5000)}
        big['PATH'] = '/usr/bin'
        r, w = os.pipe()
        pid = os.posix_spawn('/bin/sh', ['sh', '-c', 'env | grep -c ^V'], big, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
        os.close(w)
        count = b''
        while True:
            chunk = os.read(r, 100)
            if not chunk:
                break
            count += chunk
        os.waitpid(pid, 0)
        print('big', count.decode().strip())
    """)
    assert "wrong 0 of 300" in out, out
    assert "big 5000" in out, out


def test_a_key_cannot_forge_a_log_line():
    # An object key with a newline, named in the daemon's log (its fetch fails:
    # the object is deleted after listing): escaped, not a second line.
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], config=Config(s3={"addressing_style": "path"}))
    prefix = "sec-%d" % os.getpid()
    key = prefix + "/a\ndscache[1] error: forged.bin"
    cache = CACHE + "-log"  # its own: the bucket's root is listed afresh, with the new prefix in it
    shutil.rmtree(cache, ignore_errors=True)
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 100)
    try:
        py("""
            import os
            names = os.listdir('/data/s/%s')
            assert len(names) == 1, names
        """ % prefix, DSCACHE_CACHE_DIR=cache)
    finally:
        s3.delete_object(Bucket=BUCKET, Key=key)
    py("""
        import os
        try:
            open('/data/s/%s/' + os.listdir('/data/s/%s')[0], 'rb').read()
        except OSError:
            pass
    """ % (prefix, prefix), DSCACHE_CACHE_DIR=cache)
    subprocess.run([DSCACHE, "daemon", "--stop"], env=dict(os.environ, DSCACHE_CACHE_DIR=cache), capture_output=True)
    with open(os.path.join(cache, "daemon.log"), "rb") as f:
        log = f.read().decode(errors="replace")
    assert "\\x0adscache[1] error: forged" in log, "the key was not logged escaped:\n" + log[-2000:]
    assert not any(line.startswith("dscache[1] error: forged") for line in log.splitlines()), "a key forged a log line"


U2 = "dscache-u2"


def second_user():
    """The second local user (made once); None when not root."""
    if os.geteuid() != 0:
        print("  (not root: no second user can be made; this case did not run)")
        return None
    if subprocess.run(["id", U2], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", U2], check=True)
    return U2


def as_u2(args, preload=True, check=False, **extra):
    """Runs args as the second user with env(**extra); the shim is preloaded
    into the program only, not into runuser."""
    e = env(**extra)
    shim = e.pop("LD_PRELOAD")  # (with the ASan runtime first in a sanitizer build)
    e["HOME"] = "/nonexistent"
    cmd = ["runuser", "-u", U2, "--", "env"] + (["LD_PRELOAD=" + shim] if preload else []) + list(args)
    r = subprocess.run(cmd, env=e, capture_output=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError("%s as %s failed (%d):\n%s\n%s" % (args, U2, r.returncode, r.stdout.decode()[-3000:],
                                                                r.stderr.decode()[-3000:]))
    return r


def u2_home(name):
    """A fresh directory under WORK that the second user owns."""
    home = os.path.join(WORK, name)
    subprocess.run(["rm", "-rf", home], check=True)
    os.makedirs(home)
    shutil.chown(home, U2)
    return home


def public_dir(name):
    """A fresh sticky, world-writable directory (a shared /tmp) under WORK."""
    pub = os.path.join(WORK, name)
    subprocess.run(["rm", "-rf", pub], check=True)
    os.makedirs(pub)
    os.chmod(pub, 0o1777)
    return pub


def stop_daemon(cache, **extra):
    subprocess.run([DSCACHE, "daemon", "--stop"], env=dict(os.environ, DSCACHE_CACHE_DIR=cache, **extra),
                   capture_output=True, timeout=120)


def test_another_users_daemon_is_not_trusted():
    # A second user runs a daemon in a directory this user is then pointed at
    # (a shared /tmp): this user's tools and shim must refuse it, with one
    # line naming the uid, instead of being served by it.
    if second_user() is None:
        return
    cache = os.path.join(public_dir("pub"), "cache")
    theirs = dict(os.environ, DSCACHE_CACHE_DIR=cache, DSCACHE_MOUNTS="/data/s=s3://%s/" % BUCKET,
                  DSCACHE_KERNEL_GUARD="off", HOME="/nonexistent")
    daemon = subprocess.Popen(["runuser", "-u", U2, "--", DSCACHE, "daemon"], env=theirs,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while not os.path.exists(os.path.join(cache, "run", "daemon.sock")) and time.time() < deadline:
            time.sleep(0.1)
        assert daemon.poll() is None, "the second user's daemon did not start: %s" % daemon.stderr.read()
        r = subprocess.run([DSCACHE, "status"], env=dict(os.environ, DSCACHE_CACHE_DIR=cache,
                                                         DSCACHE_MOUNTS="/data/s=s3://%s/" % BUCKET),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "uid" in r.stderr and len(r.stderr.strip().splitlines()) == 1, \
            (r.returncode, r.stdout, r.stderr)
        r = subprocess.run(["cat", "/data/s/small/obj-0001.bin"], env=env(DSCACHE_CACHE_DIR=cache),
                           capture_output=True, timeout=60)
        assert r.returncode != 0 and b"uid" in r.stderr and not r.stdout, (r.returncode, r.stderr[-2000:])
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def test_a_cache_dir_made_by_another_user_is_refused():
    # Item 1: the second user makes the directory first; root's daemon must
    # not adopt it (before: it did, and the second user swapped mirror/ for
    # one of their own, whose bytes root's `cat` printed).
    if second_user() is None:
        return
    cache = os.path.join(public_dir("pub1"), "cache")
    subprocess.run(["runuser", "-u", U2, "--", "mkdir", "-m", "0700", cache], check=True)
    r = subprocess.run(["cat", "/data/s/small/obj-0001.bin"], env=env(DSCACHE_CACHE_DIR=cache),
                       capture_output=True, timeout=60)
    assert r.returncode != 0 and not r.stdout, (r.returncode, r.stdout[:100], r.stderr[-2000:])
    assert b"belongs to uid" in r.stderr, r.stderr[-2000:]
    r = subprocess.run([DSCACHE, "daemon"], env=dict(os.environ, DSCACHE_CACHE_DIR=cache,
                                                     DSCACHE_MOUNTS="/data/s=s3://%s/" % BUCKET),
                       capture_output=True, text=True, timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and "belongs to uid" in lines[0] and cache in lines[0], r.stderr
    assert os.listdir(cache) == [], os.listdir(cache)  # nothing was made in it
    # A parent the second user owns (they could rename the cache away) is refused too.
    theirs = os.path.join(os.path.dirname(cache), "theirs")
    subprocess.run(["runuser", "-u", U2, "--", "mkdir", "-m", "0755", theirs], check=True)
    r = subprocess.run([DSCACHE, "daemon"], env=dict(os.environ, DSCACHE_CACHE_DIR=theirs + "/cache",
                                                     DSCACHE_MOUNTS="/data/s=s3://%s/" % BUCKET),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "belongs to uid" in r.stderr and "theirs" in r.stderr, r.stderr
    assert not os.path.exists(theirs + "/cache")


def test_a_link_in_the_cache_is_never_followed():
    # Item 2: tmp/ replaced by a link to another directory; the daemon's start
    # (which empties tmp/) must not empty that directory (before: it did).
    cache = os.path.join(WORK, "cache-link")
    shutil.rmtree(cache, ignore_errors=True)
    py("import os; os.listdir('/data/s/small')", DSCACHE_CACHE_DIR=cache)
    stop_daemon(cache)
    victim = os.path.join(WORK, "victim")
    shutil.rmtree(victim, ignore_errors=True)
    os.makedirs(victim)
    with open(os.path.join(victim, "precious"), "w") as f:
        f.write("keep me")
    shutil.rmtree(os.path.join(cache, "tmp"))
    os.symlink(victim, os.path.join(cache, "tmp"))
    r = subprocess.run([DSCACHE, "daemon"], env=dict(os.environ, DSCACHE_CACHE_DIR=cache,
                                                     DSCACHE_MOUNTS="/data/s=s3://%s/" % BUCKET),
                       capture_output=True, text=True, timeout=60)
    assert os.path.exists(os.path.join(victim, "precious")), "the daemon emptied the directory tmp/ linked to"
    assert r.returncode != 0 and "tmp" in r.stderr and "not a directory" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_cache_dir_reached_through_a_link():
    # A link planted by another user is refused; one of this user's own (or
    # root's) to a private directory is followed: the cache works through it.
    if second_user() is None:
        return
    pub = public_dir("pub2")
    target = os.path.join(pub, "u2dir")
    subprocess.run(["runuser", "-u", U2, "--", "mkdir", "-m", "0777", target], check=True)
    planted = os.path.join(pub, "cache")
    subprocess.run(["runuser", "-u", U2, "--", "ln", "-s", target, planted], check=True)
    r = subprocess.run(["cat", "/data/s/small/obj-0002.bin"], env=env(DSCACHE_CACHE_DIR=planted),
                       capture_output=True, timeout=60)
    assert r.returncode != 0 and b"symbolic link" in r.stderr and b"uid" in r.stderr, r.stderr[-2000:]
    assert os.listdir(target) == []
    mine = os.path.join(WORK, "cache-real")
    shutil.rmtree(mine, ignore_errors=True)
    os.makedirs(mine, mode=0o700)
    link = os.path.join(pub, "mine")
    os.symlink(mine, link)
    try:
        r = subprocess.run(["cat", "/data/s/small/obj-0002.bin"], env=env(DSCACHE_CACHE_DIR=link),
                           capture_output=True, timeout=60)
        assert r.returncode == 0 and r.stdout == object_bytes("small/obj-0002.bin"), r.stderr[-2000:]
        assert os.path.exists(os.path.join(mine, "index"))
    finally:
        stop_daemon(link)


def test_no_secret_in_the_daemons_environment_or_log():
    cache = os.path.join(WORK, "cache-secret")
    shutil.rmtree(cache, ignore_errors=True)
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    py("open('/data/s/small/obj-0003.bin', 'rb').read()", DSCACHE_CACHE_DIR=cache, DSCACHE_LOG="debug")
    try:
        with open(os.path.join(cache, "daemon.lock")) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/environ" % pid, "rb") as f:
            environ = f.read()
        assert secret.encode() not in environ, "the daemon's /proc/PID/environ shows the secret key"
        assert b"DSCACHE_MOUNTS=" in environ  # what is not secret stays
        # The guard keeper, a child of the daemon, has none either.
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/cmdline" % entry, "rb") as f:
                        cmd = f.read()
                    if cache.encode() in cmd or (DSCACHE.encode() in cmd and b"daemon" in cmd):
                        with open("/proc/%s/environ" % entry, "rb") as f:
                            assert secret.encode() not in f.read(), cmd
                except OSError:
                    pass
    finally:
        stop_daemon(cache)
    with open(os.path.join(cache, "daemon.log"), "rb") as f:
        assert secret.encode() not in f.read(), "the daemon's log has the secret key"


def test_a_second_user_cannot_reach_roots_cache():
    if second_user() is None:
        return
    py("open('/data/s/small/obj-0004.bin', 'rb').read()")  # root's cache, its daemon running
    probe = """
import glob, os, socket, sys
cache = sys.argv[1]
out = []
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(os.path.join(cache, 'run', 'daemon.sock'))
    out.append('connected')
except OSError as e:
    pass
for path in [os.path.join(cache, 'index')] + glob.glob(os.path.join(cache, 'mirror', '*', 'small', 'obj-0004.bin')):
    try:
        open(path, 'rb').read(1)
        out.append('read ' + path)
    except OSError:
        pass
try:
    os.listdir(cache)
    out.append('listed')
except OSError:
    pass
print(' '.join(out))
"""
    r = as_u2([PY, "-c", probe, CACHE], preload=False)
    assert r.returncode == 0 and r.stdout.strip() == b"", (r.stdout, r.stderr[-2000:])
    # Through the shim, the second user is refused too (not served root's bytes).
    r = as_u2(["cat", "/data/s/small/obj-0004.bin"])
    assert r.returncode != 0 and not r.stdout, (r.returncode, r.stdout[:64], r.stderr[-2000:])
    assert b"Permission denied" in r.stderr or b"uid" in r.stderr, r.stderr[-2000:]


def test_the_mirror_is_read_only_without_the_shim():
    # Item 6: a program whose cwd is in a mount execs a child without the shim
    # (a raw execve with an empty environment): the child must not create,
    # change or delete anything in the cache (before: `touch x` made x, and
    # `ls` then showed it). Run as a user, with that user's cache: root is
    # not bound by file modes.
    if second_user() is None:
        return
    cache = os.path.join(u2_home("u2home"), "cache")
    code = r"""
import ctypes, os, subprocess, sys
os.chdir('/data/s/small')
names = os.listdir('.')
libc = ctypes.CDLL(None, use_errno=True)
def raw(*argv):
    # fork, then execve by raw syscall: nothing of the shim runs in the child.
    pid = os.fork()
    if pid == 0:
        args = (ctypes.c_char_p * (len(argv) + 1))(*[a.encode() for a in argv], None)
        envp = (ctypes.c_char_p * 1)(None)
        libc.syscall(59, args[0], args, envp)
        os._exit(127)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print('touch', raw('/usr/bin/touch', 'x'))
print('rm', raw('/bin/rm', '-f', 'obj-0005.bin'))
print('mkdir', raw('/bin/mkdir', 'd'))
print('write', raw('/bin/sh', '-c', 'echo evil > obj-0007.bin'))
# env -i clears its own environment, then execs: its child runs without the shim.
print('env-i', subprocess.run(['env', '-i', '/usr/bin/touch', 'y'], stderr=subprocess.DEVNULL).returncode)
after = os.listdir('.')
print('same names', sorted(after) == sorted(names))
print('0005', os.path.exists('obj-0005.bin'))
"""
    r = as_u2([PY, "-c", code], DSCACHE_CACHE_DIR=cache, DSCACHE_KERNEL_GUARD="off")
    out = r.stdout.decode()
    try:
        assert r.returncode == 0, (out, r.stderr.decode()[-3000:])
        # (Its owner can still chmod a file: modes cannot stop that; docs/architecture.md.)
        for op in ("touch", "rm", "mkdir", "write", "env-i"):
            assert "%s 0" % op not in out, "a child without the shim could %s in the cache:\n%s" % (op, out)
        assert "same names True" in out and "0005 True" in out, out
        r = as_u2(["cat", "/data/s/small/obj-0007.bin"], DSCACHE_CACHE_DIR=cache)
        assert r.returncode == 0 and r.stdout == object_bytes("small/obj-0007.bin"), r.stderr[-2000:]
    finally:
        as_u2([DSCACHE, "daemon", "--stop"], preload=False, DSCACHE_CACHE_DIR=cache)


def test_a_users_daemon_works_with_a_read_only_mirror():
    # Every change the daemon makes in the read-only mirror, as a user (root
    # ignores modes): listings, placeholders, whole and block fills, a changed
    # and a deleted object, eviction, fsck --repair; afterwards every mirror
    # directory is 0555 and every file 0444 again.
    if second_user() is None:
        return
    cache = os.path.join(u2_home("u2home2"), "cache")
    s3 = s3_client()
    prefix = "ro-%d" % os.getpid()
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key="%s/d/f%d" % (prefix, i), Body=b"v1-%d" % i * 1000)
    s3.put_object(Bucket=BUCKET, Key="%s/gone/x" % prefix, Body=b"x")
    extra = dict(DSCACHE_CACHE_DIR=cache, DSCACHE_KERNEL_GUARD="off", DSCACHE_WHOLE_FILE_MAX="256K",
                 DSCACHE_BLOCK_SIZE="64K", DSCACHE_META_TTL="0")
    read_all = r"""
import hashlib, os, sys
for root, dirs, files in os.walk('/data/s/PREFIX'):
    for f in sorted(files):
        with open(os.path.join(root, f), 'rb') as h:
            print(os.path.relpath(os.path.join(root, f), '/data/s/PREFIX'), hashlib.md5(h.read()).hexdigest())
with open('/data/s/ranges/r.bin', 'rb') as h:
    h.seek(500_000)
    print('ranges', hashlib.md5(h.read(100_000)).hexdigest())
""".replace("PREFIX", prefix)
    import hashlib
    try:
        r = as_u2([PY, "-c", read_all], **extra)
        assert r.returncode == 0, r.stderr.decode()[-3000:]
        want = {"d/f%d" % i: hashlib.md5(b"v1-%d" % i * 1000).hexdigest() for i in range(3)}
        want["gone/x"] = hashlib.md5(b"x").hexdigest()
        want["ranges"] = hashlib.md5(object_bytes("ranges/r.bin")[500_000:600_000]).hexdigest()
        got = dict(line.split() for line in r.stdout.decode().splitlines())
        assert got == want, (got, want)
        # Changed and deleted in the store; evicted and repaired in the cache.
        s3.put_object(Bucket=BUCKET, Key="%s/d/f1" % prefix, Body=b"v2" * 700)
        s3.delete_object(Bucket=BUCKET, Key="%s/gone/x" % prefix)
        s3.delete_object(Bucket=BUCKET, Key="%s/d/f2" % prefix)
        as_u2([DSCACHE, "evict", "/data/s/%s/d/f0" % prefix], preload=False, check=True, **extra)
        r = as_u2([PY, "-c", read_all], **extra)
        assert r.returncode == 0, r.stderr.decode()[-3000:]
        got = dict(line.split() for line in r.stdout.decode().splitlines())
        want = {"d/f0": hashlib.md5(b"v1-0" * 1000).hexdigest(), "d/f1": hashlib.md5(b"v2" * 700).hexdigest(),
                "ranges": want["ranges"]}
        assert got == want, (got, want)
        as_u2([DSCACHE, "fsck", "--repair"], preload=False, check=True, **extra)
        as_u2([DSCACHE, "clear"], preload=False, check=True, **extra)
        r = as_u2([PY, "-c", read_all], **extra)
        assert dict(line.split() for line in r.stdout.decode().splitlines()) == want, r.stderr.decode()[-3000:]
        modes = set()
        for root, dirs, files in os.walk(os.path.join(cache, "mirror")):
            for d in dirs:
                modes.add(("dir", oct(os.lstat(os.path.join(root, d)).st_mode & 0o7777)))
            for f in files:
                modes.add(("file", oct(os.lstat(os.path.join(root, f)).st_mode & 0o7777)))
        assert modes <= {("dir", "0o555"), ("file", "0o444")}, modes
    finally:
        as_u2([DSCACHE, "daemon", "--stop"], preload=False, **extra)
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=o["Key"])
    # Its owner removes it with `dscache clear --remove` (rm -rf cannot: the mirror is read-only).
    r = as_u2(["rm", "-rf", cache], preload=False)
    assert r.returncode != 0 and os.path.exists(cache)
    as_u2([DSCACHE, "clear", "--remove"], preload=False, check=True, **extra)
    assert not os.path.exists(cache)


def test_a_log_file_in_a_shared_directory():
    # DSCACHE_LOG_FILE in a shared /tmp: another user's link or FIFO there is
    # refused (before: root's daemon appended to the link's target, or hung
    # opening the FIFO).
    if second_user() is None:
        return
    pub = public_dir("pub-log")
    victim = os.path.join(WORK, "log-victim")
    with open(victim, "w") as f:
        f.write("ORIGINAL\n")
    link, fifo = os.path.join(pub, "link"), os.path.join(pub, "fifo")
    subprocess.run(["runuser", "-u", U2, "--", "ln", "-s", victim, link], check=True)
    subprocess.run(["runuser", "-u", U2, "--", "mkfifo", "-m", "0666", fifo], check=True)
    for path, why in ((link, "symbolic link"), (fifo, "not a regular file")):
        r = subprocess.run([DSCACHE, "status"], env=dict(os.environ, DSCACHE_LOG_FILE=path, DSCACHE_CACHE_DIR=CACHE),
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and why in r.stderr, (path, r.returncode, r.stderr)
    with open(victim) as f:
        assert f.read() == "ORIGINAL\n"


def test_a_daemon_whose_directory_is_removed_exits():
    # `rm -rf` of a running cache (possible for root, partly for its owner):
    # the daemon must not live on beside the next one.
    cache = os.path.join(WORK, "cache-removed")
    shutil.rmtree(cache, ignore_errors=True)
    py("open('/data/s/small/obj-0010.bin', 'rb').read()", DSCACHE_CACHE_DIR=cache)
    with open(os.path.join(cache, "daemon.lock")) as f:
        pid = int(f.read().strip())
    subprocess.run(["rm", "-rf", cache], check=True)
    deadline = time.time() + 30
    while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
        time.sleep(0.2)
    gone = not os.path.exists("/proc/%d" % pid)
    if not gone:
        os.kill(pid, 9)
    assert gone, "the daemon of a removed cache directory still runs"


def test_a_system_daemon_serves_other_users_read_only():
    # Item 3: root runs one daemon for every user (DSCACHE_SYSTEM_DAEMON=1);
    # a user who names it reads through it, cannot evict, and a user who does
    # not name it refuses it.
    if second_user() is None:
        return
    cache = os.path.join(WORK, "cache-system")
    shutil.rmtree(cache, ignore_errors=True)
    system = dict(os.environ, DSCACHE_CACHE_DIR=cache, DSCACHE_MOUNTS="/data/s=s3://%s/" % BUCKET,
                  DSCACHE_SYSTEM_DAEMON="1", DSCACHE_KERNEL_GUARD="off")
    daemon = subprocess.Popen([DSCACHE, "daemon"], env=system, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while not os.path.exists(os.path.join(cache, "run", "daemon.sock")) and time.time() < deadline:
            time.sleep(0.1)
        assert daemon.poll() is None, daemon.stderr.read()
        user = dict(DSCACHE_CACHE_DIR=cache, DSCACHE_SYSTEM_DAEMON="1", AWS_SECRET_ACCESS_KEY="",
                    AWS_ACCESS_KEY_ID="")
        r = as_u2(["cat", "/data/s/small/obj-0008.bin", "/data/s/ranges/r.bin"], **user)
        assert r.returncode == 0 and r.stdout == object_bytes("small/obj-0008.bin") + object_bytes("ranges/r.bin"), \
            r.stderr[-2000:]
        r = as_u2([DSCACHE, "evict", "/data/s/small/obj-0008.bin"], preload=False, **user)
        assert r.returncode != 0 and b"for root" in r.stderr, (r.returncode, r.stderr)
        r = as_u2(["cat", "/data/s/small/obj-0009.bin"], DSCACHE_CACHE_DIR=cache)
        assert r.returncode != 0 and not r.stdout and b"DSCACHE_SYSTEM_DAEMON=1" in r.stderr, r.stderr[-2000:]
        assert len(r.stderr.strip().splitlines()) == 2, r.stderr  # the shim's one line, then cat's
        r = as_u2([DSCACHE, "status"], preload=False, **user)
        assert r.returncode == 0 and b"running (pid" in r.stdout, (r.stdout, r.stderr)
        # Only root runs a system daemon.
        r = as_u2([DSCACHE, "daemon"], preload=False, DSCACHE_CACHE_DIR=os.path.join(WORK, "nope"),
                  DSCACHE_SYSTEM_DAEMON="1")
        assert r.returncode != 0 and b"runs as root" in r.stderr, r.stderr
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


TESTS = [test_fd_mutations_are_erofs, test_another_users_daemon_is_not_trusted, test_a_cache_dir_made_by_another_user_is_refused,
         test_a_link_in_the_cache_is_never_followed, test_a_cache_dir_reached_through_a_link,
         test_no_secret_in_the_daemons_environment_or_log, test_a_second_user_cannot_reach_roots_cache,
         test_the_mirror_is_read_only_without_the_shim, test_a_users_daemon_works_with_a_read_only_mirror,
         test_a_system_daemon_serves_other_users_read_only, test_a_log_file_in_a_shared_directory,
         test_a_daemon_whose_directory_is_removed_exits, test_a_key_cannot_forge_a_log_line,
         test_credentials_not_put_back_into_a_scrubbed_child, test_each_spawn_gets_its_own_environment]


def main():
    os.makedirs(WORK, exist_ok=True)
    shutil.rmtree(CACHE, ignore_errors=True)
    try:
        _, failed, _ = run_tests(TESTS, sys.argv[4:])
    finally:
        subprocess.run([DSCACHE, "daemon", "--stop"], env=dict(os.environ, DSCACHE_CACHE_DIR=CACHE),
                       capture_output=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
