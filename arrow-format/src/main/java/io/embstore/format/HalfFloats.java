package io.embstore.format;

import org.apache.arrow.memory.util.MemoryUtil;

/**
 * Conversions between float32 and the 16-bit value types of a table ({@link ValueType}): IEEE 754
 * binary16 ({@code float16}) and bfloat16 (the upper half of a float32).
 *
 * <ul>
 *   <li>16 bits to float32 is exact: every one of the 65,536 bit patterns of each type has one
 *       float32 of the same value (subnormals, infinities, signed zeros; NaNs keep sign and payload).
 *   <li>float32 to float16 rounds to nearest, ties to even, exactly as NumPy's {@code
 *       astype(np.float16)}: overflow to infinity (from 65,520 up), underflow to signed zero (up to
 *       2^-25), NaNs keep the sign and the upper 10 payload bits (a payload that would vanish becomes
 *       1, so a NaN stays a NaN).
 *   <li>float32 to bfloat16 rounds the upper 16 bits to nearest, ties to even; NaNs keep the sign and
 *       the upper 7 payload bits (a payload that would vanish gets the quiet bit, so a NaN stays a
 *       NaN). Widening and narrowing again gives back the same bits, for both types.
 *   <li>The stochastic forms ({@link #toFloat16Stochastic}, {@link #toBfloat16Stochastic}) round up
 *       with probability (distance to the value below) / (spacing), from caller-supplied random
 *       bits: the expected result equals the value (unbiased), which is what lets many small
 *       optimizer updates accumulate in a 16-bit row where round-to-nearest would drop each one.
 * </ul>
 *
 * The bulk methods convert whole buffers between raw addresses (Arrow buffers, direct byte
 * buffers), little-endian values, with no allocation.
 */
public final class HalfFloats {
  private HalfFloats() {}

  /** The float32 bits of every binary16 value, by its bits: a lookup instead of branches on the hot paths (256 KiB). */
  private static final int[] FLOAT16_BITS = new int[1 << 16];

  static {
    for (int h = 0; h < FLOAT16_BITS.length; h++) {
      FLOAT16_BITS[h] = Float.floatToRawIntBits(computeFloat16ToFloat((short) h));
    }
  }

  /** The float32 of the binary16 bits {@code h} (the low 16 bits): the same value. */
  public static float float16ToFloat(short h) {
    return Float.intBitsToFloat(FLOAT16_BITS[h & 0xffff]);
  }

