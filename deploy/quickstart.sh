#!/usr/bin/env bash
# embstore in one command: build, train embeddings on the King James Bible (shipped in
# deploy/quickstart/, public domain) with Spark in local mode, serve the table from two shard-server
# processes, look tokens up through the routing client and print their nearest neighbours.
#
#   deploy/quickstart.sh            (from anywhere; needs Java 17 and Maven, nothing else)
#
# Environment (optional): QUICKSTART_DIR (output, default deploy/target/quickstart; cleaned at each
# run), EPOCHS (default 3), DIM (default 50), MVN (default mvn), MVN_ARGS (e.g. -o).
# The servers are stopped when the script ends, also when a step fails or on Ctrl-C.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="${QUICKSTART_DIR:-$here/target/quickstart}"
epochs="${EPOCHS:-3}"
dim="${DIM:-50}"
shards=4
corpus="$here/quickstart/kjv.txt.gz"
tokens=(god king jesus egypt)
embstore="$here/bin/embstore"
# bin/embstore with the JVM's note about the incubator module (train loads it: Spark and the SIMD kernels) filtered out
es() { "$embstore" "$@" 2> >(grep -v 'Using incubator modules' >&2); }
t0=$SECONDS

step() { printf '\n\033[1m[%3ds] %s\033[0m\n' $((SECONDS - t0)) "$*"; }
die() { printf '\nquickstart: %s\n' "$*" >&2; exit 1; }

# fd 3 = the terminal's stdout: a signal can arrive while a command's stdout is redirected to a file,
# and the cleanup must still be seen.
exec 3>&1
pids=()
cleanup() {
  local rc=$?
  exec 1>&3
  if [ ${#pids[@]} -gt 0 ]; then
    step "stopping the shard servers"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
    echo "stopped ${#pids[@]} server(s)"
  fi
  [ $rc -eq 0 ] || printf '\nquickstart FAILED (exit %d); logs in %s\n' "$rc" "$out" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v java >/dev/null || [ -n "${JAVA_HOME:-}" ] || die "Cannot run: no java (install Java 17)"

# 1. Build, unless the jars are newer than every source file.
stamp="$here/target/.quickstart-build"
if [ -f "$stamp" ] && [ -d "$here/target/lib" ] && [ -z "$(find "$repo/pom.xml" "$repo"/*/pom.xml \
    "$repo"/arrow-format/src/main "$repo"/shard-client/src/main "$repo"/spark-job/src/main \
    "$here/src/main" -newer "$stamp" -print -quit 2>/dev/null)" ]; then
  step "build: up to date (deploy/target/lib)"
else
  step "build: ${MVN:-mvn} -q -DskipTests package (a minute or two the first time)"
  (cd "$repo" && ${MVN:-mvn} -q -B -Dstyle.color=never ${MVN_ARGS:-} -DskipTests -Dembstore.skipDist=true package) \
    || die "Cannot build: mvn failed (see above)"
  touch "$stamp"
fi

rm -rf "$out"
mkdir -p "$out"
table="$out/table"

# 2. Train.
step "train: skip-gram on $(basename "$corpus") (791,450 tokens), dim $dim, $epochs epochs, local[2], $shards shards"
t_train=$SECONDS
set +e
es train --input "$corpus" --output "$table" --dim "$dim" --epochs "$epochs" \
  --min-count 5 --shards "$shards" --master 'local[2]' 2>&1 | tee "$out/train.log" \
  | grep --line-buffered -vE '^\s+at |NativeCodeLoader'
status=("${PIPESTATUS[@]}")
set -e
[ "${status[0]}" -eq 0 ] || die "Cannot train: exit ${status[0]}, see $out/train.log"
[ -d "$table" ] || die "Cannot find the table: $table"
train_seconds=$((SECONDS - t_train))

# 3. Serve: two processes, each hosting half of the shards, on free ports.
ENDPOINT=""
start_server() {  # start_server NAME SHARDS: starts it in the background, sets ENDPOINT
  local name="$1" list="$2" log="$out/$1.log"
  EMBSTORE_JAVA_OPTS="${EMBSTORE_JAVA_OPTS:--Xmx512m}" \
    "$embstore" serve --table "$table" --shards "$list" --host 127.0.0.1 --port 0 >"$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  local deadline=$((SECONDS + 60))
  ENDPOINT=""
  while [ -z "$ENDPOINT" ]; do
    ENDPOINT="$(grep -oE 'grpc\+tcp://[0-9.]+:[0-9]+' "$log" | head -n1 || true)"
    [ -n "$ENDPOINT" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "Cannot start $name: it exited (log above)"; }
    [ $SECONDS -lt $deadline ] || { cat "$log" >&2; die "Cannot start $name: no endpoint after 60 s"; }
    sleep 0.2
  done
}
step "serve: two shard-server processes (shards 0,2 and 1,3)"
start_server server-1 0,2
ep1="$ENDPOINT"
start_server server-2 1,3
ep2="$ENDPOINT"
endpoints="$ep1,$ep2"
echo "server-1 at $ep1 hosts shards 0,2"
echo "server-2 at $ep2 hosts shards 1,3"

# 4. Look up through the routing client, then nearest neighbours.
step "lookup: ${tokens[*]} through the routing client"
list="$(IFS=,; echo "${tokens[*]}")"
es lookup --table "$table" --endpoints "$endpoints" --tokens "$list" >"$out/lookup.txt"
# token<TAB>values: show the first values of each row
awk -F'\t' '{ n = split($2, v, " "); printf "  %-8s [%s %s %s %s ... %d values]\n", $1, v[1], v[2], v[3], v[4], n }' "$out/lookup.txt"

step "nearest: 8 neighbours of each by cosine similarity (exact, merged over both servers)"
for t in "${tokens[@]}"; do
  es nearest --table "$table" --endpoints "$endpoints" --token "$t" -k 8 >"$out/nearest-$t.txt"
  printf '  %-8s %s\n' "$t" "$(awk -F'\t' '{ printf "%s(%.2f) ", $1, $2 }' "$out/nearest-$t.txt")"
done

# 5. Summary.
rate="$(grep -oE '[0-9,]+ tokens/s' "$out/train.log" | tail -n1 || true)"
size="$(du -sh "$table" | cut -f1)"
step "done"
cat <<EOF
  total time      $((SECONDS - t0)) s (training $train_seconds s${rate:+, $rate})
  table           $table ($size, $shards shards, dim $dim)
  logs            $out/*.log
  serve it again  $embstore serve --table $table --shards 0,1,2,3
EOF
