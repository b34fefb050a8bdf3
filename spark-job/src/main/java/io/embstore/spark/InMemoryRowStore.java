package io.embstore.spark;

/**
 * A dense matrix on the heap with the same optimizers as the shard servers: plain SGD ({@code w -=
 * lr * g}) or row-wise Adagrad ({@code s += mean(g^2); w -= lr * g / (sqrt(s) + eps)}). Used by the
 * tests' reference runs and for the single-JVM math check; not for large V (one float[] of V*C).
 */
final class InMemoryRowStore implements RowStore {
  private final int dim;
  private final float[] rows;
  private final float[] state;
  private final float eps;

  private InMemoryRowStore(long rows, int dim, boolean adagrad, float eps) {
    long size = rows * dim;
    if (size > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException(
          "Cannot hold " + rows + " x " + dim + " rows on the heap (at most 2^31 values)");
    }
    this.dim = dim;
    this.rows = new float[(int) size];
    this.state = adagrad ? new float[(int) rows] : null;
    this.eps = eps;
  }

  static InMemoryRowStore sgd(long rows, int dim) {
    return new InMemoryRowStore(rows, dim, false, 0f);
  }

  static InMemoryRowStore rowwiseAdagrad(long rows, int dim, float eps) {
    return new InMemoryRowStore(rows, dim, true, eps);
  }

  /** The backing array, row-major. */
  float[] values() {
    return rows;
  }

  @Override
  public int dim() {
    return dim;
  }

  @Override
  public void pull(long[] ids, int n, float[] out) {
    for (int i = 0; i < n; i++) {
      System.arraycopy(rows, (int) ids[i] * dim, out, i * dim, dim);
    }
  }

  @Override
  public void push(long[] ids, int n, float[] grads, float lr) {
    for (int i = 0; i < n; i++) {
      int w = (int) ids[i] * dim;
      int g = i * dim;
      float step = lr;
      if (state != null) {
        double sq = 0;
        for (int j = 0; j < dim; j++) {
          sq += (double) grads[g + j] * grads[g + j];
        }
        int r = (int) ids[i];
        state[r] += (float) (sq / dim);
        step = (float) (lr / (Math.sqrt(state[r]) + eps));
      }
      for (int j = 0; j < dim; j++) {
        rows[w + j] -= step * grads[g + j];
      }
    }
  }
}
