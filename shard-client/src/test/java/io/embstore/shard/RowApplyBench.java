package io.embstore.shard;

import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.memory.util.MemoryUtil;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The two ways issue 20 weighed to apply SGD from the caller's heap array to {@value #N} random rows
 * of a 70,000 x 100 float32 shard (what {@link InProcessBench}'s direct update does per row, without
 * locks and counters): {@code staged}, each row's gradient copied into a one-row off-heap scratch and
 * {@link Optimizer#apply} run on it (what the shard does), against {@code heap}, a second SGD kernel
 * that reads the gradient from the array itself (written here only, to measure it). Nanoseconds
 * per row.
 *
 * <pre>bench/run jmh shard-client RowApplyBench</pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 6, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class RowApplyBench {
  static final int N = 25_000;
  static final int ROWS = 70_000;
  static final int DIM = 100;

  private BufferAllocator allocator;
  private ArrowBuf rows;
  private ArrowBuf scratch;
  private FloatBuffer scratchView;
  private final Optimizer sgd = Optimizer.sgd(1e-3);
  private final long[] noState = new long[0];
  private long[] positions;
  private float[] sums;
  private ArrowBuf grads;
  private FloatBuffer gradsView;
  private final float[] heapRow = new float[DIM];

  @Setup(Level.Trial)
  public void setUp() {
    allocator = new RootAllocator();
    rows = allocator.buffer(4L * ROWS * DIM);
    scratch = allocator.buffer(4L * DIM);
    scratchView = scratch.nioBuffer(0, 4 * DIM).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    SplittableRandom r = new SplittableRandom(1);
    for (long i = 0; i < (long) ROWS * DIM; i++) {
      rows.setFloat(4 * i, (float) r.nextDouble());
    }
    positions = new long[N];
    LongIntMap seen = new LongIntMap(N);
    for (int i = 0; i < N; ) {
      long p = r.nextLong(ROWS);
      if (seen.putIfAbsent(p, i) == i) {
        positions[i++] = p;
      }
    }
    sums = new float[N * DIM];
    for (int i = 0; i < sums.length; i++) {
      sums[i] = (float) (r.nextDouble() - 0.5) * 1e-3f;
    }
    grads = allocator.buffer(4L * sums.length);
    gradsView = grads.nioBuffer(0, 4 * sums.length).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    gradsView.put(0, sums);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    scratch.close();
    grads.close();
    rows.close();
    allocator.close();
  }

  @Benchmark
  @OperationsPerInvocation(N)
  public void staged() {
    long base = rows.memoryAddress();
    long g = scratch.memoryAddress();
    for (int i = 0; i < N; i++) {
      scratchView.put(0, sums, i * DIM, DIM);
      sgd.apply(base + positions[i] * 4L * DIM, g, noState, DIM, 1e-3f);
    }
  }

  /** The Flight handler's case: the gradients already off-heap, in the request's buffer. */
  @Benchmark
  @OperationsPerInvocation(N)
  public void offHeap() {
    long base = rows.memoryAddress();
    long g = grads.memoryAddress();
    for (int i = 0; i < N; i++) {
      sgd.apply(base + positions[i] * 4L * DIM, g + 4L * i * DIM, noState, DIM, 1e-3f);
    }
  }

  /** The heap kernel from an off-heap gradient: each row copied into a one-row heap scratch first. */
  @Benchmark
  @OperationsPerInvocation(N)
  public void offHeapViaHeap() {
    long base = rows.memoryAddress();
    for (int i = 0; i < N; i++) {
      gradsView.get(i * DIM, heapRow, 0, DIM);
      long w = base + positions[i] * 4L * DIM;
      for (int c = 0; c < DIM; c++) {
        long o = 4L * c;
        MemoryUtil.putInt(w + o, Float.floatToRawIntBits(Float.intBitsToFloat(MemoryUtil.getInt(w + o)) - 1e-3f * heapRow[c]));
      }
    }
  }

  @Benchmark
  @OperationsPerInvocation(N)
  public void heap() {
    long base = rows.memoryAddress();
    for (int i = 0; i < N; i++) {
      long w = base + positions[i] * 4L * DIM;
      int off = i * DIM;
      for (int c = 0; c < DIM; c++) {
        long o = 4L * c;
        MemoryUtil.putInt(w + o, Float.floatToRawIntBits(Float.intBitsToFloat(MemoryUtil.getInt(w + o)) - 1e-3f * sums[off + c]));
      }
    }
  }
}
