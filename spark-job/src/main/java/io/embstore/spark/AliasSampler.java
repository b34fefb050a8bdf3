package io.embstore.spark;

/**
 * Draws cells with probability proportional to their weights in O(1) per draw with Walker's alias
 * method: one uniform cell, one biased coin. Memory is 8 bytes per cell (a float and an int). The
 * job's negative sampler ({@link Unigrams}) has one cell per run of equal counts, not one per id.
 */
final class AliasSampler {
  private final float[] prob;
  private final int[] alias;

  /** Cells are ids, weighted by their counts raised to {@code power} (0.75 for word2vec's negatives). */
  AliasSampler(long[] counts, double power) {
    this(powers(counts, power));
  }

  private static double[] powers(long[] counts, double power) {
    double[] w = new double[counts.length];
    for (int i = 0; i < w.length; i++) {
      w[i] = Math.pow(Math.max(counts[i], 0), power);
    }
    return w;
  }

  AliasSampler(double[] weights) {
    int n = weights.length;
    if (n < 1) {
      throw new IllegalArgumentException("Cannot build a sampler: no ids");
    }
    prob = new float[n];
    alias = new int[n];
    double[] p = weights.clone();
    double sum = 0;
    for (int i = 0; i < n; i++) {
      sum += p[i];
    }
    if (!(sum > 0)) {
      throw new IllegalArgumentException("Cannot build a sampler: every count is 0");
    }
    int[] small = new int[n];
    int[] large = new int[n];
    int ns = 0;
    int nl = 0;
    for (int i = 0; i < n; i++) {
      p[i] = p[i] * n / sum;
      if (p[i] < 1.0) {
        small[ns++] = i;
      } else {
        large[nl++] = i;
      }
    }
    while (ns > 0 && nl > 0) {
      int s = small[--ns];
      int l = large[--nl];
      prob[s] = (float) p[s];
      alias[s] = l;
      p[l] = p[l] + p[s] - 1.0;
      if (p[l] < 1.0) {
        small[ns++] = l;
      } else {
        large[nl++] = l;
      }
    }
    while (nl > 0) {
      int l = large[--nl];
      prob[l] = 1f;
      alias[l] = l;
    }
    while (ns > 0) {
      int s = small[--ns];
      prob[s] = 1f;
      alias[s] = s;
    }
  }

  int size() {
    return prob.length;
  }

  /**
   * One draw from 64 random bits: the high 32 pick the cell, the low 24 flip the coin. The coin's
   * outcome is random, so it selects without a branch (the sign of {@code coin - prob}, exact for
   * floats: it is negative exactly when {@code coin < prob}).
   */
  int sample(long bits) {
    int cell = (int) (((bits >>> 32) * prob.length) >>> 32);
    float coin = (bits & 0xFFFFFF) * 0x1.0p-24f;
    int heads = Float.floatToRawIntBits(coin - prob[cell]) >> 31; // -1 when coin < prob, else 0
    return (cell & heads) | (alias[cell] & ~heads);
  }
}
