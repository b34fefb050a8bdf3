#!/usr/bin/env bash
# Training on YARN (cluster deploy mode: the driver runs in the cluster too).
#   HADOOP_CONF_DIR=/etc/hadoop/conf SPARK_HOME=/opt/spark-4.2.0 \
#   INPUT=hdfs:///corpus/ids.parquet OUTPUT=hdfs:///tables/wte V=1000000000 C=128 EXECUTORS=64 \
#   deploy/spark/submit-yarn.sh --vocab-size 1000000000 --column ids
# NOT run here (no YARN cluster); the memory and flags are the ones tested on the local cluster.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${INPUT:?set INPUT}" "${OUTPUT:?set OUTPUT}"
# YARN counts vcores = spark.executor.cores; to keep a core for the shard host, request one more
# core than task slots and let each task take 1 (see SIZING.md section 4).
exec "${SUBMIT[@]}" \
  --master yarn --deploy-mode cluster \
  --name embstore-train \
  --num-executors "$EXECUTORS" \
  --conf spark.dynamicAllocation.enabled=false \
  --conf spark.yarn.maxAppAttempts=1 \
  "${SIZE_CONF[@]}" \
  --conf "spark.driver.memory=${DRIVER_MEMORY:-8g}" \
  --class "$MAIN_CLASS" "$JOB_JAR" \
  --input "$INPUT" --output "$OUTPUT" --dim "$C" "$@"
