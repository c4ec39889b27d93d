#!/usr/bin/python3
"""libdscache.so exports exactly the hooks of its table (shim/hooks.h) plus its
two own symbols, and every hook names a function libc really exports: a hook
that is missing from the exports, or that shadows nothing, is a defect.

    shim_symbols_test.py LIBDSCACHE_SO
"""
import ctypes
import subprocess
import sys

lib_path = sys.argv[1]


def dynamic_symbols(path, defined_only):
    args = ["nm", "-D", "--defined-only"] if defined_only else ["nm", "-D"]
    out = subprocess.run(args + [path], check=True, capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TtWiV":
            names.add(parts[2].split("@")[0])
    return names


lib = ctypes.CDLL(lib_path)
table = []
array = ctypes.cast(ctypes.addressof(ctypes.c_char_p.in_dll(lib, "dscache_hooked_symbols")),
                    ctypes.POINTER(ctypes.c_char_p))
for i in range(10000):
    if array[i] is None:
        break
    table.append(array[i].decode())
assert len(table) > 50, "the hook table has %d entries" % len(table)
assert len(set(table)) == len(table), "a hook listed twice: %s" % sorted(n for n in table if table.count(n) > 1)

exported = dynamic_symbols(lib_path, True)
own = {"dscache_shim_version", "dscache_hooked_symbols"}
missing = set(table) - exported
extra = exported - set(table) - own
ldd = subprocess.run(["ldd", lib_path], check=True, capture_output=True, text=True).stdout
libc_path = next(line.split("=>")[1].split()[0] for line in ldd.splitlines() if "libc.so.6" in line)
libc = dynamic_symbols(libc_path, True)
not_in_libc = set(table) - libc
problems = []
if missing:
    problems.append("hooks not exported: %s" % sorted(missing))
if extra:
    problems.append("exported but not hooks (leaked internals?): %s" % sorted(extra)[:20])
if not_in_libc:
    problems.append("hooks of functions libc does not export: %s" % sorted(not_in_libc))
if problems:
    print("FAIL: " + "\n      ".join(problems))
    sys.exit(1)
print("ok: %d hooks, all exported, all shadowing libc functions, nothing else exported" % len(table))
