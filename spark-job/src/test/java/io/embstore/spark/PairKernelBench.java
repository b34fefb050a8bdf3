package io.embstore.spark;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The per-pair work of {@link SkipGram}'s compute step alone (no planning, no pulls): {@value
 * #PAIRS} (context, center) pairs, each with one positive and {@code negatives} targets, over a
 * batch's rows ({@code inRows} x C and {@code outRows} x C floats, slots drawn at random as a
 * 16 k-token batch of prose4 touches them: about 8 k input and 25 k output rows). Figures are
 * nanoseconds per pair:
 *
 * <ul>
 *   <li>{@code simd}: the job's path ({@link VectorKernels}: the dot products first, then the fused
 *       update per target, the input row after the pair);
 *   <li>{@code scalar}: {@link SkipGram}'s scalar loops (4-way unrolled dot), the same order;
 *   <li>{@code plain}: word2vec.c's loop as C writes it (one sequential dot product per target, then
 *       {@code neu1e += g * out; out += g * in}), which is also what gensim's Cython inner loop does
 *       with BLAS {@code sdot}/{@code saxpy} calls of length C.
 * </ul>
 *
 * <p>It lives in spark-job's test sources, beside the package-private kernels (never run by the
 * tests: its name is not a test's). Run it with
 *
 * <pre>bench/run jmh spark-job PairKernelBench</pre>
 *
 * and read the ratios of the three in the same run (bench/README.md, "Training throughput, issue 20").
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xmx1g"})
public class PairKernelBench {
  static final int PAIRS = 4096;
  private static final float[] SIG = new float[SkipGram.SIGMOID_TABLE + 1];

  static {
    for (int i = 0; i <= SkipGram.SIGMOID_TABLE; i++) {
      double f = -SkipGram.MAX_EXP + 2.0 * SkipGram.MAX_EXP * i / SkipGram.SIGMOID_TABLE;
      SIG[i] = (float) (1.0 / (1.0 + Math.exp(-f)));
    }
  }

  @Param({"100"})
  public int dim;

  @Param({"5"})
  public int negatives;

  /** Distinct rows the batch holds: 8192 input and 24576 output (a prose4 batch), or 64 / 512 (in cache). */
  @Param({"batch", "cache"})
  public String rows;

  private float[] in;
  private float[] out;
  private float[] e;
  private float[] fs;
  private int[] groupIn;
  private int[] groupOut;
  private float lr = 0.01f;

  @Setup(Level.Trial)
  public void setUp() {
    int nin = rows.equals("batch") ? 8192 : 64;
    int nout = rows.equals("batch") ? 24576 : 512;
    SplittableRandom r = new SplittableRandom(7);
    in = new float[nin * dim];
    out = new float[nout * dim];
    for (int i = 0; i < in.length; i++) {
      in[i] = (float) (r.nextDouble() - 0.5) / dim;
    }
    for (int i = 0; i < out.length; i++) {
      out[i] = (float) (r.nextDouble() - 0.5) * 0.1f;
    }
    int k1 = negatives + 1;
    groupIn = new int[PAIRS];
    groupOut = new int[PAIRS * k1];
    for (int g = 0; g < PAIRS; g++) {
      groupIn[g] = r.nextInt(nin);
      for (int d = 0; d < k1; d++) {
        int s;
        boolean repeat;
        do {
          // a skewed draw, as unigram^0.75 negatives are: low slots (frequent words) more often
          s = (int) (nout * Math.pow(r.nextDouble(), 2));
          repeat = false;
          for (int d2 = 0; d2 < d; d2++) {
            repeat |= groupOut[g * k1 + d2] == s;
          }
        } while (repeat);
        groupOut[g * k1 + d] = s;
      }
    }
    e = new float[dim];
    fs = new float[k1];
  }

  private static int idx(float f) {
    if (f >= SkipGram.MAX_EXP) {
      return SkipGram.SIGMOID_TABLE;
    }
    if (f <= -SkipGram.MAX_EXP) {
      return 0;
    }
    return (int) ((f + SkipGram.MAX_EXP) * (SkipGram.SIGMOID_TABLE / (2 * SkipGram.MAX_EXP)) + 0.5f);
  }

  @Benchmark
  @OperationsPerInvocation(PAIRS)
  public float simd() {
    int c = dim;
    int k1 = negatives + 1;
    for (int g = 0; g < PAIRS; g++) {
      int l1 = groupIn[g] * c;
      java.util.Arrays.fill(e, 0f);
      for (int d = 0; d < k1; d++) {
        fs[d] = VectorKernels.dot(in, l1, out, groupOut[g * k1 + d] * c, c);
      }
      for (int d = 0; d < k1; d++) {
        int l2 = groupOut[g * k1 + d] * c;
        float gs = (d == 0 ? 1f : 0f) - SIG[idx(fs[d])];
        VectorKernels.update(e, gs, out, l2, out, lr * gs, in, l1, c);
      }
      VectorKernels.axpy(in, l1, lr, e, 0, c);
    }
    return in[0];
  }

  @Benchmark
  @OperationsPerInvocation(PAIRS)
  public float scalar() {
    int c = dim;
    int k1 = negatives + 1;
    for (int g = 0; g < PAIRS; g++) {
      int l1 = groupIn[g] * c;
      java.util.Arrays.fill(e, 0f);
      for (int d = 0; d < k1; d++) {
        fs[d] = SkipGram.dot(in, l1, out, groupOut[g * k1 + d] * c, c);
      }
      for (int d = 0; d < k1; d++) {
        int l2 = groupOut[g * k1 + d] * c;
        float gs = (d == 0 ? 1f : 0f) - SIG[idx(fs[d])];
        SkipGram.axpy(e, 0, gs, out, l2, c);
        SkipGram.axpy(out, l2, lr * gs, in, l1, c);
      }
      SkipGram.axpy(in, l1, lr, e, 0, c);
    }
    return in[0];
  }

  @Benchmark
  @OperationsPerInvocation(PAIRS)
  public float plain() {
    int c = dim;
    int k1 = negatives + 1;
    float[] in = this.in;
    float[] out = this.out;
    float[] e = this.e;
    for (int g = 0; g < PAIRS; g++) {
      int l1 = groupIn[g] * c;
      for (int j = 0; j < c; j++) {
        e[j] = 0;
      }
      for (int d = 0; d < k1; d++) {
        int l2 = groupOut[g * k1 + d] * c;
        float f = 0;
        for (int j = 0; j < c; j++) {
          f += in[l1 + j] * out[l2 + j];
        }
        float gs = ((d == 0 ? 1f : 0f) - SIG[idx(f)]) * lr;
        for (int j = 0; j < c; j++) {
          e[j] += gs * out[l2 + j];
        }
        for (int j = 0; j < c; j++) {
          out[l2 + j] += gs * in[l1 + j];
        }
      }
      for (int j = 0; j < c; j++) {
        in[l1 + j] += e[j];
      }
    }
    return in[0];
  }
}
