#!/usr/bin/env bash
# A/B of the local-disk paths against another build of embstore, in one run: builds the bench of
# REF (default main) from `git archive` into AB_DIR/a (with this checkout's ServeLoadBench.java
# added, which uses only APIs both have), builds this checkout, then runs each harness on A, B, A, B:
#   ImportExportBench --rows 4000000 --reps 3 (import/export vs copies), ServeLoadBench (a shard
#   server loading a local table), LookupBench (embstore lookups, 1,000,000 x 128, B = 512 and 4096).
# Usage: bench/ab-main.sh [REF]. Env: AB_DIR (default /tmp/embstore-ab), MAVEN_REPO (a maven.repo.local),
# BENCH_JAVA_OPTS (default -Xmx2g). Output: lines prefixed with the side (A = REF, B = this checkout).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ref="${1:-main}"
work="${AB_DIR:-/tmp/embstore-ab}"
repo=(${MAVEN_REPO:+-Dmaven.repo.local=$MAVEN_REPO})
rm -rf "$work"
mkdir -p "$work/a"
git -C "$root" archive "$ref" | tar -x -C "$work/a"
cp "$root/bench/src/main/java/io/embstore/bench/format/ServeLoadBench.java" "$work/a/bench/src/main/java/io/embstore/bench/format/"
echo "# building A ($ref, $(git -C "$root" rev-parse --short "$ref")) in $work/a" >&2
(cd "$work/a" && mvn -B -q -ntp "${repo[@]}" -DskipTests -pl bench -am package >&2)
echo "# building B (this checkout, $(git -C "$root" rev-parse --short HEAD))" >&2
(cd "$root" && mvn -B -q -ntp "${repo[@]}" -DskipTests -pl bench -am package >&2)
flags=$(sed -n 's:.*<embstore.jvm.flags>\(.*\)</embstore.jvm.flags>.*:\1:p' "$root/pom.xml")
run() {
  local side="$1" dir; shift
  if [ "$side" = A ]; then dir="$work/a"; else dir="$root"; fi
  # shellcheck disable=SC2086
  java ${BENCH_JAVA_OPTS:--Xmx2g} $flags -Dembstore.shared.dir="${EMBSTORE_SHARED_DIR:-$root/../shared}" \
    -cp "$dir/bench/target/classes:$(cat "$dir/bench/target/classpath.txt")" "$@" 2>/dev/null | sed "s/^/$side /"
}
echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in 1 2; do
  for side in A B; do
    run "$side" io.embstore.bench.format.ImportExportBench --rows 4000000 --reps 3 --dir "$work/ie-$side"
    run "$side" io.embstore.bench.format.ServeLoadBench --dir "$work/sl-$side"
    run "$side" io.embstore.bench.lookup.LookupBench --systems embstore --sizes 1000000x128 --batches 512,4096 --dists uniform --reps 3
    echo "# round $round side $side done, load: $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
rm -rf "$work"
