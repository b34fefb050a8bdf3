package io.embstore.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The 16-bit conversions: every bit pattern widens exactly, narrowing rounds to nearest even
 * (float16 exactly as NumPy's {@code astype(np.float16)}; bfloat16 against a reference computed
 * with exact decimal arithmetic), and stochastic rounding is unbiased and really stochastic.
 */
class HalfFloatsTest {
  static final String PYTHON = "/usr/bin/python3";

  @TempDir Path tmp;

  @Test
  void everyFloat16PatternWidensToTheSameValueAndNarrowsBackToItsBits() {
    for (int h = 0; h < 0x10000; h++) {
      float f = HalfFloats.float16ToFloat((short) h);
      assertThat(Float.floatToRawIntBits(f)).isEqualTo(Float.floatToRawIntBits(HalfFloats.computeFloat16ToFloat((short) h)));
      int exponent = (h >>> 10) & 0x1f;
      int mantissa = h & 0x3ff;
      double sign = (h & 0x8000) != 0 ? -1 : 1;
      if (exponent == 0x1f) {
        assertThat(Float.isNaN(f)).as("bits %04x", h).isEqualTo(mantissa != 0);
        if (mantissa != 0) {
          // The payload moves up by 13 bits, the sign stays.
          assertThat(Float.floatToRawIntBits(f)).isEqualTo(((h & 0x8000) << 16) | 0x7f800000 | (mantissa << 13));
        } else {
          assertThat(f).isEqualTo((float) (sign * Double.POSITIVE_INFINITY));
        }
      } else {
        double expected = exponent == 0 ? sign * mantissa * 0x1p-24 : sign * (1024 + mantissa) * Math.scalb(1.0, exponent - 25);
        assertThat((double) f).as("bits %04x", h).isEqualTo(expected);
        assertThat(Float.floatToRawIntBits(f) >>> 31).isEqualTo(h >>> 15); // -0.0 too
      }
      assertThat(HalfFloats.toFloat16(f) & 0xffff).as("bits %04x", h).isEqualTo(h);
      assertThat(HalfFloats.toFloat16Stochastic(f, 0x7fffffff) & 0xffff).as("exact values do not move: %04x", h).isEqualTo(h);
    }
  }

  @Test
  void everyBfloat16PatternWidensToTheUpperHalfAndNarrowsBackToItsBits() {
    for (int b = 0; b < 0x10000; b++) {
      float f = HalfFloats.bfloat16ToFloat((short) b);
      assertThat(Float.floatToRawIntBits(f)).isEqualTo(b << 16);
      assertThat(HalfFloats.toBfloat16(f) & 0xffff).as("bits %04x", b).isEqualTo(b);
      assertThat(HalfFloats.toBfloat16Stochastic(f, 0xffff) & 0xffff).isEqualTo(b);
    }
  }

