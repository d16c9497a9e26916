#!/usr/bin/env bash
# Stop what the start scripts started, by the pid files in the given dirs.
# A pid is only signalled if its command line still names that dir.
set -euo pipefail
for dir in "$@"; do
  [[ -d $dir ]] || continue
  dir=$(cd "$dir" && pwd)
  for pidfile in "$dir"/*.pid; do
    [[ -f $pidfile ]] || continue
    pid=$(<"$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && grep -qs "$dir/" "/proc/$pid/cmdline"; then
      kill "$pid" 2> /dev/null || true
      for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2> /dev/null || true
    fi
    rm -f "$pidfile"
  done
done
