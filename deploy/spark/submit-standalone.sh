#!/usr/bin/env bash
# Training on a Spark standalone cluster.
#   MASTER=spark://host:7077 INPUT=hdfs:///corpus/ids.parquet OUTPUT=hdfs:///tables/wte \
#   V=1000000000 C=128 EXECUTORS=64 deploy/spark/submit-standalone.sh [more TrainJob options]
# For the local cluster of deploy/local-cluster (tiny sizes):
#   . deploy/target/local-cluster/cluster.env; MASTER=$MASTER_URL V=30000 C=50 EXECUTORS=2 \
#   EXECUTOR_CORES=1 EXECUTOR_HEAP=512m INPUT=corpus.txt OUTPUT=/tmp/t deploy/spark/submit-standalone.sh --min-count 2
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${MASTER:?set MASTER=spark://host:port}" "${INPUT:?set INPUT}" "${OUTPUT:?set OUTPUT}"
exec "${SUBMIT[@]}" \
  --master "$MASTER" --deploy-mode client \
  --name embstore-train \
  --total-executor-cores $((EXECUTORS * EXECUTOR_CORES)) \
  "${SIZE_CONF[@]}" \
  --class "$MAIN_CLASS" "$JOB_JAR" \
  --input "$INPUT" --output "$OUTPUT" --dim "$C" "$@"
