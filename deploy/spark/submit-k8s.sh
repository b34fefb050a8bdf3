#!/usr/bin/env bash
# Training on Kubernetes (cluster deploy mode). The image is a Spark 4.2.0 / Scala 2.13 / Java 17
# image (e.g. apache/spark:4.2.0-scala2.13-java17-ubuntu) with the job jar at /opt/embstore/jobs/
# (or pass an https:// or s3a:// URL of the jar as JOB_JAR_URI).
#   K8S_API=https://k8s.example:6443 IMAGE=registry/spark-embstore:0.1.0 NAMESPACE=embstore \
#   INPUT=s3a://bucket/corpus OUTPUT=s3a://bucket/tables/wte V=1000000000 C=128 EXECUTORS=64 \
#   deploy/spark/submit-k8s.sh --vocab-size 1000000000 --column ids
# NOT run here (no Kubernetes cluster).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${K8S_API:?set K8S_API}" "${IMAGE:?set IMAGE}" "${INPUT:?set INPUT}" "${OUTPUT:?set OUTPUT}"
jar_uri="${JOB_JAR_URI:-local:///opt/embstore/jobs/$(basename "$JOB_JAR")}"
exec "${SUBMIT[@]}" \
  --master "k8s://$K8S_API" --deploy-mode cluster \
  --name embstore-train \
  --conf spark.kubernetes.namespace="${NAMESPACE:-default}" \
  --conf spark.kubernetes.container.image="$IMAGE" \
  --conf spark.kubernetes.authenticate.driver.serviceAccountName="${SERVICE_ACCOUNT:-spark}" \
  --conf spark.executor.instances="$EXECUTORS" \
  --conf spark.dynamicAllocation.enabled=false \
  --conf spark.kubernetes.executor.request.cores=$((EXECUTOR_CORES + 1)) \
  --conf spark.kubernetes.executor.limit.cores=$((EXECUTOR_CORES + 1)) \
  "${SIZE_CONF[@]}" \
  --conf "spark.driver.memory=${DRIVER_MEMORY:-8g}" \
  --class "$MAIN_CLASS" "$jar_uri" \
  --input "$INPUT" --output "$OUTPUT" --dim "$C" "$@"
