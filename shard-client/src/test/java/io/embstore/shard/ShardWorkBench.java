package io.embstore.shard;

import io.embstore.format.Partitioner;
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
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * A shard server's own work on one batch after Flight has read it, without the transport, on
 * {@value #N} distinct random rows of one shard of {@code rows} x C (what each server does per
 * request in LookupBench's B=512 runs with 2 servers): {@code apply} = the finite check, then the
 * optimizer (an update); {@code gather} = a lookup's copy of the rows; {@code write} = the same rows
 * gathered into a stream, as the fast lookup method does; {@code check} = the finite check alone.
 * Figures are nanoseconds per row.
 *
 * <p>It lives in shard-client's test sources, beside the package-private shard it measures (never run
 * by the tests: its name is not a test's). Run it with
 *
 * <pre>bench/run jmh shard-client ShardWorkBench</pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xmx1g"})
public class ShardWorkBench {
  static final int N = 256;
  private static final int BATCHES = 64;

  @Param({"rowwise-adagrad", "sgd"})
  public String optimizer;

  @Param({"500000"})
  public long rows;

  @Param({"128"})
  public int dim;

  private BufferAllocator allocator;
  private HostedShard shard;
  private ArrowBuf ids;
  private ArrowBuf grads;
  private ArrowBuf out;
  private int batch;
  private final byte[] chunk = new byte[64 * 1024];
  /** Takes the bytes and keeps the last one, so the copies cannot be optimised away. */
  private final java.io.OutputStream sink = new java.io.OutputStream() {
    private int last;

    @Override
    public void write(int b) {
      last = b;
    }

    @Override
    public void write(byte[] b, int off, int len) {
      last = b[off + len - 1];
    }
  };

  @Setup(Level.Trial)
  public void setUp() {
    allocator = new RootAllocator();
    Optimizer spec = optimizer.equals("sgd") ? Optimizer.sgd(0.01) : Optimizer.rowwiseAdagrad(0.01, 1e-8);
    SplittableRandom init = new SplittableRandom(1);
    shard = HostedShard.initialize(Partitioner.modulo(rows, 1), dim, 0, (id, row) -> {
      for (int c = 0; c < row.length; c++) {
        row[c] = (float) (init.nextDouble() - 0.5);
      }
    }, spec, allocator);
    // BATCHES batches of N distinct random ids each, and their gradients, cycled through
    SplittableRandom random = new SplittableRandom(2);
    ids = allocator.buffer(8L * N * BATCHES);
    grads = allocator.buffer(4L * dim * N * BATCHES);
    out = allocator.buffer(4L * dim * N);
    for (int b = 0; b < BATCHES; b++) {
      LongIntMap seen = new LongIntMap(N);
      for (int i = 0; i < N; ) {
        long id = random.nextLong(rows);
        if (seen.putIfAbsent(id, i) == i) {
          ids.setLong(8L * (b * N + i), id);
          i++;
        }
      }
    }
    for (long i = 0; i < (long) dim * N * BATCHES; i++) {
      grads.setFloat(4 * i, (float) (random.nextDouble() - 0.5) * 1e-3f);
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    ids.close();
    grads.close();
    out.close();
    shard.close();
    allocator.close();
  }

  @Benchmark
  @OperationsPerInvocation(N)
  public void apply() {
    int b = batch++ & (BATCHES - 1);
    long idAddress = ids.memoryAddress() + 8L * N * b;
    long gradAddress = grads.memoryAddress() + 4L * dim * N * b;
    ShardProducer.checkFinite(idAddress, gradAddress, N, dim);
    shard.update(idAddress, gradAddress, N, 1e-3f);
  }

  /** A lookup's gather of the same rows (the server's work on a lookup batch). */
  @Benchmark
  @OperationsPerInvocation(N)
  public void gather() {
    int b = batch++ & (BATCHES - 1);
    shard.copyRows(ids.slice(8L * N * b, 8L * N), N, out);
  }

  /** A fast lookup's gather of the same rows, through the 64 KiB buffer, into a stream (gRPC's in the server). */
  @Benchmark
  @OperationsPerInvocation(N)
  public void write() throws java.io.IOException {
    int b = batch++ & (BATCHES - 1);
    shard.writeRows(ids.slice(8L * N * b, 8L * N), N, sink, chunk);
  }

  /** The finite check alone. */
  @Benchmark
  @OperationsPerInvocation(N)
  public void check() {
    int b = batch++ & (BATCHES - 1);
    ShardProducer.checkFinite(ids.memoryAddress() + 8L * N * b, grads.memoryAddress() + 4L * dim * N * b, N, dim);
  }
}
