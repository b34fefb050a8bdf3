package io.embstore.spark;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The two inner loops of {@link SkipGram} with the Vector API (SIMD): the dot product of an input
 * and an output row, and the fused update {@code e += g * out; dOut += ag * in}. They are most of
 * the training time (word2vec's per-pair work is three passes over C floats per target), and C2
 * does not vectorise a float sum on its own (it must keep the order of additions).
 *
 * <p>Only loaded when the module {@code jdk.incubator.vector} is present ({@link SkipGram#SIMD}):
 * every Spark 4 JVM has it ({@code --add-modules=jdk.incubator.vector} is in Spark's launcher
 * flags and in {@code embstore.jvm.flags}); elsewhere SkipGram's scalar loops run.
 */
final class VectorKernels {
  private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
  private static final int L = S.length();

  private VectorKernels() {}

  static float dot(float[] x, int xo, float[] y, int yo, int n) {
    int j = 0;
    float s = 0;
    int bound = n - n % L;
    if (bound > 0) {
      FloatVector acc = FloatVector.zero(S);
      for (; j < bound; j += L) {
        acc = FloatVector.fromArray(S, x, xo + j).fma(FloatVector.fromArray(S, y, yo + j), acc);
      }
      s = acc.reduceLanes(VectorOperators.ADD);
    }
    for (; j < n; j++) {
      s += x[xo + j] * y[yo + j];
    }
    return s;
  }

  /** y[yo..] += a * x[xo..]. */
  static void axpy(float[] y, int yo, float a, float[] x, int xo, int n) {
    int j = 0;
    int bound = n - n % L;
    FloatVector av = FloatVector.broadcast(S, a);
    for (; j < bound; j += L) {
      FloatVector.fromArray(S, x, xo + j).fma(av, FloatVector.fromArray(S, y, yo + j)).intoArray(y, yo + j);
    }
    for (; j < n; j++) {
      y[yo + j] += a * x[xo + j];
    }
  }

  /**
   * {@code e[0..n) += g * out[lo..]} then {@code dOut[lo..] += ag * in[li..]}, element by element,
   * so that {@code dOut == out} (word2vec's in-place update) reads each output value before writing
   * it, as word2vec's two loops do.
   */
  static void update(float[] e, float g, float[] out, int lo, float[] dOut, float ag, float[] in, int li, int n) {
    int j = 0;
    int bound = n - n % L;
    FloatVector gv = FloatVector.broadcast(S, g);
    FloatVector agv = FloatVector.broadcast(S, ag);
    for (; j < bound; j += L) {
      FloatVector o = FloatVector.fromArray(S, out, lo + j);
      o.fma(gv, FloatVector.fromArray(S, e, j)).intoArray(e, j);
      FloatVector.fromArray(S, in, li + j).fma(agv, FloatVector.fromArray(S, dOut, lo + j)).intoArray(dOut, lo + j);
    }
    for (; j < n; j++) {
      e[j] += g * out[lo + j];
      dOut[lo + j] += ag * in[li + j];
    }
  }
}
