package io.embstore.bench.lookup;

import io.embstore.bench.common.ChildProcess;
import io.embstore.bench.common.IdStream;
import io.embstore.bench.common.Measure;
import io.embstore.bench.common.Rows;
import io.embstore.format.TableManifest;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.Optimizer;
import io.embstore.shard.ShardServer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.util.AutoCloseables;

/**
 * embstore under test: 2 shard servers (each hosting one shard of a 2-shard table, row-wise Adagrad
 * so that updates can be measured and the optimizer state is counted in memory) and one client.
 * The servers run in separate JVMs ({@link ServerMain} {@code shard} mode) or in this one.
 */
final class EmbstoreSystem implements AutoCloseable {
  static final float LR = 0.05f;
  static final double EPS = 1e-8;

  private final List<ChildProcess> processes = new ArrayList<>();
  private final List<ShardServer> inProcess = new ArrayList<>();
  private final List<BufferAllocator> serverAllocators = new ArrayList<>();
  private final BufferAllocator clientAllocator;
  private final EmbeddingClient client;
  private final TableManifest manifest;
  private final int dim;

  private EmbstoreSystem(Path table, boolean separateJvms, String heap, BufferAllocator root, PrintStream out)
      throws IOException {
    this.manifest = TableManifest.read(table);
    this.dim = manifest.dim();
    List<String> endpoints = new ArrayList<>();
    for (int shard = 0; shard < manifest.numShards(); shard++) {
      if (separateJvms) {
        ChildProcess p =
            ChildProcess.java(
                "shard-" + shard,
                List.of("-Xmx" + heap),
                ServerMain.class.getName(),
                List.of("shard", table.toString(), Integer.toString(shard)));
        processes.add(p);
        endpoints.add(p.await("endpoint"));
      } else {
        BufferAllocator a = root.newChildAllocator("bench-shard-server-" + shard, 0, Long.MAX_VALUE);
        serverAllocators.add(a);
        ShardServer s = serverBuilder(table, shard).allocator(a).start();
        inProcess.add(s);
        endpoints.add(s.endpoint());
      }
    }
    out.println("embstore servers: " + endpoints + (separateJvms ? " (separate JVMs, -Xmx" + heap + ")" : " (in this JVM)"));
    this.clientAllocator = root.newChildAllocator("bench-client", 0, Long.MAX_VALUE);
    this.client = EmbeddingClient.builder().table(table).endpoints(endpoints).allocator(clientAllocator).build();
  }

  static ShardServer.Builder serverBuilder(Path table, int shard) {
    return ShardServer.builder().table(table).shards(shard).optimizer(Optimizer.rowwiseAdagrad(LR, EPS));
  }

  static EmbstoreSystem start(Path table, boolean separateJvms, String heap, BufferAllocator root, PrintStream out)
      throws IOException {
    return new EmbstoreSystem(table, separateJvms, heap, root, out);
  }

  /** Looks up {@code b} ids and compares every value with the seeded matrix. */
  void check(IdStream ids, int b) throws IOException {
    long[] batch = new long[b];
    ids.fork(99).next(batch);
    float[] out = new float[b * dim];
    client.lookup(batch, out);
    int bad = Rows.firstMismatch(LookupBench.SEED, batch, dim, out);
    if (bad >= 0) {
      throw new IllegalStateException(
          "Cannot benchmark: embstore returned a wrong value for id " + batch[bad / dim] + " column " + bad % dim);
    }
  }

  Measure.Result lookupSync(IdStream ids, int b, Measure m) throws Exception {
    long[] batch = new long[b];
    float[] out = new float[b * dim];
    long cpu = cpuNanos();
    long calls0 = calls;
    Measure.Result r = m.sync(b, () -> {
      ids.next(batch);
      client.lookup(batch, out);
      calls++;
    });
    noteCpu(cpu, calls - calls0);
    return r;
  }

  Measure.Result lookupAsync(IdStream ids, int b, int window, Measure m) throws Exception {
    long[][] batch = new long[window][b];
    float[][] out = new float[window][b * dim];
    long cpu = cpuNanos();
    long calls0 = calls;
    Measure.Result r = m.async(window, b, slot -> {
      ids.next(batch[slot]);
      calls++;
      return client.lookupAsync(batch[slot], out[slot]);
    });
    noteCpu(cpu, calls - calls0);
    return r;
  }

