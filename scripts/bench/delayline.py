#!/usr/bin/python3
"""A user-space delay line between two network namespaces, for benchmarks over an emulated
remote link (this kernel has no netem). Started by scripts/bench/netlink-up.sh.

It opens a TUN device in each namespace (--dev-a in --ns-a, --dev-b in --ns-b) and forwards every
IP packet that leaves one device to the other after --delay-ms (so RTT = 2 x delay). Kernel TCP
runs unmodified at both ends; the bandwidth limit is a `tc tbf` qdisc on each device, set by
netlink-up.sh. With --vnet the devices take GSO packets (up to 64 KiB) with offloaded checksums,
so one Python loop can carry more than 1 Gbit/s while TCP still sees a 1500-byte MTU.

Prints 'delayline ready' once both devices exist; exits on SIGTERM/SIGINT, and the devices go
with it."""
import argparse
import collections
import ctypes
import fcntl
import os
import select
import signal
import struct
import sys
import time

IFF_TUN, IFF_NO_PI, IFF_VNET_HDR = 0x0001, 0x1000, 0x4000
TUNSETIFF, TUNSETOFFLOAD = 0x400454CA, 0x400454D0
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
CLONE_NEWNET = 0x40000000


def enter_netns(libc, name):
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def open_tun(name, vnet):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet else 0)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    if vnet:
        fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    os.set_blocking(fd, False)
    return fd


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ns-a", required=True)
    p.add_argument("--dev-a", default="dl0")
    p.add_argument("--ns-b", required=True)
    p.add_argument("--dev-b", default="dl1")
    p.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay")
    p.add_argument("--vnet", action="store_true", help="GSO/checksum offload on the TUN devices")
    args = p.parse_args()

    libc = ctypes.CDLL(None, use_errno=True)
    # A TUN device belongs to the namespace its fd was opened in; the fds keep working
    # from whatever namespace this process is in afterwards.
    enter_netns(libc, args.ns_a)
    fa = open_tun(args.dev_a, args.vnet)
    enter_netns(libc, args.ns_b)
    fb = open_tun(args.dev_b, args.vnet)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("delayline ready", flush=True)

    delay = args.delay_ms / 1000.0
    queues = {fa: collections.deque(), fb: collections.deque()}  # (due time, packet), per source
    peer = {fa: fb, fb: fa}
    ep = select.epoll()
    ep.register(fa, select.EPOLLIN)
    ep.register(fb, select.EPOLLIN)
    now = time.monotonic
    while True:
        due = [q[0][0] for q in queues.values() if q]
        timeout = max(0.0, min(due) - now()) if due else 1.0
        for fd, _ in ep.poll(timeout):
            q = queues[fd]
            while True:
                try:
                    packet = os.read(fd, 131072)
                except BlockingIOError:
                    break
                q.append((now() + delay, packet))
        t = now()
        for src, q in queues.items():
            dst = peer[src]
            while q and q[0][0] <= t:
                try:
                    os.write(dst, q.popleft()[1])
                except OSError:
                    pass  # a full device queue: the packet is lost, as on a real link


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
