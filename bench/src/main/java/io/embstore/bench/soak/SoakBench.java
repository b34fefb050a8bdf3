package io.embstore.bench.soak;

import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.ShardServer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * Bounded soak: two shard servers (each hosting half of a 4-shard table) and 8 client threads
 * sharing one {@link EmbeddingClient}, mixing lookups (80%) and sparse updates (20%) for a fixed
 * time. Every few seconds it prints throughput, errors, off-heap memory held and the process's
 * resident memory (VmRSS); at the end it closes everything (the root allocator throws on a leak)
 * and prints a verdict:
 *
 * <ul>
 *   <li>errors: must be 0;
 *   <li>allocator: no leak at close;
 *   <li>RSS after warm-up (the first quarter of the run, at most 60 s): max/min within 10%;
 *   <li>throughput after warm-up, in windows of {@value #WINDOW_SECONDS} s: no window below 50% of
 *       the best window before it. A leak, a lock-up or growing contention shows as such a drop; a
 *       rise does not fail (on a starved machine the JIT keeps warming well past the warm-up, and
 *       throughput climbs). The margin is wide because the machine is shared and noisy. A
 *       1-thread baseline measured first in the same run is printed for the ratio.
 * </ul>
 *
 * <p>Run: {@code bench/soak.sh [seconds]} (default 600) or {@code bench/run io.embstore.bench.soak.SoakBench
 * --seconds 60}. Exit code 0 when every check passes, 1 otherwise. The figures are relative to the
 * same run (first interval after warm-up is the baseline); no absolute thresholds.
 */
public final class SoakBench {
  static final int BASELINE_SECONDS = 10;
  /** Throughput stability is judged on windows of at least this many seconds (noise averages out). */
  static final int WINDOW_SECONDS = 15;

  private SoakBench() {}

  public static void main(String[] args) throws Exception {
    int seconds = 600;
    int threads = 8;
    long rows = 200_000;
    int dim = 64;
    int intervalSeconds = 5;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--seconds" -> seconds = Integer.parseInt(args[++i]);
        case "--threads" -> threads = Integer.parseInt(args[++i]);
        case "--rows" -> rows = Long.parseLong(args[++i]);
        case "--dim" -> dim = Integer.parseInt(args[++i]);
        case "--interval" -> intervalSeconds = Integer.parseInt(args[++i]);
        default -> throw new IllegalArgumentException("Cannot parse argument '" + args[i] + "' (--seconds N --threads N --rows V --dim C --interval S)");
      }
    }
    boolean ok = run(seconds, threads, rows, dim, intervalSeconds);
    System.exit(ok ? 0 : 1);
  }

  static boolean run(int seconds, int threads, long rows, int dim, int intervalSeconds) throws Exception {
    Path dir = Files.createTempDirectory("embstore-soak-");
    List<long[]> intervals = new ArrayList<>(); // {lookups, updates, errors, rssKb, offHeapBytes, millis}
    double baseline = 0;
    List<String> errors = new ArrayList<>();
    String leak = null;
    long totalLookups = 0;
    long totalUpdates = 0;
    long totalErrors = 0;
    RootAllocator root = new RootAllocator();
    try {
      writeTable(dir, rows, dim, root);
      ShardServer a = ShardServer.builder().table(dir).shards(0, 1).allocator(root).start();
      ShardServer b = ShardServer.builder().table(dir).shards(2, 3).allocator(root).start();
      EmbeddingClient client =
          EmbeddingClient.builder().table(dir).endpoints(List.of(a.endpoint(), b.endpoint())).allocator(root).deadline(Duration.ofSeconds(30)).build();
      // Baseline in the same run: one client thread for a few seconds.
      {
        AtomicLong l1 = new AtomicLong();
        AtomicLong u1 = new AtomicLong();
        AtomicBoolean stop1 = new AtomicBoolean();
        Thread one = new Thread(() -> work(client, rows, dim, 99, stop1, l1, u1, new AtomicLong(), errors), "soak-baseline");
        long t0 = System.nanoTime();
        one.start();
        Thread.sleep(BASELINE_SECONDS * 1000L);
        stop1.set(true);
        one.join(60_000);
        baseline = (l1.get() + u1.get()) / ((System.nanoTime() - t0) / 1e9);
        System.out.printf(Locale.ROOT, "soak: baseline, 1 client thread for %d s: %.1f requests/s%n", BASELINE_SECONDS, baseline);
      }
      System.out.printf(Locale.ROOT, "soak: %d s, %d threads, V=%d C=%d, 4 shards on 2 servers (%s, %s)%n", seconds, threads, rows, dim, a.endpoint(), b.endpoint());
      System.out.println("  t(s)  lookups/s  updates/s  errors  rss(MB)  offheap(MB)");
      AtomicLong lookups = new AtomicLong();
      AtomicLong updates = new AtomicLong();
      AtomicLong errorCount = new AtomicLong();
      AtomicBoolean stop = new AtomicBoolean();
      List<Thread> workers = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        final int seed = t;
        final long v = rows;
        final int c = dim;
        Thread w = new Thread(() -> work(client, v, c, seed, stop, lookups, updates, errorCount, errors), "soak-" + t);
        w.start();
        workers.add(w);
      }
      long start = System.nanoTime();
      long end = start + seconds * 1_000_000_000L;
      long prevL = 0;
      long prevU = 0;
      long prevE = 0;
      long prevT = start;
      while (System.nanoTime() < end) {
        Thread.sleep(Math.min(intervalSeconds * 1000L, Math.max(1, (end - System.nanoTime()) / 1_000_000)));
        long l = lookups.get();
        long u = updates.get();
        long e = errorCount.get();
        long rss = rssKb();
        long off = root.getAllocatedMemory();
        long now = System.nanoTime();
        long[] iv = {l - prevL, u - prevU, e - prevE, rss, off, (now - prevT) / 1_000_000};
        prevT = now;
        if (iv[5] < intervalSeconds * 500L && !intervals.isEmpty()) {
          // A short last interval (the remainder of the run) would read as a throughput drop.
          prevL = l;
          prevU = u;
          prevE = e;
          intervals.get(intervals.size() - 1)[2] += iv[2];
          continue;
        }
        intervals.add(iv);
        double t = (now - start) / 1e9;
        double secs = iv[5] / 1000.0;
        System.out.printf(Locale.ROOT, "%6.0f  %9.1f  %9.1f  %6d  %7.1f  %11.1f%n", t, iv[0] / secs, iv[1] / secs, iv[2], rss / 1024.0, off / 1048576.0);
        prevL = l;
        prevU = u;
        prevE = e;
      }
      stop.set(true);
      for (Thread w : workers) {
        w.join(60_000);
        if (w.isAlive()) {
          errors.add(w.getName() + " did not stop within 60 s");
        }
      }
      totalLookups = lookups.get();
      totalUpdates = updates.get();
      totalErrors = errorCount.get();
      client.close();
      a.close();
      b.close();
    } finally {
      try {
        root.close();
      } catch (IllegalStateException e) {
        leak = e.getMessage().lines().findFirst().orElse("leak");
      }
      deleteTree(dir);
    }
    return verdict(seconds, intervalSeconds, intervals, totalLookups, totalUpdates, totalErrors, errors, leak, baseline, threads);
  }

  private static void work(
      EmbeddingClient client, long rows, int dim, int seed, AtomicBoolean stop,
      AtomicLong lookups, AtomicLong updates, AtomicLong errorCount, List<String> errors) {
    SplittableRandom r = new SplittableRandom(seed);
    long[] ids = new long[256];
    float[] out = new float[ids.length * dim];
    long[] uids = new long[64];
    float[] grads = new float[uids.length * dim];
    while (!stop.get()) {
      try {
        if (r.nextInt(5) != 0) {
          for (int i = 0; i < ids.length; i++) {
            // Skewed like word frequencies: half the ids from the first 1%.
            ids[i] = r.nextBoolean() ? r.nextLong(Math.max(1, rows / 100)) : r.nextLong(rows);
          }
          client.lookup(ids, out);
          lookups.incrementAndGet();
        } else {
          for (int i = 0; i < uids.length; i++) {
            uids[i] = r.nextLong(rows);
          }
          for (int i = 0; i < grads.length; i++) {
            grads[i] = (float) (r.nextDouble() - 0.5) * 1e-3f;
          }
          client.update(uids, grads, 0.01f);
          updates.incrementAndGet();
        }
      } catch (IOException | RuntimeException e) {
        errorCount.incrementAndGet();
        synchronized (errors) {
          if (errors.size() < 10) {
            errors.add(e.toString());
          }
        }
      }
    }
  }

  private static boolean verdict(
      int seconds, int intervalSeconds, List<long[]> intervals, long lookups, long updates, long errorCount, List<String> errors, String leak,
      double baseline, int threads) {
    int warm = Math.min(intervals.size() / 4, 60 / intervalSeconds);
    List<long[]> steady = intervals.subList(Math.min(warm, Math.max(0, intervals.size() - 1)), intervals.size());
    long rssMin = Long.MAX_VALUE;
    long rssMax = 0;
    for (long[] iv : steady) {
      rssMin = Math.min(rssMin, iv[3]);
      rssMax = Math.max(rssMax, iv[3]);
    }
    int per = Math.max(1, (WINDOW_SECONDS + intervalSeconds - 1) / intervalSeconds);
    List<Double> windows = new ArrayList<>();
    for (int i = 0; i + per <= steady.size(); i += per) {
      long n = 0;
      long ms = 0;
      for (int j = i; j < i + per; j++) {
        n += steady.get(j)[0] + steady.get(j)[1];
        ms += steady.get(j)[5];
      }
      windows.add(n / (ms / 1000.0));
    }
    double[] sorted = windows.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    double median = sorted.length == 0 ? 0 : sorted[sorted.length / 2];
    double slowest = sorted.length == 0 ? 0 : sorted[0];
    double fastest = sorted.length == 0 ? 0 : sorted[sorted.length - 1];
    double rssGrowth = rssMin == Long.MAX_VALUE ? 0 : (rssMax - rssMin) / (double) rssMin;
    double first = windows.isEmpty() ? 0 : windows.get(0);
    double last = windows.isEmpty() ? 0 : windows.get(windows.size() - 1);
    boolean errorsOk = errorCount == 0 && errors.isEmpty();
    boolean leakOk = leak == null;
    boolean rssOk = rssGrowth <= 0.10;
    double worstDrop = 1; // the lowest ratio of a window to the best window before it
    double best = 0;
    for (double w : windows) {
      if (best > 0) {
        worstDrop = Math.min(worstDrop, w / best);
      }
      best = Math.max(best, w);
    }
    boolean throughputOk = median > 0 && worstDrop >= 0.5;
    System.out.printf(Locale.ROOT, "soak summary (%d s, %d intervals of %d s, first %d excluded as warm-up):%n", seconds, intervals.size(), intervalSeconds, warm);
    System.out.printf(Locale.ROOT, "  requests: %d lookups (256 ids), %d updates (64 ids); %.1f requests/s overall with %d threads; baseline 1 thread %.1f requests/s (ratio %.2f)%n",
        lookups, updates, (lookups + updates) / (double) seconds, threads, baseline, baseline == 0 ? 0 : (lookups + updates) / (double) seconds / baseline);
    System.out.printf(Locale.ROOT, "  errors: %d %s%n", errorCount, errors.isEmpty() ? "" : errors);
    System.out.printf(Locale.ROOT, "  allocator at close: %s%n", leakOk ? "no leak" : "LEAK " + leak);
    System.out.printf(Locale.ROOT, "  RSS after warm-up: min %.1f MB, max %.1f MB, spread %.1f%% (limit 10%%)%n", rssMin / 1024.0, rssMax / 1024.0, 100 * rssGrowth);
    System.out.printf(Locale.ROOT, "  throughput after warm-up, %d windows of %d s (requests/s): first %.1f, last %.1f, median %.1f, min %.1f, max %.1f; "
            + "lowest window / best earlier window %.0f%% (limit 50%%)%n",
        windows.size(), per * intervalSeconds, first, last, median, slowest, fastest, 100 * worstDrop);
    boolean ok = errorsOk && leakOk && rssOk && throughputOk;
    System.out.printf(Locale.ROOT, "  verdict: %s (errors %s, leak %s, rss %s, throughput %s)%n", ok ? "PASS" : "FAIL",
        errorsOk ? "ok" : "FAIL", leakOk ? "ok" : "FAIL", rssOk ? "ok" : "FAIL", throughputOk ? "ok" : "FAIL");
    return ok;
  }

  private static void writeTable(Path dir, long rows, int dim, BufferAllocator allocator) throws IOException {
    Files.delete(dir);
    SplittableRandom r = new SplittableRandom(42);
    try (TableWriter w = TableWriter.create(dir, rows, dim, 4, "modulo", allocator)) {
      w.createdBy("soak");
      int chunk = 4096;
      ByteBuffer buf = ByteBuffer.allocateDirect(chunk * dim * 4).order(ByteOrder.LITTLE_ENDIAN);
      for (long id = 0; id < rows; id += chunk) {
        int n = (int) Math.min(chunk, rows - id);
        buf.clear();
        for (int i = 0; i < n * dim; i++) {
          buf.putFloat((float) (r.nextDouble() * 2 - 1));
        }
        buf.flip();
        w.appendInIdOrder(buf, n);
      }
      TableManifest m = w.commit();
      System.out.printf(Locale.ROOT, "soak: wrote table v%d in %s%n", m.tableVersion(), dir);
    }
  }

  /** Resident memory of this process in KiB (Linux /proc), or 0 when unknown. */
  static long rssKb() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("VmRSS:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
      }
    } catch (IOException | NumberFormatException e) {
      return 0;
    }
    return 0;
  }

  private static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (var s = Files.walk(dir)) {
      s.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }
}
