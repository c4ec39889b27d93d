#!/usr/bin/env bash
# Configures and builds dscache with CMake and Ninja.
#   scripts/build.sh [--dir DIR] [--sanitizer LIST] [--type BUILD_TYPE] [-- CMAKE_ARGS...]
# Defaults: --dir build, no sanitizer, RelWithDebInfo. Example for the CI
# sanitizer build: scripts/build.sh --dir build-asan --sanitizer address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build sanitizer='' type=RelWithDebInfo extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=${2:?--dir needs a value}; shift 2 ;;
    --sanitizer) [ $# -ge 2 ] || { echo "build.sh: --sanitizer needs a value (may be empty)" >&2; exit 2; }
      sanitizer=$2; shift 2 ;;
    --type) type=${2:?--type needs a value}; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DDSCACHE_SANITIZER="$sanitizer" "${extra[@]}" >/dev/null
cmake --build "$dir" --parallel "$(nproc)"
echo "build.sh: built $dir (${sanitizer:-no sanitizer}, $type)"