  /** {@link #float16ToFloat} computed from the fields (fills the lookup table). */
  static float computeFloat16ToFloat(short h) {
    int bits = h & 0xffff;
    int sign = (bits & 0x8000) << 16;
    int exponent = (bits >>> 10) & 0x1f;
    int mantissa = bits & 0x3ff;
    if (exponent == 0x1f) {
      return Float.intBitsToFloat(sign | 0x7f800000 | (mantissa << 13));
    }
    if (exponent == 0) {
      // Zero or subnormal: mantissa x 2^-24, exact in float32 (at most 10 significant bits).
      return Float.intBitsToFloat(sign | Float.floatToRawIntBits(mantissa * 0x1p-24f));
    }
    return Float.intBitsToFloat(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
  }

  /** The float32 of the bfloat16 bits {@code b}: the same value. */
  public static float bfloat16ToFloat(short b) {
    return Float.intBitsToFloat((b & 0xffff) << 16);
  }

  /** {@code f} as binary16, rounded to nearest even (NumPy's {@code astype(np.float16)}). */
  public static short toFloat16(float f) {
    int x = Float.floatToRawIntBits(f);
    int sign = (x >>> 16) & 0x8000;
    int abs = x & 0x7fffffff;
    int beyond = beyondRange16(sign, abs);
    if (beyond >= 0) {
      return (short) beyond;
    }
    if (abs < 0x38800000) {
      // Below 2^-14: a binary16 subnormal (units of 2^-24) or zero.
      int e = abs >>> 23;
      if (e < 102) {
        return (short) sign; // below 2^-25: zero (2^-25 itself is a tie, to the even 0)
      }
      int m = (abs & 0x7fffff) | 0x800000;
      int shift = 126 - e; // 14..24
      int h = m >>> shift;
      int rem = m & ((1 << shift) - 1);
      int half = 1 << (shift - 1);
      if (rem > half || (rem == half && (h & 1) != 0)) {
        h++;
      }
      return (short) (sign | h);
    }
    int h = (abs - 0x38000000) >>> 13; // exponent re-biased 127 -> 15, mantissa cut to 10 bits
    int rem = abs & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1) != 0)) {
      h++; // a carry moves into the exponent, up to 0x7c00 (infinity) from 65,520 on
    }
    return (short) (sign | h);
  }

  /** {@code f} as bfloat16, its upper 16 bits rounded to nearest even. */
  public static short toBfloat16(float f) {
    int x = Float.floatToRawIntBits(f);
    if ((x & 0x7fffffff) > 0x7f800000) {
      return nonFiniteB16(x);
    }
    int lsb = (x >>> 16) & 1;
    return (short) ((x + 0x7fff + lsb) >>> 16);
  }

  /**
   * {@code f} as binary16, rounded stochastically with the 32 random bits {@code random}: up (away
   * from zero) with probability (|f| - below) / (above - below), exact to 2^-32 of the spacing.
   * Infinities and NaNs convert as in {@link #toFloat16}.
   */
  public static short toFloat16Stochastic(float f, int random) {
    int x = Float.floatToRawIntBits(f);
    int sign = (x >>> 16) & 0x8000;
    int abs = x & 0x7fffffff;
    int beyond = beyondRange16(sign, abs);
    if (beyond >= 0) {
      return (short) beyond;
    }
    long u = random & 0xffffffffL;
    if (abs < 0x38800000) {
      int shift = 126 - (abs >>> 23); // the value is m >> shift units of 2^-24
      if (shift >= 56) {
        return (short) sign; // under 2^-32 of the spacing: below the resolution of the random bits
      }
      int m = (abs & 0x7fffff) | 0x800000;
      int h = shift < 24 ? m >>> shift : 0;
      long threshold =
          shift <= 32 ? (m & ((1L << shift) - 1)) << (32 - shift) : (long) m >>> (shift - 32);
      return (short) (sign | (u < threshold ? h + 1 : h));
    }
    int h = (abs - 0x38000000) >>> 13;
    int rem = abs & 0x1fff;
    if ((u >>> 19) < rem) {
      h++;
    }
    return (short) (sign | h);
  }

  /**
   * {@code f} as bfloat16, rounded stochastically with the random bits {@code random} (the low 16
   * are used): up (away from zero) with probability (lower 16 bits of f) / 65,536, exactly. NaNs
   * convert as in {@link #toBfloat16}.
   */
  public static short toBfloat16Stochastic(float f, int random) {
    int x = Float.floatToRawIntBits(f);
    if ((x & 0x7fffffff) >= 0x7f800000) {
      return (x & 0x7fffffff) == 0x7f800000 ? (short) (x >>> 16) : nonFiniteB16(x);
    }
    return (short) ((x + (random & 0xffff)) >>> 16);
  }

  /**
   * The binary16 bits (as a non-negative int) of the float32 with sign bit {@code sign} (as binary16's)
   * and magnitude bits {@code abs} when every rounding gives the same answer: NaNs and infinities
   * ({@link #nonFinite16}), and magnitudes of 65,536 and more (infinity: beyond every rounding to
   * 65,504); -1 for every other value. Shared by {@link #toFloat16} and {@link #toFloat16Stochastic}.
   */
  private static int beyondRange16(int sign, int abs) {
    if (abs >= 0x7f800000) {
      return nonFinite16(sign, abs) & 0xffff;
    }
    if (abs >= 0x47800000) {
      return sign | 0x7c00;
    }
    return -1;
  }

  private static short nonFinite16(int sign, int abs) {
    if (abs == 0x7f800000) {
      return (short) (sign | 0x7c00);
    }
    int payload = (abs & 0x7fffff) >>> 13;
    return (short) (sign | 0x7c00 | (payload == 0 ? 1 : payload));
  }

  private static short nonFiniteB16(int x) {
    int b = x >>> 16;
    return (short) ((b & 0x7f) == 0 ? b | 0x40 : b);
  }

  /**
   * Widens {@code count} values of {@code type} at {@code src} into float32 at {@code dst} (raw
   * addresses; the ranges must not overlap).
   */
  public static void decode(ValueType type, long src, long dst, long count) {
    switch (type) {
      case FLOAT32 -> MemoryUtil.copyMemory(src, dst, count * 4);
      case FLOAT16 -> {
        for (long i = 0; i < count; i++) {
          MemoryUtil.putInt(dst + 4 * i, FLOAT16_BITS[MemoryUtil.getShort(src + 2 * i) & 0xffff]);
        }
      }
      case BFLOAT16 -> {
        for (long i = 0; i < count; i++) {
          MemoryUtil.putInt(dst + 4 * i, (MemoryUtil.getShort(src + 2 * i) & 0xffff) << 16);
        }
      }
      default -> throw notPerValue(type);
    }
  }

  /**
   * Widens {@code count} values of {@code type} at {@code src} into {@code dst[off .. off + count)}:
   * {@link #decode(ValueType, long, long, long)} into a heap array, the same values bit for bit
   * (float32 is copied).
   */
  public static void decode(ValueType type, long src, float[] dst, int off, int count) {
    switch (type) {
      case FLOAT32 -> {
        for (int i = 0; i < count; i++) {
          dst[off + i] = Float.intBitsToFloat(MemoryUtil.getInt(src + 4L * i));
        }
      }
      case FLOAT16 -> {
        for (int i = 0; i < count; i++) {
          dst[off + i] = Float.intBitsToFloat(FLOAT16_BITS[MemoryUtil.getShort(src + 2L * i) & 0xffff]);
        }
      }
      case BFLOAT16 -> {
        for (int i = 0; i < count; i++) {
          dst[off + i] = Float.intBitsToFloat((MemoryUtil.getShort(src + 2L * i) & 0xffff) << 16);
        }
      }
      default -> throw notPerValue(type);
    }
  }

  /**
   * Narrows {@code count} float32 values at {@code src} into {@code type} at {@code dst} with
   * stochastic rounding ({@link #toFloat16Stochastic}, {@link #toBfloat16Stochastic}), the random
   * bits drawn from a SplitMix64 sequence started at {@code seed}: the same seed gives the same
   * bits, which is what lets a write-ahead log's replay reproduce a 16-bit row exactly. float32 is
   * copied.
   */
  public static void encodeStochastic(ValueType type, long src, long dst, long count, long seed) {
    if (type == ValueType.FLOAT32) {
      MemoryUtil.copyMemory(src, dst, count * 4);
      return;
    }
    if (type != ValueType.FLOAT16 && type != ValueType.BFLOAT16) {
      throw notPerValue(type);
    }
    long state = seed;
    long bits = 0;
    for (long i = 0; i < count; i++) {
      if ((i & 1) == 0) {
        state += 0x9e3779b97f4a7c15L;
        bits = mix64(state);
      } else {
        bits >>>= 32;
      }
      float f = Float.intBitsToFloat(MemoryUtil.getInt(src + 4 * i));
      short h = type == ValueType.FLOAT16 ? toFloat16Stochastic(f, (int) bits) : toBfloat16Stochastic(f, (int) bits);
      MemoryUtil.putShort(dst + 2 * i, h);
    }
  }

  /** int8 rows are converted a row at a time ({@link ValueType#encode}, {@link ValueType#decode}). */
  private static IllegalArgumentException notPerValue(ValueType type) {
    return new IllegalArgumentException("Cannot convert " + type + " values one at a time (use ValueType.encode or decode: rows)");
  }

  /** SplitMix64's finalizer: a well-mixed 64-bit value of {@code z}. */
  public static long mix64(long z) {
    z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
    z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
    return z ^ (z >>> 31);
  }

  /**
   * Narrows {@code count} float32 values at {@code src} into {@code type} at {@code dst}, rounded to
   * nearest even (raw addresses; the ranges must not overlap).
   */
  public static void encode(ValueType type, long src, long dst, long count) {
    switch (type) {
      case FLOAT32 -> MemoryUtil.copyMemory(src, dst, count * 4);
      case FLOAT16 -> {
        for (long i = 0; i < count; i++) {
          MemoryUtil.putShort(dst + 2 * i, toFloat16(Float.intBitsToFloat(MemoryUtil.getInt(src + 4 * i))));
        }
      }
      case BFLOAT16 -> {
        for (long i = 0; i < count; i++) {
          MemoryUtil.putShort(dst + 2 * i, toBfloat16(Float.intBitsToFloat(MemoryUtil.getInt(src + 4 * i))));
        }
      }
      default -> throw notPerValue(type);
    }
  }
}