  Measure.Result updateSync(IdStream ids, int b, Measure m) throws Exception {
    long[] batch = new long[b];
    float[] grads = grads(b, 1);
    long cpu = cpuNanos();
    long calls0 = calls;
    Measure.Result r = m.sync(b, () -> {
      ids.next(batch);
      client.update(batch, grads);
      calls++;
    });
    noteCpu(cpu, calls - calls0);
    return r;
  }

  Measure.Result updateAsync(IdStream ids, int b, int window, Measure m) throws Exception {
    long[][] batch = new long[window][b];
    float[][] grads = new float[window][];
    for (int w = 0; w < window; w++) {
      grads[w] = grads(b, w + 2);
    }
    long cpu = cpuNanos();
    long calls0 = calls;
    Measure.Result r = m.async(window, b, slot -> {
      ids.next(batch[slot]);
      calls++;
      return client.updateAsync(batch[slot], grads[slot], LR);
    });
    noteCpu(cpu, calls - calls0);
    return r;
  }

  /** Calls started so far (warm-up included), by the one thread that starts them. */
  private long calls;
  /** CPU time (client and server processes) per call of the last measurement, in microseconds. */
  private double cpuPerCallUs;

  /**
   * CPU time per call of the last lookup/update measurement (warm-up included): client JVM plus
   * server JVMs (user + system time from /proc). Unlike rows/s it hardly depends on how many other
   * processes share the cores, so it compares two versions on a loaded machine.
   */
  double cpuPerCallUs() {
    return cpuPerCallUs;
  }

  private void noteCpu(long before, long n) {
    cpuPerCallUs = n == 0 ? Double.NaN : (cpuNanos() - before) / 1e3 / n;
  }

  private long cpuNanos() {
    long total = ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    for (ChildProcess p : processes) {
      total += procCpuNanos(p.pid());
    }
    return total;
  }

  /** utime + stime of a process from /proc/PID/stat (clock ticks of 10 ms), in nanoseconds; 0 when unknown. */
  static long procCpuNanos(long pid) {
    try {
      String stat = java.nio.file.Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
      String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      return (Long.parseLong(f[11]) + Long.parseLong(f[12])) * 10_000_000L;
    } catch (IOException | RuntimeException e) {
      return 0;
    }
  }

  private float[] grads(int b, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    float[] g = new float[b * dim];
    for (int i = 0; i < g.length; i++) {
      g[i] = (float) (r.nextDouble() - 0.5) * 1e-3f;
    }
    return g;
  }

  /**
   * One line per server: allocator bytes now and at peak and process RSS, against the raw bytes of
   * its shard plus row-wise Adagrad state (one float per row).
   */
  List<String> memory(String label) throws IOException {
    List<String> lines = new ArrayList<>();
    for (int shard = 0; shard < manifest.numShards(); shard++) {
      long rows = manifest.partitioner().shardRows(shard);
      double raw = rows * 4.0 * dim;
      double state = rows * 4.0;
      long allocated;
      long peak;
      long rss = -1;
      long hwm = -1;
      if (!processes.isEmpty()) {
        String[] f = processes.get(shard).ask("mem", "mem").split(" ");
        allocated = Long.parseLong(f[0]);
        peak = Long.parseLong(f[1]);
        rss = Long.parseLong(f[2]);
        hwm = Long.parseLong(f[3]);
      } else {
        allocated = serverAllocators.get(shard).getAllocatedMemory();
        peak = serverAllocators.get(shard).getPeakMemoryAllocation();
      }
      lines.add(String.format(Locale.ROOT,
          "%s embstore server %d: raw %.1f MB + row-wise Adagrad state %.1f MB; allocator now %.1f MB (%.3f x), peak %.1f MB (%.3f x)%s",
          label, shard, raw / 1e6, state / 1e6, allocated / 1e6, allocated / (raw + state), peak / 1e6, peak / (raw + state),
          rss < 0 ? "" : String.format(Locale.ROOT, "; process RSS %.1f MB (%.3f x), peak RSS %.1f MB (%.3f x)",
              rss / 1e6, rss / (raw + state), hwm / 1e6, hwm / (raw + state))));
    }
    return lines;
  }

  @Override
  public void close() throws Exception {
    List<AutoCloseable> all = new ArrayList<>();
    all.add(client);
    all.add(clientAllocator);
    all.addAll(inProcess);
    all.addAll(serverAllocators);
    all.addAll(processes);
    AutoCloseables.close(all);
  }
}
