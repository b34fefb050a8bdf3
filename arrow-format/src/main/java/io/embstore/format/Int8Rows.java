package io.embstore.format;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import org.apache.arrow.memory.util.MemoryUtil;

/**
 * Rows of the {@link ValueType#INT8} type: FBGEMM's fused 8-bit row-wise layout. A row of C values
 * is C + 8 bytes: C unsigned 8-bit codes, then the row's {@code scale} and {@code bias} as
 * little-endian float32. Value c decodes to {@code code[c] * scale + bias}, computed in float32 (a
 * product rounded to float32, then a sum rounded to float32: what NumPy does with float32 arrays).
 *
 * <p>Quantization of a row (FBGEMM's {@code FloatToFused8BitRowwiseQuantized}): {@code bias} = the
 * row's minimum, {@code scale} = (maximum - minimum) / 255 (rounded to float32), and each code the
 * nearest integer (ties to even) to (x - minimum) x 255 / (maximum - minimum), computed in double,
 * within [0, 255]. A decoded value is within scale / 2 of the original plus float32 rounding of the
 * decode. A constant row has scale 0 and every code 0, so it decodes exactly to its value. Rows with
 * a NaN or an infinity have no scale and are refused, and so are rows whose span (maximum -
 * minimum) exceeds float32's largest value (their top code would decode to infinity).
 *
 * <p>Unlike FBGEMM (which adds 1e-8 to the span before dividing), a span of zero is handled as its
 * own case, so near-constant rows keep their full 256 levels.
 */
public final class Int8Rows {
  /** Bytes after the codes of a row: the float32 scale and the float32 bias. */
  public static final int EXTRA_BYTES = 8;

  /** {@link #encodeRow}'s answer for a row that was written. */
  public static final int OK = -1;

  /** {@link #encodeRow}'s answer for a row whose span exceeds float32's range. */
  public static final int SPAN_TOO_WIDE = -2;

  private static final VarHandle FLOAT_LE = MethodHandles.byteArrayViewVarHandle(float[].class, ByteOrder.LITTLE_ENDIAN);
  private static final VarHandle INT_LE = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

  private Int8Rows() {}

  /** Bytes of one row of {@code dim} values: C + 8. */
  public static long rowBytes(int dim) {
    return dim + (long) EXTRA_BYTES;
  }

  /**
   * Quantizes the C float32 values at {@code src} into one row at {@code dst} (raw addresses).
   *
   * @return {@link #OK}; or, writing nothing, the column of the first NaN or infinite value, or
   *     {@link #SPAN_TOO_WIDE}
   */
  public static int encodeRow(long src, long dst, int dim) {
    float min = Float.POSITIVE_INFINITY;
    float max = Float.NEGATIVE_INFINITY;
    for (int c = 0; c < dim; c++) {
      float x = Float.intBitsToFloat(MemoryUtil.getInt(src + 4L * c));
      if (!Float.isFinite(x)) {
        return c;
      }
      min = Math.min(min, x);
      max = Math.max(max, x);
    }
    double span = (double) max - min;
    if (span > Float.MAX_VALUE) {
      return SPAN_TOO_WIDE;
    }
    double inverse = span == 0 ? 0 : 255.0 / span;
    for (int c = 0; c < dim; c++) {
      float x = Float.intBitsToFloat(MemoryUtil.getInt(src + 4L * c));
      MemoryUtil.putByte(dst + c, (byte) code(x, min, inverse));
    }
    MemoryUtil.putInt(dst + dim, Float.floatToRawIntBits((float) (span / 255.0)));
    MemoryUtil.putInt(dst + dim + 4, Float.floatToRawIntBits(min));
    return OK;
  }

  /** {@link #encodeRow(long, long, int)} of a heap row, {@code row[0..dim)}. */
  public static int encodeRow(float[] row, long dst, int dim) {
    float min = Float.POSITIVE_INFINITY;
    float max = Float.NEGATIVE_INFINITY;
    for (int c = 0; c < dim; c++) {
      if (!Float.isFinite(row[c])) {
        return c;
      }
      min = Math.min(min, row[c]);
      max = Math.max(max, row[c]);
    }
    double span = (double) max - min;
    if (span > Float.MAX_VALUE) {
      return SPAN_TOO_WIDE;
    }
    double inverse = span == 0 ? 0 : 255.0 / span;
    for (int c = 0; c < dim; c++) {
      MemoryUtil.putByte(dst + c, (byte) code(row[c], min, inverse));
    }
    MemoryUtil.putInt(dst + dim, Float.floatToRawIntBits((float) (span / 255.0)));
    MemoryUtil.putInt(dst + dim + 4, Float.floatToRawIntBits(min));
    return OK;
  }

  private static int code(float x, float min, double inverse) {
    double q = Math.rint(((double) x - min) * inverse);
    return (int) Math.max(0, Math.min(255, q));
  }

