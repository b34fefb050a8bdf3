# Sourced by the submit-*.sh examples: sizes executor memory from the table shape and finds
# spark-submit. Inputs (environment, all optional):
#   V (rows, default 1000000000)  C (dim, default 128)  EXECUTORS (default 64)
#   OPTIMIZER (sgd | rowwise-adagrad, default rowwise-adagrad)  SHARDS_PER_EXECUTOR (default 4)
#   EXECUTOR_CORES (task slots, default 4)  EXECUTOR_HEAP (default 4g)
#   EMBSTORE_HOME (the unpacked distribution, or deploy/ of a source checkout; default: the folder
#                 above this one)   JOB_JAR (default: $EMBSTORE_HOME/jobs/ or spark-job/target/)
#   SPARK_HOME (a Spark 4.2 / Scala 2.13 installation)
# Outputs: SUBMIT (command array), JOB_JAR, MAIN_CLASS, SIZE_CONF (array of --conf pairs), SHARDS.
# See SIZING.md for the reasoning behind each figure.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EMBSTORE_HOME="${EMBSTORE_HOME:-$(cd "$here/.." && pwd)}"
V="${V:-1000000000}"
C="${C:-128}"
EXECUTORS="${EXECUTORS:-64}"
OPTIMIZER="${OPTIMIZER:-rowwise-adagrad}"
SHARDS_PER_EXECUTOR="${SHARDS_PER_EXECUTOR:-4}"
EXECUTOR_CORES="${EXECUTOR_CORES:-4}"
EXECUTOR_HEAP="${EXECUTOR_HEAP:-4g}"

# Off-heap shard bytes per executor: two matrices (input + output) of V x C float32, plus one
# float per row per matrix for row-wise Adagrad; shards spread evenly over the executors.
width=$C
[ "$OPTIMIZER" = rowwise-adagrad ] && width=$((C + 1))
shard_mb=$(( (2 * V * width * 4 / EXECUTORS + 1048575) / 1048576 ))
# Arrow/Netty chunking and fragmentation: +10%; Spark's own overhead: +2 GB (+1 GB for direct memory).
overhead_mb=$(( shard_mb * 11 / 10 + 2048 ))
direct_mb=$(( shard_mb * 11 / 10 + 1024 ))
SHARDS=$(( EXECUTORS * SHARDS_PER_EXECUTOR ))

# The flags Spark 4 needs on Java 17 (also passed by Spark's own launcher; given explicitly so that
# drivers and executors started by other means get them too).
. "$EMBSTORE_HOME/bin/java-flags.sh"
java17="${EMBSTORE_JVM_FLAGS[*]}"
SIZE_CONF=(
  --conf "spark.driver.extraJavaOptions=$java17"
  --conf "spark.executor.extraJavaOptions=$java17 -XX:MaxDirectMemorySize=${direct_mb}m"
  --conf "spark.executor.memory=$EXECUTOR_HEAP"
  --conf "spark.executor.memoryOverhead=${overhead_mb}m"
  --conf "spark.executor.cores=$EXECUTOR_CORES"
  --conf "spark.embstore.shards=$SHARDS"
  --conf "spark.embstore.min-executors=$EXECUTORS"
  --conf "spark.embstore.optimizer=$OPTIMIZER"
)

JOB_JAR="${JOB_JAR:-$(ls "$EMBSTORE_HOME"/jobs/embstore-spark-job-*-job.jar \
  "$EMBSTORE_HOME"/../spark-job/target/embstore-spark-job-*-job.jar 2>/dev/null | head -n1 || true)}"
MAIN_CLASS=io.embstore.spark.TrainJob
if [ -z "$JOB_JAR" ]; then
  echo "Cannot find the job jar: $EMBSTORE_HOME/jobs/embstore-spark-job-*-job.jar (unpack the distribution, set EMBSTORE_HOME)" >&2
  exit 1
fi
# In a source checkout, default to the Spark jars the build collects for the local cluster.
if [ -z "${SPARK_HOME:-}" ] && [ -d "$EMBSTORE_HOME/target/spark-home/jars" ]; then
  SPARK_HOME="$EMBSTORE_HOME/target/spark-home"
fi
if [ -n "${SPARK_HOME:-}" ] && [ -x "$SPARK_HOME/bin/spark-submit" ]; then
  SUBMIT=("$SPARK_HOME/bin/spark-submit")
elif [ -n "${SPARK_HOME:-}" ] && [ -d "$SPARK_HOME/jars" ]; then
  # No Spark distribution, only its jars (e.g. deploy/target/spark-home): SparkSubmit is a class.
  export SPARK_SCALA_VERSION=2.13
  SUBMIT=("${JAVA_HOME:+$JAVA_HOME/bin/}java" "${EMBSTORE_JVM_FLAGS[@]}" -cp "$SPARK_HOME/jars/*" org.apache.spark.deploy.SparkSubmit)
else
  echo "Cannot find spark-submit: SPARK_HOME=${SPARK_HOME:-} (a Spark 4.2.0 / Scala 2.13 installation)" >&2
  exit 1
fi
echo "sizing: V=$V C=$C $OPTIMIZER, $EXECUTORS executors x $EXECUTOR_CORES slots, $SHARDS shards;" \
  "per executor ${shard_mb} MB of shards, heap $EXECUTOR_HEAP, overhead ${overhead_mb} MB" >&2
