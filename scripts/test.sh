#!/usr/bin/env bash
# The whole test suite, as CI runs it: builds dscache twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs every test in both:
# doctest unit tests, then integration tests against a real radosgw that the
# suite starts and stops itself (scripts/s3-server.sh). Then each libFuzzer
# target of tests/fuzz runs for 30 s (scripts/fuzz.sh).
#   scripts/test.sh [--no-sanitizers] [--no-fuzz] [-- CTEST_ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."

sanitizers=1 fuzz=1 ctest_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --no-sanitizers) sanitizers=0; shift ;;
    --no-fuzz) fuzz=0; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

builds=("build:")
[ "$sanitizers" = 1 ] && builds+=("build-asan:address,undefined")

# Sanitizer reports abort the test that caused them, with a stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
summary=()
for entry in "${builds[@]}"; do
  dir=${entry%%:*} sanitizer=${entry#*:}
  start=$SECONDS
  scripts/build.sh --dir "$dir" --sanitizer "$sanitizer"
  if ctest --test-dir "$dir" --output-on-failure --timeout 1200 "${ctest_args[@]}"; then
    summary+=("PASS  $dir (${sanitizer:-no sanitizer}) in $((SECONDS - start)) s")
  else
    summary+=("FAIL  $dir (${sanitizer:-no sanitizer}) in $((SECONDS - start)) s")
    status=1
  fi
done
if [ "$fuzz" = 1 ]; then
  start=$SECONDS
  if scripts/fuzz.sh --seconds 30; then
    summary+=("PASS  build-fuzz (libFuzzer targets, 30 s each) in $((SECONDS - start)) s")
  else
    summary+=("FAIL  build-fuzz (libFuzzer targets, 30 s each) in $((SECONDS - start)) s")
    status=1
  fi
fi
printf '\ntest.sh summary:\n'
printf '  %s\n' "${summary[@]}"
exit $status