  /**
   * Quantizes {@code rows} rows of C float32 at {@code src} into rows of C + 8 bytes at {@code dst}.
   *
   * @throws IllegalArgumentException naming the row (counted from {@code src}), the column and the
   *     value of the first row that cannot be quantized; rows before it are written
   */
  public static void encode(long src, long dst, long rows, int dim) {
    long stored = rowBytes(dim);
    for (long r = 0; r < rows; r++) {
      int failed = encodeRow(src + r * dim * 4L, dst + r * stored, dim);
      if (failed != OK) {
        throw new IllegalArgumentException("Cannot quantize row " + r + " to int8: " + why(src + r * dim * 4L, dim, failed));
      }
    }
  }

  /**
   * Why {@link #encodeRow} refused the row at {@code src}, given its answer {@code failed}: {@code
   * column 3 is NaN (int8 rows need finite values)}.
   */
  public static String why(long src, int dim, int failed) {
    if (failed == SPAN_TOO_WIDE) {
      float min = Float.POSITIVE_INFINITY;
      float max = Float.NEGATIVE_INFINITY;
      for (int c = 0; c < dim; c++) {
        float x = Float.intBitsToFloat(MemoryUtil.getInt(src + 4L * c));
        min = Math.min(min, x);
        max = Math.max(max, x);
      }
      return "its values span [" + min + ", " + max + "], wider than float32's largest value " + Float.MAX_VALUE + " (the top code would decode to infinity)";
    }
    return "column " + failed + " is " + Float.intBitsToFloat(MemoryUtil.getInt(src + 4L * failed)) + " (int8 rows need finite values)";
  }

  /** {@link #why(long, int, int)} of a heap row. */
  public static String why(float[] row, int dim, int failed) {
    if (failed == SPAN_TOO_WIDE) {
      float min = Float.POSITIVE_INFINITY;
      float max = Float.NEGATIVE_INFINITY;
      for (int c = 0; c < dim; c++) {
        min = Math.min(min, row[c]);
        max = Math.max(max, row[c]);
      }
      return "its values span [" + min + ", " + max + "], wider than float32's largest value " + Float.MAX_VALUE + " (the top code would decode to infinity)";
    }
    return "column " + failed + " is " + row[failed] + " (int8 rows need finite values)";
  }

  /** Decodes {@code rows} rows of C + 8 bytes at {@code src} into C float32 each at {@code dst}. */
  public static void decode(long src, long dst, long rows, int dim) {
    long stored = rowBytes(dim);
    for (long r = 0; r < rows; r++) {
      decodeRow(src + r * stored, dst + r * dim * 4L, dim);
    }
  }

  /** Decodes the row at {@code src} into C float32 at {@code dst}. */
  public static void decodeRow(long src, long dst, int dim) {
    float scale = scale(src, dim);
    float bias = bias(src, dim);
    for (int c = 0; c < dim; c++) {
      MemoryUtil.putInt(dst + 4L * c, Float.floatToRawIntBits((MemoryUtil.getByte(src + c) & 0xff) * scale + bias));
    }
  }

  /** Decodes the row at {@code src} into {@code out[0..dim)}. */
  public static void decodeRow(long src, float[] out, int dim) {
    decodeRow(src, out, 0, dim);
  }

  /** Decodes the row at {@code src} into {@code out[off .. off + dim)}. */
  public static void decodeRow(long src, float[] out, int off, int dim) {
    float scale = scale(src, dim);
    float bias = bias(src, dim);
    for (int c = 0; c < dim; c++) {
      out[off + c] = (MemoryUtil.getByte(src + c) & 0xff) * scale + bias;
    }
  }

  /**
   * Decodes {@code rows} rows of {@code from} (from byte {@code fromOffset}) into little-endian
   * float32 in {@code to} (from byte {@code toOffset}): the client's side of int8 rows on the wire.
   */
  public static void decode(byte[] from, int fromOffset, byte[] to, int toOffset, int rows, int dim) {
    int stored = dim + EXTRA_BYTES;
    for (int r = 0; r < rows; r++) {
      int at = fromOffset + r * stored;
      float scale = (float) FLOAT_LE.get(from, at + dim);
      float bias = (float) FLOAT_LE.get(from, at + dim + 4);
      int out = toOffset + r * dim * 4;
      for (int c = 0; c < dim; c++) {
        INT_LE.set(to, out + 4 * c, Float.floatToRawIntBits((from[at + c] & 0xff) * scale + bias));
      }
    }
  }

  /** The scale of the row at {@code row}. */
  public static float scale(long row, int dim) {
    return Float.intBitsToFloat(MemoryUtil.getInt(row + dim));
  }

  /** The bias of the row at {@code row}. */
  public static float bias(long row, int dim) {
    return Float.intBitsToFloat(MemoryUtil.getInt(row + dim + 4));
  }
}
