#!/usr/bin/env bash
# Coverage-guided fuzzing of every Jazzer target in turn: bench/fuzz.sh [SECONDS_PER_TARGET] [Class#target ...]
#
# Targets (regression tests in the normal test run, on the inputs checked in under
# src/test/resources/.../<Class>Inputs/<target>/): arrow-format's FormatFuzzTest (manifest, shardFile,
# importNpy, importWord2vecText, importWord2vecBinary, importGlove, importSafetensors) and shard-client's
# ShardFuzzTest (exchangeCommand, snapshotBody, updateMetadata, requestBatch, fastLookup, fastUpdate, action, walSegment). Each target runs
# in its own surefire JVM with JAZZER_FUZZ=1 for SECONDS (default 60), instrumenting io.embstore.**;
# the generated corpus stays in <module>/.cifuzz-corpus/ (ignored by git; later runs start from it),
# the logs in FUZZ_WORK (default a temporary directory), and a finding is written by Jazzer into the
# target's inputs directory, where it stays as a regression test once committed. Prints, per target, the
# executions, the edges covered (libFuzzer's cov) and the findings; exits 1 when any target found one.
# Extra Maven arguments: MVN_ARGS (e.g. "-o -Dmaven.repo.local=...").
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-60}"
shift || true
all=(
  arrow-format:io.embstore.format.fuzz.FormatFuzzTest#manifest
  arrow-format:io.embstore.format.fuzz.FormatFuzzTest#shardFile
  arrow-format:io.embstore.format.fuzz.FormatFuzzTest#importNpy
  arrow-format:io.embstore.format.fuzz.FormatFuzzTest#importWord2vecText
  arrow-format:io.embstore.format.fuzz.FormatFuzzTest#importWord2vecBinary
  arrow-format:io.embstore.format.fuzz.FormatFuzzTest#importGlove
  arrow-format:io.embstore.format.fuzz.FormatFuzzTest#importSafetensors
  shard-client:io.embstore.shard.ShardFuzzTest#exchangeCommand
  shard-client:io.embstore.shard.ShardFuzzTest#snapshotBody
  shard-client:io.embstore.shard.ShardFuzzTest#updateMetadata
  shard-client:io.embstore.shard.ShardFuzzTest#requestBatch
  shard-client:io.embstore.shard.ShardFuzzTest#fastLookup
  shard-client:io.embstore.shard.ShardFuzzTest#fastUpdate
  shard-client:io.embstore.shard.ShardFuzzTest#action
  shard-client:io.embstore.shard.ShardFuzzTest#walSegment
)
targets=()
if [ $# -gt 0 ]; then
  for want in "$@"; do
    for t in "${all[@]}"; do
      case "$t" in *"$want"*) targets+=("$t") ;; esac
    done
  done
else
  targets=("${all[@]}")
fi
work="${FUZZ_WORK:-$(mktemp -d /tmp/embstore-fuzz.XXXXXX)}"
mkdir -p "$work"
# shellcheck disable=SC2086
mvn -B -q -ntp ${MVN_ARGS:-} -DskipTests install -pl shard-client -am >"$work/build.log" 2>&1 || { echo "build failed: $work/build.log"; exit 2; }
echo "fuzzing ${#targets[@]} targets for ${seconds} s each; load $(cut -d' ' -f1-3 /proc/loadavg); work dir $work"
printf '%-52s %12s %10s %8s  %s\n' target executions exec/s cov findings
found=0
for t in "${targets[@]}"; do
  module="${t%%:*}"
  test="${t#*:}"
  log="$work/${test##*.}.log"
  # shellcheck disable=SC2086
  JAZZER_FUZZ=1 mvn -B -ntp ${MVN_ARGS:-} -pl "$module" test -Dtest="$test" -Dsurefire.failIfNoSpecifiedTests=false \
    -Djazzer.instrument='io.embstore.**' \
    -Djazzer.internal.arg.0=fuzz -Djazzer.internal.arg.1=-max_total_time="$seconds" >"$log" 2>&1
  rc=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
  runs=$(grep -oE '^Done [0-9]+ runs' "$log" | tail -1 | grep -oE '[0-9]+')
  execs=$(echo "$done_line" | grep -oE 'exec/s: [0-9]+' | grep -oE '[0-9]+')
  cov=$(echo "$done_line" | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+')
  findings="none"
  if [ $rc -ne 0 ]; then
    found=1
    findings="FOUND (exit $rc): $(grep -m1 -E 'FuzzTestFindingException|^Caused by|BUILD FAILURE' "$log" | cut -c1-200); see $log"
  fi
  printf '%-52s %12s %10s %8s  %s\n' "${test##*.}" "${runs:-?}" "${execs:-?}" "${cov:-?}" "$findings"
done
echo "findings are written under src/test/resources/**/<Class>Inputs/<target>/ (git status shows them): commit each as a regression test"
exit $found
