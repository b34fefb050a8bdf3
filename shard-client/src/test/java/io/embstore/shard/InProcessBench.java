package io.embstore.shard;

import io.embstore.format.Partitioner;
import io.embstore.format.TableManifest;
import io.embstore.format.ValueType;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
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
 * An in-process lookup and update as the training job makes them (issue 20): {@value #N} distinct
 * random ids x C = {@code dim} of one shard of {@code rows} (a prose4 batch's output rows), through
 * {@link InProcessTransport} from a {@link RequestPlan} into / from the caller's float arrays.
 * {@code path=staged}: through Arrow buffers, as every in-process call went before issue 20 ({@link
 * InProcessTransport#lookupStaged}, {@link InProcessTransport#updateStaged}); {@code path=direct}:
 * the rows straight into the array, the gradients staged one row at a time ({@link
 * InProcessTransport#lookup}, {@link InProcessTransport#update}). The plan is built once per batch
 * in set-up, so the figures are the transport's and the shard's work alone. Figures are nanoseconds
 * per row; compare the two paths of one run.
 *
 * <p>Run it with
 *
 * <pre>bench/run jmh shard-client InProcessBench</pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 6, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class InProcessBench {
  static final int N = 25_000;
  private static final int BATCHES = 4;

  @Param({"staged", "direct"})
  public String path;

  @Param({"sgd"})
  public String optimizer;

  @Param({"float32"})
  public String valueType;

  @Param({"70000"})
  public long rows;

  @Param({"100"})
  public int dim;

  private BufferAllocator allocator;
  private ShardServer server;
  private InProcessTransport transport;
  private final RequestPlan[] plans = new RequestPlan[BATCHES];
  private final float[][] sums = new float[BATCHES][];
  private float[] out;
  private RequestPlan.ArrayScatter into;
  private int batch;

  @Setup(Level.Trial)
  public void setUp() throws Exception {
    allocator = new RootAllocator();
    Optimizer spec = Optimizer.parse(optimizer, null);
    Partitioner p = Partitioner.modulo(rows, 1);
    TableManifest shape = TableManifest.builder().rows(rows).dim(dim).valueType(ValueType.of(valueType)).partitioner("modulo")
        .shards(List.of(new TableManifest.ShardEntry(0, "placeholder", rows, p.minId(0), p.maxId(0), 0, 0))).build();
    SplittableRandom init = new SplittableRandom(1);
    server = ShardServer.builder().initialize(shape, (id, row) -> {
      for (int c = 0; c < row.length; c++) {
        row[c] = (float) (init.nextDouble() - 0.5);
      }
    }).shards(0).optimizer(spec).allocator(allocator).start();
    transport = new InProcessTransport(server, allocator);
    SplittableRandom random = new SplittableRandom(2);
    for (int b = 0; b < BATCHES; b++) {
      long[] ids = new long[N];
      LongIntMap seen = new LongIntMap(N);
      for (int i = 0; i < N; ) {
        long id = random.nextLong(rows);
        if (seen.putIfAbsent(id, i) == i) {
          ids[i++] = id;
        }
      }
      plans[b] = new RequestPlan(ids, p, "look up");
      sums[b] = new float[N * dim];
      for (int i = 0; i < sums[b].length; i++) {
        sums[b][i] = (float) (random.nextDouble() - 0.5) * 1e-3f;
      }
    }
    out = new float[N * dim];
    into = new RequestPlan.ArrayScatter(out, dim);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    server.close();
    allocator.close();
  }

  @Benchmark
  @OperationsPerInvocation(N)
  public float lookup() {
    RequestPlan plan = plans[batch++ & (BATCHES - 1)];
    Throwable failed = (path.equals("direct") ? transport.lookup(plan, 0, into, 0, 0, false) : transport.lookupStaged(plan, 0, into)).await();
    if (failed != null) {
      throw new IllegalStateException(failed);
    }
    return out[N * dim - 1];
  }

  @Benchmark
  @OperationsPerInvocation(N)
  public void update() {
    int b = batch++ & (BATCHES - 1);
    Throwable failed = (path.equals("direct") ? transport.update(plans[b], sums[b], 0, 1e-3f, 0) : transport.updateStaged(plans[b], sums[b], 0, 1e-3f)).await();
    if (failed != null) {
      throw new IllegalStateException(failed);
    }
  }
}
