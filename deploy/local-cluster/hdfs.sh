#!/usr/bin/env bash
# A single-node HDFS (NameNode + DataNode in one JVM) on 127.0.0.1, without a Hadoop distribution:
# MiniDFSCluster from Maven's hadoop-client-minicluster, the Hadoop version Spark brings.
#
#   hdfs.sh start --dir DIR    starts it (data, pid file and log under DIR); prints its URI
#                              hdfs://127.0.0.1:PORT on one line once a file can be written
#   hdfs.sh stop --dir DIR     stops it (TERM, then KILL after STOP_TIMEOUT s), keeping the data
#
# Environment (optional): JAVA_HOME, HDFS_MEMORY (heap, default 512m), START_TIMEOUT (seconds,
# default 120), STOP_TIMEOUT (seconds, default 15).
# Ports are chosen by the OS, so two instances in two DIRs never collide; a second start in the same
# DIR while one runs is refused; start after stop keeps the data (the URI's port changes). DIR holds
# hdfs.pid, hdfs.log, hdfs.uri (the URI) and data/. Needs `mvn -DskipTests package` first (it
# builds deploy/target/lib, deploy/target/hdfs-lib and the test classes).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
deploy="$(cd "$here/.." && pwd)"
usage() { echo "usage: hdfs.sh start|stop --dir DIR" >&2; exit 2; }
[ $# -eq 3 ] && [ "$2" = "--dir" ] || usage
action="$1"
dir="$3"
pidfile="$dir/hdfs.pid"
urifile="$dir/hdfs.uri"
log="$dir/hdfs.log"
timeout="${START_TIMEOUT:-120}"
grace="${STOP_TIMEOUT:-15}"

alive() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

signal() {  # signal SIG PID: the process group the daemon leads (setsid), else the process
  local sig="$1" pid="$2"
  if [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ]; then
    kill "-$sig" -- "-$pid" 2>/dev/null
  else
    kill "-$sig" "$pid" 2>/dev/null
  fi
}

stop() {
  if ! [ -s "$pidfile" ]; then
    echo "hdfs.sh: nothing to stop in $dir"
    rm -f "$urifile"
    return 0
  fi
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    echo "stopping HDFS (pid $pid)"
    signal TERM "$pid" || true
    local deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "pid $pid still alive after ${grace} s: killing"
      signal KILL "$pid" || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
  fi
  rm -f "$pidfile" "$urifile"
  echo "HDFS stopped"
}

case "$action" in
  stop) stop; exit 0 ;;
  start) ;;
  *) usage ;;
esac

if alive; then
  echo "hdfs.sh: Cannot start HDFS in $dir: it is running there (pid $(cat "$pidfile"), $(cat "$urifile" 2>/dev/null || echo 'not ready')); run hdfs.sh stop --dir $dir first" >&2
  exit 1
fi
rm -f "$pidfile" "$urifile"
lib="$deploy/target/lib"
hdfslib="$deploy/target/hdfs-lib"
classes="$deploy/target/test-classes"
if [ ! -d "$lib" ] || [ ! -d "$hdfslib" ] || [ ! -f "$classes/io/embstore/deploy/MiniHdfsMain.class" ]; then
  echo "hdfs.sh: Cannot start HDFS: $deploy/target has no lib/, hdfs-lib/ or test classes (build first: mvn -DskipTests package)" >&2
  exit 1
fi
mkdir -p "$dir/data"
java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"
# shellcheck source=../bin/java-flags.sh
. "$deploy/bin/java-flags.sh"
cp="$classes:$hdfslib/*:$lib/*"
# Its own session, so that stop signals the whole process group; `exec` keeps the recorded pid.
launcher=(bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$java_bin" "-Xmx${HDFS_MEMORY:-512m}" "${EMBSTORE_JVM_FLAGS[@]}"
  -cp "$cp" io.embstore.deploy.MiniHdfsMain "$dir/data" "$urifile")
if command -v setsid >/dev/null; then
  setsid "${launcher[@]}" >"$log" 2>&1 </dev/null &
else
  "${launcher[@]}" >"$log" 2>&1 </dev/null &
fi
for _ in $(seq 50); do [ -s "$pidfile" ] && break; sleep 0.1; done
fail() {
  echo "hdfs.sh: $1" >&2
  echo "---- last lines of $log" >&2
  tail -n 25 "$log" >&2 || true
  stop >&2 || true
  exit 1
}
trap 'fail "interrupted"' INT TERM
[ -s "$pidfile" ] || fail "Cannot start HDFS: no pid file after 5 s"
deadline=$((SECONDS + timeout))
while [ ! -s "$urifile" ]; do
  alive || fail "Cannot start HDFS: the process exited"
  [ $SECONDS -lt $deadline ] || fail "Cannot start HDFS: not writable after ${timeout} s"
  sleep 0.3
done
trap - INT TERM
cat "$urifile"
