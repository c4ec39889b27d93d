#!/usr/bin/env bash
# Installs every build, test and benchmark dependency from Debian 12 packages.
# Idempotent: when everything is already installed it does not touch apt at all,
# so CI and developers can run it unconditionally. Does not build the project.
set -euo pipefail

BUILD=(build-essential cmake ninja-build pkg-config libcurl4-openssl-dev libssl-dev
  liburing-dev libmimalloc-dev doctest-dev libpugixml-dev libxxhash-dev)
# radosgw/ceph-*: the real S3 server of scripts/s3-server.sh. Python modules are
# for /usr/bin/python3, which integration tests call explicitly; xfsprogs makes the
# reflink (XFS) file system the partial-file test copies onto.
TEST=(curl ca-certificates radosgw ceph-mon ceph-osd python3 python3-boto3 python3-numpy
  python3-pil python3-torch python3-torchvision python3-lmdb python3-h5py fio file xxd
  xfsprogs)
# scripts/fuzz.sh: clang with libFuzzer and the sanitizer runtimes (libclang_rt.fuzzer
# is in libclang-rt-14-dev, only a recommendation of clang-14), llvm-symbolizer (llvm).
FUZZ=(clang libclang-rt-14-dev llvm)
# Peers for side-by-side benchmarks (FUSE-based S3 file systems) and the timer.
BENCH=(s3fs rclone fuse3 hyperfine bc valgrind)
ALL=("${BUILD[@]}" "${TEST[@]}" "${FUZZ[@]}" "${BENCH[@]}")

log() { printf 'setup.sh: %s\n' "$*" >&2; }

missing() {
  local ok p
  # Exact state: a removed-but-configured ("deinstall ok config-files") package counts as missing.
  ok=" $(dpkg-query -W -f='${Package}=${Status}\n' "${ALL[@]}" 2>/dev/null |
    sed -n 's/=install ok installed$//p' | tr '\n' ' ') " || true
  for p in "${ALL[@]}"; do [[ $ok == *" $p "* ]] || echo "$p"; done
}

mapfile -t MISSING < <(missing)
if [ ${#MISSING[@]} -eq 0 ]; then
  echo "setup.sh: all ${#ALL[@]} packages already installed (apt not run)"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then SUDO=()
elif command -v sudo >/dev/null; then SUDO=(sudo)
else log "error: not root and no sudo; install as root: ${MISSING[*]}"; exit 1
fi
# env rather than an exported variable: sudo drops the caller's environment.
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Use-Pty=0)

log "installing ${#MISSING[@]} missing package(s): ${MISSING[*]}"
# Mirrors hiccup now and then; one retry covers the transient cases.
if ! "${APT[@]}" update >&2; then
  log "apt-get update failed, retrying once in 5 s"
  sleep 5
  "${APT[@]}" update >&2 || { log "error: apt-get update failed twice"; exit 1; }
fi
"${APT[@]}" install -y --no-install-recommends "${MISSING[@]}" >&2 ||
  { log "error: apt-get install failed for: ${MISSING[*]}"; exit 1; }

mapfile -t STILL < <(missing)
if [ ${#STILL[@]} -ne 0 ]; then
  log "error: still not installed after apt-get: ${STILL[*]}"
  exit 1
fi
echo "setup.sh: installed ${#MISSING[@]} package(s) (${MISSING[*]}); all ${#ALL[@]} present"
