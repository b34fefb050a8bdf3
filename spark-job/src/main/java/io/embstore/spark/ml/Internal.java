package io.embstore.spark.ml;

import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.types.StructType;

/**
 * The one place that uses Spark's internal row API: a DataFrame's rows as an RDD of internal rows,
 * mapped partition by partition, and the result as a DataFrame again, without converting every row
 * to and from a {@link Row} object (what {@code Dataset.mapPartitions} with a row encoder would do).
 * Planning the input happens when the lookup is defined (as {@code Dataset.rdd} does); the rows
 * are read when an action runs.
 */
final class Internal {
  private Internal() {}

  static Dataset<Row> mapPartitions(Dataset<?> dataset, FlatMapFunction<java.util.Iterator<InternalRow>, InternalRow> f,
      StructType schema) {
    if (dataset.isStreaming()) {
      throw new IllegalArgumentException("Cannot look up rows of a streaming DataFrame (embstore's ML stages take batch DataFrames)");
    }
    org.apache.spark.sql.classic.Dataset<?> classic = (org.apache.spark.sql.classic.Dataset<?>) dataset;
    RDD<InternalRow> rows = classic.queryExecution().toRdd().toJavaRDD().mapPartitions(f, true).rdd();
    org.apache.spark.sql.classic.SparkSession session = (org.apache.spark.sql.classic.SparkSession) dataset.sparkSession();
    return session.internalCreateDataFrame(rows, schema, false);
  }
}
