#!/usr/bin/env bash
# Submits the training job (the shaded jar in jobs/) with Spark's SparkSubmit to a master of your
# choice, using only the jars of this distribution (no Spark installation needed for local[N]):
#   examples/spark-submit-local.sh INPUT OUTPUT [MASTER] [TrainJob options...]
#   examples/spark-submit-local.sh examples/corpus.txt.gz /tmp/table local[2] --dim 50 --epochs 3
# With a Spark installation, the same is: $SPARK_HOME/bin/spark-submit --master MASTER \
#   --class io.embstore.spark.TrainJob jobs/embstore-spark-job-*-job.jar --input ... --output ...
set -euo pipefail
home="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 2 ] || { echo "usage: $0 INPUT OUTPUT [MASTER] [options...]" >&2; exit 2; }
input="$1" output="$2" master="${3:-local[2]}"
shift $(( $# >= 3 ? 3 : 2 ))
jar="$(ls "$home"/jobs/embstore-spark-job-*-job.jar | head -n1)"
. "$home/bin/java-flags.sh"
# lib/ minus the embstore jars: the job's own classes come from its shaded jar, as on a cluster.
cp="$(ls "$home"/lib/*.jar | grep -v '/lib/embstore-' | tr '\n' ':')"
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
exec "${JAVA_HOME:+$JAVA_HOME/bin/}java" "${EMBSTORE_JVM_FLAGS[@]}" -cp "$cp" org.apache.spark.deploy.SparkSubmit \
  --master "$master" --conf spark.ui.enabled=false \
  --conf "spark.driver.extraJavaOptions=${EMBSTORE_JVM_FLAGS[*]}" \
  --conf "spark.executor.extraJavaOptions=${EMBSTORE_JVM_FLAGS[*]}" \
  --class io.embstore.spark.TrainJob "$jar" --input "$input" --output "$output" "$@"
