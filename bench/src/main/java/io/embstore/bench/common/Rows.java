package io.embstore.bench.common;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The benchmark matrix: row {@code id} is a deterministic function of (seed, id), so the table
 * files, the in-process gather, the raw socket server and Redis all hold the same bytes, and a
 * lookup can be checked without keeping a copy.
 */
public final class Rows {
  private Rows() {}

  /** Value {@code j} of row {@code id}: uniform in [-0.5, 0.5), from a cheap 64-bit mix. */
  public static float value(long seed, long id, int j) {
    long z = seed + id * 0x9E3779B97F4A7C15L + (j + 1) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    z ^= z >>> 31;
    return ((z >>> 40) * 0x1.0p-24f) - 0.5f;
  }

  /** Writes row {@code id} (C little-endian float32) at the buffer's position, advancing it. */
  public static void put(long seed, long id, int dim, ByteBuffer dst) {
    ByteBuffer le = dst.order() == ByteOrder.LITTLE_ENDIAN ? dst : dst.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    int p = dst.position();
    for (int j = 0; j < dim; j++) {
      le.putFloat(p + 4 * j, value(seed, id, j));
    }
    dst.position(p + 4 * dim);
  }

  /** Row {@code id} as little-endian bytes. */
  public static byte[] bytes(long seed, long id, int dim) {
    ByteBuffer b = ByteBuffer.allocate(4 * dim).order(ByteOrder.LITTLE_ENDIAN);
    put(seed, id, dim, b);
    return b.array();
  }

  /** Index of the first value of {@code out} (rows of {@code ids}) that differs from the matrix, or -1. */
  public static int firstMismatch(long seed, long[] ids, int dim, float[] out) {
    for (int i = 0; i < ids.length; i++) {
      for (int j = 0; j < dim; j++) {
        if (Float.floatToRawIntBits(out[i * dim + j]) != Float.floatToRawIntBits(value(seed, ids[i], j))) {
          return i * dim + j;
        }
      }
    }
    return -1;
  }
}
