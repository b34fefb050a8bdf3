#!/usr/bin/env bash
# Stops the cluster that start.sh started in CLUSTER_DIR (default deploy/target/local-cluster):
# every daemon recorded in a pid file, together with the executor JVMs it forked (each daemon runs
# in its own session, so its process group holds them). TERM first, KILL after STOP_TIMEOUT seconds
# (default 15). Safe to run twice, and when nothing or only part of the cluster is running.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
run="${CLUSTER_DIR:-$here/../target/local-cluster}"
grace="${STOP_TIMEOUT:-15}"

shopt -s nullglob
pidfiles=("$run"/*.pid)
if [ ${#pidfiles[@]} -eq 0 ]; then
  echo "stop.sh: nothing to stop in $run"
  exit 0
fi

# Workers first, so the master does not log their loss as a failure to act on.
mapfile -t ordered < <(printf '%s\n' "${pidfiles[@]}" | sort -r)
signal() {  # signal SIG PID: the daemon's process group if it leads one, else the process alone
  local sig="$1" pid="$2"
  if [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ]; then
    kill "-$sig" -- "-$pid" 2>/dev/null
  else
    kill "-$sig" "$pid" 2>/dev/null
  fi
}
pids=()
for f in "${ordered[@]}"; do
  pid="$(cat "$f" 2>/dev/null)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "stopping $(basename "$f" .pid) (pid $pid)"
    signal TERM "$pid"
    pids+=("$pid")
  fi
done

deadline=$((SECONDS + grace))
for pid in "${pids[@]}"; do
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "pid $pid still alive after ${grace} s: killing"
  fi
  # KILL the group in any case: executors the daemon forked may outlive it.
  signal KILL "$pid" || true
  kill -KILL -- "-$pid" 2>/dev/null || true
done
rm -f "${pidfiles[@]}" "$run/cluster.env"
echo "cluster stopped"
