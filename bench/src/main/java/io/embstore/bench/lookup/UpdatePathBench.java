package io.embstore.bench.lookup;

import io.embstore.format.Partitioner;
import io.embstore.format.TableManifest;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.Optimizer;
import io.embstore.shard.ShardServer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * Updates over the fast update method ({@code embstore.Shard/Update}) against the Flight update
 * exchange, in the same run on the same server: one {@link ShardServer} in this JVM (SGD, C float32
 * rows, modulo shards) and two routing clients over 127.0.0.1, one built with {@code
 * updateExchange(true)}. Each round runs every path once, alternating which goes first: {@code
 * threads} threads each send their share of {@code calls} blocking updates of {@code batch} random
 * distinct-ish ids with random gradients. Prints, per path, rows/s and CPU microseconds of the
 * process per row pushed (client and server together, as in a training run with shards over Flight),
 * and the fast method's ratios against the exchange. The first round warms up and is not counted.
 *
 * <p>Run: {@code bench/run lookup.UpdatePathBench [--rows 200000] [--dim 100] [--shards 4] [--batch
 * 4096] [--calls 1500] [--threads 2] [--rounds 4]}.
 */
public final class UpdatePathBench {
  private UpdatePathBench() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> o = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      o.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    long rows = Long.parseLong(o.getOrDefault("rows", "200000"));
    int dim = Integer.parseInt(o.getOrDefault("dim", "100"));
    int shards = Integer.parseInt(o.getOrDefault("shards", "4"));
    int batch = Integer.parseInt(o.getOrDefault("batch", "4096"));
    int calls = Integer.parseInt(o.getOrDefault("calls", "1500"));
    int threads = Integer.parseInt(o.getOrDefault("threads", "2"));
    int rounds = Integer.parseInt(o.getOrDefault("rounds", "4"));
    Partitioner p = Partitioner.modulo(rows, shards);
    TableManifest.Builder shape = TableManifest.builder().rows(rows).dim(dim).partitioner(Partitioner.MODULO).tableVersion(1);
    for (int s = 0; s < shards; s++) {
      shape.addShard(new TableManifest.ShardEntry(s, "placeholder", p.shardRows(s), p.minId(s), p.maxId(s), 0, 0));
    }
    TableManifest m = shape.build();
    // a few hundred distinct batches, reused: the clients' work is the path, not the random numbers
    SplittableRandom r = new SplittableRandom(1);
    int distinct = 256;
    long[][] ids = new long[distinct][];
    float[][] grads = new float[distinct][];
    for (int k = 0; k < distinct; k++) {
      ids[k] = r.longs(batch, 0, rows).toArray();
      grads[k] = new float[batch * dim];
      for (int i = 0; i < grads[k].length; i++) {
        grads[k][i] = (float) (r.nextDouble() - 0.5) * 1e-3f;
      }
    }
    System.out.printf(Locale.ROOT, "update paths: V=%,d C=%d P=%d, %d calls of %d ids from %d threads, %d rounds (first: warm-up)%n",
        rows, dim, shards, calls, batch, threads, rounds);
    System.out.println("load average at start: " + loadAverage());
    com.sun.management.OperatingSystemMXBean os =
        (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
    try (BufferAllocator root = new RootAllocator();
        ShardServer server = ShardServer.builder().initialize(m, (id, row) -> java.util.Arrays.fill(row, 0.01f))
            .optimizer(Optimizer.sgd(0.025)).allocator(root).start();
        EmbeddingClient fast = client(m, server, root, false);
        EmbeddingClient exchange = client(m, server, root, true)) {
      ExecutorService pool = Executors.newFixedThreadPool(threads);
      double[][] sum = new double[2][2]; // [path][wall, cpu]
      String[] names = {"fast method", "exchange"};
      for (int round = 0; round < rounds; round++) {
        for (int k = 0; k < 2; k++) {
          int path = (round + k) % 2;
          EmbeddingClient c = path == 0 ? fast : exchange;
          long cpu0 = os.getProcessCpuTime();
          long t0 = System.nanoTime();
          List<Future<?>> parts = new ArrayList<>();
          for (int t = 0; t < threads; t++) {
            int thread = t;
            parts.add(pool.submit(() -> {
              for (int i = thread; i < calls; i += threads) {
                c.update(ids[i % distinct], grads[i % distinct]);
              }
              return null;
            }));
          }
          for (Future<?> f : parts) {
            f.get();
          }
          double wall = (System.nanoTime() - t0) / 1e9;
          double cpu = (os.getProcessCpuTime() - cpu0) / 1e9;
          double pushed = (double) calls * batch;
          System.out.printf(Locale.ROOT, "round %d %-11s %,12.0f rows/s  %6.2f CPU us/row  (%.2f s, %.2f CPU s)%s%n", round, names[path],
              pushed / wall, cpu * 1e6 / pushed, wall, cpu, round == 0 ? "  warm-up" : "");
          if (round > 0) {
            sum[path][0] += wall;
            sum[path][1] += cpu;
          }
        }
      }
      pool.shutdownNow();
      System.out.printf(Locale.ROOT, "fast method / exchange over rounds 1..%d: rows/s %.2fx, CPU per row %.2fx; load average at end: %s%n",
          rounds - 1, sum[1][0] / sum[0][0], sum[0][1] / sum[1][1], loadAverage());
    }
  }

  private static EmbeddingClient client(TableManifest m, ShardServer server, BufferAllocator root, boolean exchange)
      throws java.io.IOException {
    return EmbeddingClient.builder().manifest(m).endpoints(List.of(server.endpoint())).allocator(root)
        .deadline(Duration.ofMinutes(2)).updateExchange(exchange).build();
  }

  private static String loadAverage() throws java.io.IOException {
    return new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get("/proc/loadavg"))).trim();
  }
}
