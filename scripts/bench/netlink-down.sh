#!/usr/bin/env bash
# Removes the emulated link of scripts/bench/netlink-up.sh: stops its delay
# line (only the process it started) and deletes the two namespaces.
#   scripts/bench/netlink-down.sh [--name NAME] [--dir DIR]
# Processes still running inside the namespaces are not touched: stop servers
# started there first (the namespace lives on, unnamed, while they run).
set -uo pipefail
name=dscache dir=''
while [ $# -gt 0 ]; do
  case $1 in
    --name) name=${2:?--name needs a value}; shift 2 ;;
    --dir) dir=${2:?--dir needs a value}; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "netlink-down.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
dir=${dir:-/tmp/dscache-netlink-$name}

if [ -f "$dir/delayline.pid" ]; then
  pid=$(cat "$dir/delayline.pid")
  # Only our delay line: a reused PID runs something else.
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "delayline.py --ns-a $name-cli "; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
fi
ip netns del "$name-cli" 2>/dev/null
ip netns del "$name-srv" 2>/dev/null
rm -f -- "$dir/delayline.pid" "$dir/delayline.log" "$dir/err"
rmdir -- "$dir" 2>/dev/null
echo "netlink-down: removed $name-cli, $name-srv" >&2
exit 0
