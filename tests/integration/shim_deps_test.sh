#!/bin/bash
# libdscache.so must depend on libc alone (and, in a sanitizer build, the
# sanitizer runtimes): it is preloaded into arbitrary programs.
#   shim_deps_test.sh LIBDSCACHE_SO
set -u
needed=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
bad=$(grep -v -E '^(libc\.so\.6|ld-linux-x86-64\.so\.2|libasan\.so\.[0-9]+|libubsan\.so\.[0-9]+|libtsan\.so\.[0-9]+|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1)$' <<<"$needed")
if [ -n "$bad" ]; then
  echo "FAIL: $1 needs more than libc: $bad"
  exit 1
fi
# Outside sanitizer builds, nothing but libc at all.
if ! grep -q -E 'lib(asan|ubsan|tsan)' <<<"$needed" && [ "$needed" != "libc.so.6" ]; then
  echo "FAIL: $1 needs: $(tr '\n' ' ' <<<"$needed") (expected libc.so.6 only)"
  exit 1
fi
echo "ok: $1 needs: $(tr '\n' ' ' <<<"$needed")"
