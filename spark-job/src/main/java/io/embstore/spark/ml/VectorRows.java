package io.embstore.spark.ml;

import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.sql.types.UserDefinedType;

/** {@code ml.linalg.Vector} values in Spark's internal row form, through the vector type's own serializer. */
final class VectorRows {
  @SuppressWarnings("unchecked")
  private static final UserDefinedType<Vector> TYPE = (UserDefinedType<Vector>) SQLDataTypes.VectorType();

  private VectorRows() {}

  /** A dense vector of {@code values} (copied). */
  static Object dense(double[] values) {
    return TYPE.serialize(Vectors.dense(values));
  }

  /** The sparse vector of {@code size} without entries: Word2VecModel's value for an empty sentence. */
  static Object emptySparse(int size) {
    return TYPE.serialize(Vectors.sparse(size, new int[0], new double[0]));
  }
}