  @Test
  void float16NarrowingIsExactlyNumpys() throws IOException {
    assumeTrue(pythonHasNumpy(), "/usr/bin/python3 cannot import numpy (apt-get install python3-numpy): float16 narrowing not compared with NumPy");
    int[] bits = interestingFloatBits();
    Path in = tmp.resolve("f32.bin");
    Path out = tmp.resolve("f16.bin");
    ByteBuffer buf = ByteBuffer.allocate(bits.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    buf.asIntBuffer().put(bits);
    Files.write(in, buf.array());
    python(
        "import numpy as np, sys\n"
            + "a = np.fromfile(sys.argv[1], dtype='<u4').view('<f4')\n"
            + "with np.errstate(all='ignore'):\n"
            + "    a.astype('<f2').view('<u2').tofile(sys.argv[2])\n",
        in.toString(), out.toString());
    ByteBuffer numpy = ByteBuffer.wrap(Files.readAllBytes(out)).order(ByteOrder.LITTLE_ENDIAN);
    assertThat(numpy.remaining()).isEqualTo(bits.length * 2);
    int mismatches = 0;
    StringBuilder first = new StringBuilder();
    for (int i = 0; i < bits.length; i++) {
      int expected = numpy.getShort(2 * i) & 0xffff;
      int actual = HalfFloats.toFloat16(Float.intBitsToFloat(bits[i])) & 0xffff;
      if (expected != actual && mismatches++ < 5) {
        first.append(String.format(" %08x: numpy %04x, ours %04x;", bits[i], expected, actual));
      }
    }
    assertThat(mismatches).as("values that differ from NumPy of %d:%s", bits.length, first).isZero();
  }

  @Test
  void bfloat16NarrowingRoundsToNearestEven() {
    int[] bits = interestingFloatBits();
    for (int x : bits) {
      float f = Float.intBitsToFloat(x);
      int actual = HalfFloats.toBfloat16(f) & 0xffff;
      if (Float.isNaN(f)) {
        assertThat(Float.isNaN(HalfFloats.bfloat16ToFloat((short) actual))).isTrue();
        assertThat(actual >>> 15).isEqualTo(x >>> 31);
        continue;
      }
      assertThat(actual).as("bits %08x", x).isEqualTo(nearestEvenBfloat16(x));
    }
  }

  /** The reference: the nearer of the two bfloat16 neighbours in exact decimal arithmetic, ties to the even one. */
  private static int nearestEvenBfloat16(int x) {
    int down = x >>> 16;
    if ((x & 0xffff) == 0) {
      return down;
    }
    int up = down + 1; // the next magnitude (into infinity past the largest finite value)
    BigDecimal v = new BigDecimal(Math.abs(Float.intBitsToFloat(x)));
    BigDecimal lo = new BigDecimal(Math.abs(Float.intBitsToFloat(down << 16)));
    float upValue = Math.abs(Float.intBitsToFloat(up << 16));
    BigDecimal hi = Float.isInfinite(upValue)
        ? BigDecimal.valueOf(2).pow(128) // the value one bfloat16 step past the largest finite one
        : new BigDecimal(upValue);
    int c = v.subtract(lo).compareTo(hi.subtract(v));
    if (c < 0) {
      return down;
    }
    if (c > 0) {
      return up;
    }
    return (down & 1) == 0 ? down : up;
  }

  @Test
  void stochasticRoundingIsUnbiasedAndNotRoundToNearest() {
    SplittableRandom random = new SplittableRandom(19);
    // A quarter of the way from 1.0 to the next value, and values in the subnormal range of
    // float16, a normal value whose spacing is large, a negative one.
    float[] float16Cases = {1.0f + 0x1p-12f, 3.3e-6f, -1234.567f, 0.1f, 6.1e-8f};
    for (float v : float16Cases) {
      checkStochastic(v, n -> HalfFloats.float16ToFloat(HalfFloats.toFloat16Stochastic(v, random.nextInt())),
          HalfFloats.float16ToFloat(HalfFloats.toFloat16(v)));
    }
    float[] bfloat16Cases = {1.0f + 0x1p-10f, -0.3141592f, 1e-30f, 12345.678f};
    for (float v : bfloat16Cases) {
      checkStochastic(v, n -> HalfFloats.bfloat16ToFloat(HalfFloats.toBfloat16Stochastic(v, random.nextInt())),
          HalfFloats.bfloat16ToFloat(HalfFloats.toBfloat16(v)));
    }
  }

  private static void checkStochastic(float v, java.util.function.IntToDoubleFunction round, float nearest) {
    int n = 200_000;
    double sum = 0;
    double sumSquares = 0;
    int differentFromNearest = 0;
    for (int i = 0; i < n; i++) {
      double r = round.applyAsDouble(i);
      sum += r;
      sumSquares += r * r;
      if (r != nearest) {
        differentFromNearest++;
      }
    }
    double mean = sum / n;
    double sd = Math.sqrt(Math.max(0, sumSquares / n - mean * mean));
    double stderr = sd / Math.sqrt(n);
    assertThat(sd).as("%s: the roundings vary (not one fixed rounding)", v).isGreaterThan(0);
    assertThat(Math.abs(mean - v)).as("%s: mean %s, standard error %s", v, mean, stderr).isLessThanOrEqualTo(5 * stderr);
    // Round to nearest gives the same value every time; stochastic rounding gives the other
    // neighbour with the probability of its distance.
    assertThat(differentFromNearest).as("%s: results other than the nearest value", v).isGreaterThan(n / 100);
    // And the nearest value is the one taken more often.
    assertThat(differentFromNearest).isLessThan(n / 2 + 5 * (int) Math.sqrt(n));
  }

  @Test
  void bulkConversionsMatchTheScalarOnes() {
    int[] bits = interestingFloatBits();
    int count = bits.length;
    try (BufferAllocator allocator = new RootAllocator();
        ArrowBuf f32 = allocator.buffer(4L * count);
        ArrowBuf h = allocator.buffer(2L * count);
        ArrowBuf back = allocator.buffer(4L * count)) {
      for (int i = 0; i < count; i++) {
        f32.setInt(4L * i, bits[i]);
      }
      for (ValueType type : new ValueType[] {ValueType.FLOAT16, ValueType.BFLOAT16}) {
        HalfFloats.encode(type, f32.memoryAddress(), h.memoryAddress(), count);
        HalfFloats.decode(type, h.memoryAddress(), back.memoryAddress(), count);
        for (int i = 0; i < count; i++) {
          float f = Float.intBitsToFloat(bits[i]);
          short expected = type == ValueType.FLOAT16 ? HalfFloats.toFloat16(f) : HalfFloats.toBfloat16(f);
          assertThat(h.getShort(2L * i)).isEqualTo(expected);
          float widened = type == ValueType.FLOAT16 ? HalfFloats.float16ToFloat(expected) : HalfFloats.bfloat16ToFloat(expected);
          assertThat(back.getInt(4L * i)).isEqualTo(Float.floatToRawIntBits(widened));
        }
      }
    }
  }

  /**
   * Float32 bit patterns that exercise every rounding case: every exponent with mantissas around
   * every tie of both 16-bit types, the edges (zeros, subnormals, the largest values, infinities,
   * NaNs with small and large payloads) and random patterns.
   */
  static int[] interestingFloatBits() {
    List<Integer> out = new ArrayList<>();
    for (int sign = 0; sign < 2; sign++) {
      for (int e = 0; e < 256; e++) {
        int base = (sign << 31) | (e << 23);
        for (int hi = 0; hi < 8; hi++) {
          int top = hi << 20 | (hi == 7 ? 0x7e000 : 0);
          for (int tail : new int[] {0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x7fff, 0x8000, 0x8001, 0xffff, 0x18000}) {
            out.add(base | ((top | tail) & 0x7fffff));
          }
        }
      }
    }
    int[] edges = {0x00000001, 0x007fffff, 0x33000000, 0x33000001, 0x337fffff, 0x33800000, 0x387fe000, 0x387ff000,
        0x38800000, 0x477fe000, 0x477fefff, 0x477ff000, 0x477fffff, 0x47800000, 0x7f7fffff, 0x7f7f8000, 0x7f7f7fff,
        0x7f800000, 0x7f800001, 0x7f801000, 0x7fc00000, 0x7fffffff, 0x7f802000, 0x7f810000};
    for (int x : edges) {
      out.add(x);
      out.add(x | 0x80000000);
    }
    SplittableRandom r = new SplittableRandom(16);
    for (int i = 0; i < 200_000; i++) {
      out.add(r.nextInt());
    }
    return out.stream().mapToInt(Integer::intValue).toArray();
  }

  static boolean pythonHasNumpy() {
    if (!Files.isExecutable(Paths.get(PYTHON))) {
      return false;
    }
    try {
      Process p = new ProcessBuilder(PYTHON, "-c", "import numpy").redirectErrorStream(true).start();
      p.getInputStream().readAllBytes();
      return p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0;
    } catch (IOException e) {
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  private static void python(String script, String... args) throws IOException {
    List<String> cmd = new ArrayList<>(List.of(PYTHON, "-c", script));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String output = new String(p.getInputStream().readAllBytes());
    try {
      if (!p.waitFor(5, TimeUnit.MINUTES) || p.exitValue() != 0) {
        throw new AssertionError("python failed: " + output);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException(e);
    }
  }
}
