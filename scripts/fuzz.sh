#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang into build-fuzz/ and
# runs each for a while, on its corpus tests/fuzz/corpus/TARGET/.
#   scripts/fuzz.sh [--seconds N] [--jobs J] [--merge] [TARGET...]
# Defaults: 60 s per target, as many targets at once as there are cores, all
# targets. Prints one line per target; exits 1 if any target crashed, leaked,
# hung or ran out of memory (the input is in build-fuzz/crashes/, the log in
# build-fuzz/logs/). New inputs go to build-fuzz/corpus/TARGET/; --merge adds
# those that reach new edges to tests/fuzz/corpus/TARGET/ at the end (libFuzzer
# -merge=1 on edges only, -use_counters=0: tens of small files, not hundreds).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(fuzz_s3_xml fuzz_config fuzz_ipc fuzz_aws_ini)
seconds=60 jobs=$(nproc) merge=0 targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a value}; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --seconds '$seconds': expected a positive number" >&2; exit 2; }
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --jobs '$jobs': expected a positive number" >&2; exit 2; }
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (${ALL_TARGETS[*]})" >&2; exit 2; }
done
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (scripts/setup.sh installs it)" >&2; exit 1; }

dir=build-fuzz
mkdir -p "$dir/crashes" "$dir/logs"
if ! { cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
         -DCMAKE_CXX_COMPILER=clang++ -DDSCACHE_FUZZ=ON -DDSCACHE_BUILD_TESTS=OFF &&
       cmake --build "$dir" --parallel "$(nproc)" --target "${targets[@]}"; } >"$dir/logs/build.log" 2>&1; then
  cat "$dir/logs/build.log" >&2
  echo "fuzz.sh: the build failed" >&2
  exit 1
fi

# A UB report aborts the run (-fno-sanitize-recover), and libFuzzer keeps the input.
export ASAN_OPTIONS=detect_leaks=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Runs one target; its one-line result goes to $dir/logs/TARGET.result.
fuzz_one() {
  local t=$1 bin=$dir/tests/fuzz/$1 work=$dir/corpus/$1 seeds=tests/fuzz/corpus/$1 log=$dir/logs/$1.log
  local dict=() start=$SECONDS rc=0
  mkdir -p "$work" "$seeds"
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  rm -f "$dir/crashes/$t".new
  touch "$dir/crashes/$t.new"
  # New inputs go to the first directory (build-fuzz); the seeds are only read.
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$dir/crashes/$t-" "${dict[@]}" "$work" "$seeds" >"$log" 2>&1 || rc=$?
  local runs artifact
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  artifact=$(find "$dir/crashes" -maxdepth 1 -name "$t-*" -newer "$dir/crashes/$t.new" | head -n 1)
  rm -f "$dir/crashes/$t.new"
  if [ "$rc" -eq 0 ] && [ -z "$artifact" ]; then
    printf 'PASS  %-13s %4d s  %10s runs\n' "$t" $((SECONDS - start)) "${runs:-?}" >"$dir/logs/$t.result"
  else
    local what
    what=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-z-]+|runtime error: .*|deadly signal' "$log" || true)
    printf 'FAIL  %-13s %4d s  %10s runs  %s: %s (log: %s)\n' "$t" $((SECONDS - start)) "${runs:-?}" \
      "${what:-exit status $rc}" "${artifact:-no input saved}" "$log" >"$dir/logs/$t.result"
  fi
  if [ "$merge" = 1 ] && [ "$rc" -eq 0 ]; then
    "$bin" -merge=1 -use_counters=0 -max_len=16384 "$seeds" "$work" >"$dir/logs/$t.merge.log" 2>&1 ||
      echo "fuzz.sh: merging $t's corpus failed (log: $dir/logs/$t.merge.log)" >&2
  fi
}

running=0
for t in "${targets[@]}"; do
  rm -f "$dir/logs/$t.result"
  fuzz_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

status=0
for t in "${targets[@]}"; do
  if [ -f "$dir/logs/$t.result" ]; then
    line=$(cat "$dir/logs/$t.result")
  else
    line="FAIL  $t: no result (log: $dir/logs/$t.log)"
  fi
  echo "fuzz.sh: $line"
  [[ $line == PASS* ]] || status=1
done
exit $status
