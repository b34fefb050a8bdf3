#!/usr/bin/env bash
# Starts a Spark standalone Master and N Workers as separate JVMs on 127.0.0.1, without a Spark
# distribution. Usage: start.sh [N]   (N workers, default 2)
#
# Environment (all optional):
#   SPARK_HOME      folder with a RELEASE file and jars/ (default: deploy/target/spark-home, built by
#                   `mvn -DskipTests package`); a real Spark 4.2 distribution works too
#   CLUSTER_DIR     run dir for pid files, logs and work dirs (default: deploy/target/local-cluster)
#   WORKER_MEMORY   memory a worker offers to executors (default 1g)
#   WORKER_CORES    cores a worker offers (default 1)
#   DAEMON_MEMORY   heap of the Master and Worker daemons themselves (default 256m)
#   START_TIMEOUT   seconds to wait for the master and for all workers to register (default 120)
#   JAVA_HOME       the Java 17 to use
#
# All ports are chosen by the JVMs (port 0) and read back from the master log, so two clusters
# never collide. On success prints the master URL and writes $CLUSTER_DIR/cluster.env:
#   MASTER_URL=spark://127.0.0.1:PORT  MASTER_UI=http://127.0.0.1:PORT  WORKERS=N
# On any failure it prints the tail of the failing log, stops what it started and exits 1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
deploy="$(cd "$here/.." && pwd)"
n="${1:-2}"
case "$n" in '' | *[!0-9]* | 0) echo "start.sh: Cannot start cluster: $n workers (need a positive number)" >&2; exit 2 ;; esac

export SPARK_HOME="${SPARK_HOME:-$deploy/target/spark-home}"
run="${CLUSTER_DIR:-$deploy/target/local-cluster}"
memory="${WORKER_MEMORY:-1g}"
cores="${WORKER_CORES:-1}"
daemon_memory="${DAEMON_MEMORY:-256m}"
timeout="${START_TIMEOUT:-120}"
java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"

if [ ! -f "$SPARK_HOME/RELEASE" ] || [ ! -d "$SPARK_HOME/jars" ]; then
  echo "start.sh: Cannot start cluster: SPARK_HOME=$SPARK_HOME (needs a RELEASE file and jars/; build it: mvn -DskipTests package)" >&2
  exit 1
fi
if [ -n "$(ls "$run"/*.pid 2>/dev/null || true)" ]; then
  echo "start.sh: Cannot start cluster: $run has pid files (a cluster is running there; run stop.sh first)" >&2
  exit 1
fi
mkdir -p "$run"
rm -f "$run"/*.log "$run"/cluster.env
# shellcheck source=../bin/java-flags.sh
. "$deploy/bin/java-flags.sh"

# Spark's launcher (used by Workers to start executors) needs these two to find the jars.
export SPARK_SCALA_VERSION=2.13
export SPARK_LOCAL_IP=127.0.0.1
export SPARK_LOCAL_DIRS="$run/tmp"
export SPARK_NO_DAEMONIZE=1
mkdir -p "$SPARK_LOCAL_DIRS"

started=0
fail() {
  echo "start.sh: $1" >&2
  if [ -n "${2:-}" ] && [ -f "$2" ]; then
    echo "---- last lines of $2" >&2
    tail -n 25 "$2" >&2
  fi
  [ "$started" = 1 ] && CLUSTER_DIR="$run" "$here/stop.sh" >&2 || true
  exit 1
}
trap 'fail "interrupted"' INT TERM

# Runs a daemon in its own session (so stop.sh can kill it together with the executor JVMs it
# forks) and records its pid; `exec` keeps the pid of the recording shell.
launch() {
  local name="$1"; shift
  local log="$run/$name.log"
  if command -v setsid >/dev/null; then
    setsid bash -c 'echo $$ > "$0"; exec "$@"' "$run/$name.pid" "$@" >"$log" 2>&1 </dev/null &
  else
    bash -c 'echo $$ > "$0"; exec "$@"' "$run/$name.pid" "$@" >"$log" 2>&1 </dev/null &
  fi
  started=1
  local i
  for i in $(seq 50); do [ -s "$run/$name.pid" ] && return 0; sleep 0.1; done
  fail "Cannot start $name: no pid file after 5 s" "$log"
}

alive() { kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# Waits until `grep -E pattern log` matches (at least `count` times); fails as soon as one of the
# daemons started so far dies, showing its log.
wait_for() {
  local log="$1" pattern="$2" count="$3" what="$4"
  local deadline=$((SECONDS + timeout)) f
  while [ "$(grep -cE "$pattern" "$log" 2>/dev/null || true)" -lt "$count" ]; do
    for f in "$run"/*.pid; do
      local name; name="$(basename "$f" .pid)"
      alive "$name" || fail "Cannot start cluster: $name exited while waiting for $what" "$run/$name.log"
    done
    [ $SECONDS -lt $deadline ] || fail "Cannot start cluster: no $what after ${timeout} s" "$log"
    sleep 0.5
  done
}

cp="$SPARK_HOME/jars/*"
echo "starting Spark master (SPARK_HOME=$SPARK_HOME, logs in $run)"
# No REST submission server: it would bind the fixed port 6066 and clash with a second cluster.
launch master "$java_bin" "-Xmx$daemon_memory" "${EMBSTORE_JVM_FLAGS[@]}" -Dspark.master.rest.enabled=false -cp "$cp" \
  org.apache.spark.deploy.master.Master --host 127.0.0.1 --port 0 --webui-port 0
wait_for "$run/master.log" 'I have been elected leader|New state: ALIVE' 1 "master leadership"
master_url="$(grep -oE 'Starting Spark master at spark://[^ ]+' "$run/master.log" | head -n1 | sed 's/.* at //')"
master_ui="$(grep -oE 'started at http://[^ ]+' "$run/master.log" | head -n1 | sed 's/.* at //')"
[ -n "$master_url" ] || fail "Cannot start cluster: master URL not found in the log" "$run/master.log"
# The UI line says http://127.0.0.1:PORT or a host name; keep the port, use the loopback address.
ui_port="${master_ui##*:}"
master_ui="http://127.0.0.1:${ui_port%%/*}"
echo "master at $master_url (UI $master_ui)"

for i in $(seq 1 "$n"); do
  mkdir -p "$run/worker-$i"
  launch "worker-$i" "$java_bin" "-Xmx$daemon_memory" "${EMBSTORE_JVM_FLAGS[@]}" -cp "$cp" \
    org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --port 0 --webui-port 0 \
    --cores "$cores" --memory "$memory" --work-dir "$run/worker-$i" "$master_url"
done
echo "waiting for $n worker(s) to register"
wait_for "$run/master.log" 'Registering worker' "$n" "registration of $n workers"
for i in $(seq 1 "$n"); do
  alive "worker-$i" || fail "Cannot start cluster: worker-$i exited" "$run/worker-$i.log"
done

cat >"$run/cluster.env" <<EOF
MASTER_URL=$master_url
MASTER_UI=$master_ui
WORKERS=$n
SPARK_HOME=$SPARK_HOME
EOF
trap - INT TERM
echo "cluster ready: $n worker(s) x $cores core(s) x $memory"
echo "MASTER_URL=$master_url"
