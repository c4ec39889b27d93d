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
from runner import run_tests  # noqa: E402


def env(**extra):
    e = dict(os.environ)
    first = os.environ.get("DSCACHE_TEST_PRELOAD_FIRST", "")
    e.update({
        "LD_PRELOAD": (first + " " + LIB).strip(),
        "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0",
        "DSCACHE_MOUNTS": "/data/s=s3://%s/" % BUCKET,
        "DSCACHE_CACHE_DIR": CACHE,
        "DSCACHE_BIN": DSCACHE,
        "DSCACHE_INDEX_ENTRIES": "65536",
        # Set here so that a test can see whether a child gets them back.
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
    })
    e.update(extra)
    return e


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


def test_another_users_daemon_is_not_trusted():
    # A second user runs a daemon in a directory this user is then pointed at
    # (a shared /tmp): this user's tools and shim must refuse it, with one
    # line naming the uid, instead of being served by it.
    if os.geteuid() != 0:
        print("  (not root: no second user can be made; this case did not run)")
        return
    user = "dscache-u2"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user], check=True)
    pub = os.path.join(WORK, "pub")
    shutil.rmtree(pub, ignore_errors=True)
    os.makedirs(pub)
    os.chmod(pub, 0o1777)
    cache = os.path.join(pub, "cache")
    theirs = dict(os.environ, DSCACHE_CACHE_DIR=cache, DSCACHE_MOUNTS="/data/s=s3://%s/" % BUCKET,
                  DSCACHE_KERNEL_GUARD="off")
    daemon = subprocess.Popen(["runuser", "-u", user, "--", DSCACHE, "daemon"], env=theirs,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while not os.path.exists(os.path.join(cache, "run", "daemon.sock")) and time.time() < deadline:
            time.sleep(0.1)
        assert daemon.poll() is None, "the second user's daemon did not start: %s" % daemon.stderr.read()
        r = subprocess.run([DSCACHE, "status"], env=dict(os.environ, DSCACHE_CACHE_DIR=cache,
                                                         DSCACHE_MOUNTS="/data/s=s3://%s/" % BUCKET),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "runs as uid" in r.stderr and len(r.stderr.strip().splitlines()) == 1, \
            (r.returncode, r.stdout, r.stderr)
        r = subprocess.run(["cat", "/data/s/small/obj-0001.bin"], env=env(DSCACHE_CACHE_DIR=cache),
                           capture_output=True, timeout=60)
        assert r.returncode != 0 and b"runs as uid" in r.stderr, (r.returncode, r.stderr[-2000:])
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


TESTS = [test_fd_mutations_are_erofs, test_another_users_daemon_is_not_trusted, test_a_key_cannot_forge_a_log_line, test_credentials_not_put_back_into_a_scrubbed_child,
         test_each_spawn_gets_its_own_environment]


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
