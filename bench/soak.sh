#!/usr/bin/env bash
# Bounded soak of the shard servers: bench/soak.sh [seconds] (default 600).
# 8 clients mixing lookups, updates and nearest (Zipf ids) against 2 shard server processes (ServerLauncher, what
# `embstore serve` runs) with --wal and tokens,
# one of them killed with SIGKILL half-way and restarted; prints throughput, errors,
# RSS per 5-second interval, p50/p99 per minute, lost acknowledged updates and a verdict. Exit code 0 = every check passed.
# CI runs `bench/soak.sh 60`.
set -euo pipefail
seconds="${1:-600}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A fixed, pre-touched heap so that RSS reflects leaks (native, off-heap) rather than the heap
# being paged in as the GC first uses each region.
export BENCH_JAVA_OPTS="${BENCH_JAVA_OPTS:--Xms1g -Xmx1g -XX:+AlwaysPreTouch}"
# Bounded: the run itself plus a generous margin for the build and shutdown.
exec timeout --kill-after=30 "$((seconds + 900))" "$root/bench/run" io.embstore.bench.soak.SoakBench --seconds "$seconds"
