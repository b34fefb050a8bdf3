package io.embstore.bench.soak;

import io.embstore.bench.common.ChildProcess;
import io.embstore.bench.common.IdStream;
import io.embstore.bench.common.Measure;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.ShardException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
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
import java.util.stream.LongStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * Bounded soak with a crash: two shard server processes ({@link io.embstore.shard.ServerLauncher},
 * what {@code embstore serve} runs, with serve's options; each hosting half of a 4-shard
 * table, with {@code --wal} (sync {@code always}) and bearer tokens) and 8 clients (threads, each
 * with its own {@link EmbeddingClient} and the write token) mixing lookups of 256 ids (70%), sparse
 * updates of 64 ids (20%) and nearest-neighbour searches (10%), ids Zipf(1.1)-distributed. Half-way
 * through, server B is killed with SIGKILL and restarted on the same port with the same log. Every
 * few seconds it prints throughput, errors and the resident memory of the client JVM and both
 * servers; per minute the p50 and p99 latency of each operation. At the end:
 *
 * <ul>
 *   <li>lost acknowledged updates: must be 0. The updates are built to be counted exactly: SGD
 *       with learning rate 1, gradient -1 in column 0 (0 elsewhere) and column 0 starting at 0, so
 *       column 0 of a row is the number of updates applied to it. Each row must hold at least the
 *       acknowledged ones and at most those plus the unacknowledged ones (which may or may not have
 *       been applied);
 *   <li>errors: only while B is down (from the kill until 5 s after it is ready again), each a
 *       {@link ShardException} naming one of B's shards and B's endpoint;
 *   <li>allocator: no leak at close (client side);
 *   <li>RSS after warm-up (the first quarter of the run, at most 60 s): the client JVM and server A
 *       within 10% (max/min) over the run, B within 10% before the kill (and reported after);
 *   <li>throughput after warm-up, in windows of {@value #WINDOW_SECONDS} s, outside the restart: no
 *       window below 50% of the best window before it. A 1-thread baseline measured first in the
 *       same run is printed for the ratio.
 * </ul>
 *
 * <p>Run: {@code bench/soak.sh [seconds]} (default 600; CI runs 60). Exit code 0 when every check
 * passes, 1 otherwise.
 */
public final class SoakBench {
  static final int BASELINE_SECONDS = 10;
  static final int WINDOW_SECONDS = 15;
  static final int GRACE_SECONDS = 5;
  static final String READ_TOKEN = "soak-read-token";
  static final String WRITE_TOKEN = "soak-write-token";

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
    boolean ok = new SoakBench.Run(seconds, threads, rows, dim, intervalSeconds).run();
    System.exit(ok ? 0 : 1);
  }

  /** One shard server process: its arguments (kept for the restart), port and endpoint. */
  static final class Server implements AutoCloseable {
    final String name;
    final List<String> args;
    ChildProcess process;
    String endpoint;

    Server(String name, List<String> args) {
      this.name = name;
      this.args = args;
    }

    void start() throws IOException {
      process = ChildProcess.java("serve-" + name, List.of("-Xms512m", "-Xmx512m"), io.embstore.shard.ServerLauncher.class.getName(), args);
      String ready = process.await("embstore serve: serving");
      endpoint = ready.substring(ready.lastIndexOf(" at ") + 4).trim();
    }

    void kill() throws InterruptedException {
      ProcessHandle h = ProcessHandle.of(process.pid()).orElseThrow();
      h.destroyForcibly();
      h.onExit().join();
      process.close();
    }

    long rssBytes() {
      return ChildProcess.rss(process.pid())[0];
    }

    @Override
    public void close() {
      if (process != null) {
        process.close();
      }
    }
  }

  /** A failed call: when, which operation, and the failure. */
  record Failure(long millis, String op, Throwable error) {}

  static final class Run {
    final int seconds;
    final int threads;
    final long rows;
    final int dim;
    final int intervalSeconds;
    final long t0 = System.nanoTime();
    final List<Failure> failures = new ArrayList<>();
    /** Latency samples (us) per minute per operation: lookup, update, nearest. */
    final List<long[][]> minutes = new ArrayList<>();
    final int[][] counts;
    volatile long killMillis = -1;
    volatile long readyMillis = -1;

    Run(int seconds, int threads, long rows, int dim, int intervalSeconds) {
      this.seconds = seconds;
      this.threads = threads;
      this.rows = rows;
      this.dim = dim;
      this.intervalSeconds = intervalSeconds;
      this.counts = new int[2 * threads + 2][];
    }

    long millis() {
      return (System.nanoTime() - t0) / 1_000_000;
    }

    synchronized void latency(int op, long micros) {
      int minute = (int) (millis() / 60_000);
      while (minutes.size() <= minute) {
        minutes.add(new long[3][]);
      }
      long[][] m = minutes.get(minute);
      if (m[op] == null) {
        m[op] = new long[1];
      }
      long n = m[op][0];
      if (n + 1 >= m[op].length) {
        if (m[op].length > 1 << 21) {
          return; // enough samples for this minute
        }
        m[op] = Arrays.copyOf(m[op], m[op].length * 2 + 16);
      }
      m[op][(int) n + 1] = micros;
      m[op][0] = n + 1;
    }

    boolean run() throws Exception {
      Path work = Files.createTempDirectory("embstore-soak-");
      Path table = work.resolve("t");
      List<long[]> intervals = new ArrayList<>(); // {requests, errors, rss client, rss A, rss B, millis at end, interval ms}
      double baseline;
      long[] lost = {0, 0, 0};
      long lookups;
      long updates;
      long searches;
      Server a = new Server("A", serveArgs(table, work.resolve("wal-a"), "0,1", freePort()));
      Server b = new Server("B", serveArgs(table, work.resolve("wal-b"), "2,3", freePort()));
      RootAllocator root = new RootAllocator();
      try {
        writeTable(table, rows, dim, root);
        a.start();
        b.start();
        List<String> endpoints = List.of(a.endpoint, b.endpoint);
        try (EmbeddingClient one = client(table, endpoints, root)) {
          AtomicBoolean stop1 = new AtomicBoolean();
          AtomicLong n1 = new AtomicLong();
          int[][] c1 = new int[2][(int) rows];
          Thread t = new Thread(() -> work(one, 99, stop1, n1, new AtomicLong(), new AtomicLong(), c1[0], c1[1], this), "soak-baseline");
          long s0 = System.nanoTime();
          t.start();
          Thread.sleep(BASELINE_SECONDS * 1000L);
          stop1.set(true);
          t.join(60_000);
          baseline = n1.get() / ((System.nanoTime() - s0) / 1e9);
          // the baseline's updates count too
          counts[0] = c1[0];
          counts[1] = c1[1];
        }
        System.out.printf(Locale.ROOT, "soak: baseline, 1 client for %d s: %.1f requests/s%n", BASELINE_SECONDS, baseline);
        System.out.printf(Locale.ROOT, "soak: %d s, %d clients, V=%d C=%d, 4 shards on 2 serve processes with --wal and tokens: A %s (shards 0,1), B %s (shards 2,3);"
            + " B killed with SIGKILL at %d s and restarted%n", seconds, threads, rows, dim, a.endpoint, b.endpoint, seconds / 2);
        System.out.println("  t(s)  requests/s  errors  rss client  rss A  rss B (MB)");
        AtomicLong requests = new AtomicLong();
        AtomicLong nUpdates = new AtomicLong();
        AtomicLong nSearches = new AtomicLong();
        AtomicBoolean stop = new AtomicBoolean();
        List<Thread> workers = new ArrayList<>();
        List<EmbeddingClient> clients = new ArrayList<>();
        long start = millis();
        for (int w = 0; w < threads; w++) {
          EmbeddingClient c = client(table, endpoints, root);
          clients.add(c);
          int seed = w;
          int[] acked = new int[(int) rows];
          int[] unacked = new int[(int) rows];
          counts[2 + 2 * w] = acked;
          counts[3 + 2 * w] = unacked;
          Thread th = new Thread(() -> work(c, seed, stop, requests, nUpdates, nSearches, acked, unacked, this), "soak-" + w);
          th.start();
          workers.add(th);
        }
        long end = start + seconds * 1000L;
        long killAt = start + seconds * 500L;
        long prevN = 0;
        int prevE = 0;
        long prevT = start;
        while (millis() < end) {
          long now = millis();
          if (killMillis < 0 && now >= killAt) {
            killMillis = millis();
            b.kill();
            System.out.printf(Locale.ROOT, "%6.0f  B killed (SIGKILL)%n", (killMillis - start) / 1000.0);
            Thread.sleep(2000);
            b.start();
            readyMillis = millis();
            System.out.printf(Locale.ROOT, "%6.0f  B restarted and ready at %s (%d ms after the kill)%n", (readyMillis - start) / 1000.0,
                b.endpoint, readyMillis - killMillis);
            continue;
          }
          long next = Math.min(end, Math.min(prevT + intervalSeconds * 1000L, killMillis < 0 ? killAt : Long.MAX_VALUE));
          Thread.sleep(Math.max(1, next - now));
          now = millis();
          long n = requests.get();
          int e;
          synchronized (failures) {
            e = failures.size();
          }
          long[] iv = {n - prevN, e - prevE, ChildProcess.rss(ProcessHandle.current().pid())[0], a.rssBytes(), b.rssBytes(), now - start, now - prevT};
          prevN = n;
          prevE = e;
          prevT = now;
          if (iv[6] < 500) {
            continue;
          }
          intervals.add(iv);
          System.out.printf(Locale.ROOT, "%6.0f  %10.1f  %6d  %10.1f  %5.1f  %5.1f%n", iv[5] / 1000.0, iv[0] / (iv[6] / 1000.0), iv[1],
              iv[2] / 1048576.0, iv[3] / 1048576.0, iv[4] / 1048576.0);
        }
        stop.set(true);
        for (Thread w : workers) {
          w.join(60_000);
        }
        lookups = requests.get() - nUpdates.get() - nSearches.get();
        updates = nUpdates.get();
        searches = nSearches.get();
        for (EmbeddingClient c : clients) {
          c.close();
        }
        try (EmbeddingClient check = client(table, List.of(a.endpoint, b.endpoint), root)) {
          lost = countCheck(check);
        }
        long[] startEnd = {start, end};
        return verdict(intervals, startEnd, lookups, updates, searches, baseline, lost, a, b, leak(root));
      } finally {
        a.close();
        b.close();
        deleteTree(work);
      }
    }

    private static String leak(RootAllocator root) {
      try {
        root.close();
        return null;
      } catch (IllegalStateException e) {
        return e.getMessage().lines().findFirst().orElse("leak");
      }
    }

    private List<String> serveArgs(Path table, Path wal, String shards, int port) {
      return List.of("--table", table.toString(), "--shards", shards, "--port", Integer.toString(port), "--wal", wal.toString(),
          "--wal-sync", "always", "--optimizer", "sgd", "--lr", "1", "--read-token", READ_TOKEN, "--write-token", WRITE_TOKEN);
    }

    private static int freePort() throws IOException {
      try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
        return s.getLocalPort();
      }
    }

    private EmbeddingClient client(Path table, List<String> endpoints, BufferAllocator root) throws IOException {
      return EmbeddingClient.builder().table(table).endpoints(endpoints).allocator(root).token(WRITE_TOKEN).deadline(Duration.ofSeconds(10)).build();
    }

    /** {rows with fewer applied updates than acknowledged, rows with more than acknowledged + unacknowledged, acknowledged id-updates}. */
    private long[] countCheck(EmbeddingClient c) throws IOException {
      long[] result = {0, 0, 0};
      int chunk = 4096;
      float[] out = new float[chunk * dim];
      for (long from = 0; from < rows; from += chunk) {
        int n = (int) Math.min(chunk, rows - from);
        long[] ids = LongStream.range(from, from + n).toArray();
        float[] got = n == chunk ? out : new float[n * dim];
        c.lookup(ids, got);
        for (int i = 0; i < n; i++) {
          int id = (int) (from + i);
          long acked = 0;
          long unacked = 0;
          for (int k = 0; k < counts.length; k += 2) {
            acked += counts[k][id];
            unacked += counts[k + 1][id];
          }
          long applied = (long) got[i * dim];
          result[2] += acked;
          if (applied < acked) {
            result[0]++;
          } else if (applied > acked + unacked) {
            result[1]++;
          }
        }
      }
      return result;
    }

    private void work(EmbeddingClient client, int seed, AtomicBoolean stop, AtomicLong requests, AtomicLong updates, AtomicLong searches,
        int[] acked, int[] unacked, Run log) {
      SplittableRandom r = new SplittableRandom(seed);
      IdStream zipf = IdStream.zipf(rows, 1.1, 1 << 18, 7 + seed);
      long[] ids = new long[256];
      float[] out = new float[ids.length * dim];
      long[] uids = new long[64];
      float[] grads = new float[uids.length * dim];
      for (int i = 0; i < uids.length; i++) {
        grads[i * dim] = -1f; // column 0 counts the updates of a row (SGD, lr 1)
      }
      long[] one = new long[1];
      while (!stop.get()) {
        int pick = r.nextInt(10);
        int op = pick < 7 ? 0 : pick < 9 ? 1 : 2;
        long t = System.nanoTime();
        try {
          if (op == 0) {
            zipf.next(ids);
            client.lookup(ids, out);
          } else if (op == 1) {
            zipf.next(uids);
            try {
              client.update(uids, grads, 1f);
            } catch (IOException | RuntimeException e) {
              for (long id : uids) {
                unacked[(int) id]++;
              }
              throw e;
            }
            for (long id : uids) {
              acked[(int) id]++;
            }
            updates.incrementAndGet();
          } else {
            zipf.next(one);
            client.nearest(one[0], 10);
            searches.incrementAndGet();
          }
          requests.incrementAndGet();
          if (log != null) {
            log.latency(op, (System.nanoTime() - t) / 1000);
          }
        } catch (IOException | RuntimeException e) {
          if (log != null) {
            synchronized (failures) {
              failures.add(new Failure(millis(), op == 0 ? "lookup" : op == 1 ? "update" : "nearest", e));
            }
          }
          try {
            Thread.sleep(20);
          } catch (InterruptedException ie) {
            return;
          }
        }
      }
    }

    private boolean verdict(List<long[]> intervals, long[] startEnd, long lookups, long updates, long searches, double baseline, long[] lost,
        Server a, Server b, String leak) {
      long start = startEnd[0];
      int warm = Math.min(intervals.size() / 4, 60 / intervalSeconds);
      long killRel = killMillis - start;
      long readyRel = readyMillis - start;
      long graceEnd = readyRel + GRACE_SECONDS * 1000L;
      // errors: only while B is down, naming one of B's shards and B's endpoint
      List<String> unexpected = new ArrayList<>();
      int expected = 0;
      int afterReady = 0;
      synchronized (failures) {
        for (Failure f : failures) {
          boolean inWindow = f.millis() >= killMillis && f.millis() <= readyMillis + GRACE_SECONDS * 1000L;
          boolean namesB = f.error() instanceof ShardException se && (se.shard() == 2 || se.shard() == 3) && b.endpoint.equals(se.endpoint())
              && se.getMessage().contains("shard " + se.shard()) && se.getMessage().contains(b.endpoint);
          if (inWindow && namesB) {
            expected++;
            if (f.millis() > readyMillis) {
              afterReady++;
            }
          } else if (unexpected.size() < 10) {
            unexpected.add(String.format(Locale.ROOT, "%.1f s %s: %s", (f.millis() - start) / 1000.0, f.op(), f.error()));
          }
        }
      }
      // RSS after warm-up: client and A over the run, B before the kill and after its restart
      double[] client = spread(intervals, warm, 2, 0, Long.MAX_VALUE);
      double[] rssA = spread(intervals, warm, 3, 0, Long.MAX_VALUE);
      double[] rssBBefore = spread(intervals, warm, 4, 0, killRel);
      double[] rssBAfter = spread(intervals, 0, 4, graceEnd + 15_000, Long.MAX_VALUE);
      // throughput windows outside the restart
      int per = Math.max(1, (WINDOW_SECONDS + intervalSeconds - 1) / intervalSeconds);
      List<Double> windows = new ArrayList<>();
      List<long[]> run = new ArrayList<>();
      for (int i = warm; i < intervals.size(); i++) {
        long[] iv = intervals.get(i);
        long from = iv[5] - iv[6];
        boolean touchesRestart = iv[5] > killRel && from < graceEnd;
        if (touchesRestart) {
          addWindows(run, per, windows);
          run.clear();
        } else {
          run.add(iv);
        }
      }
      addWindows(run, per, windows);
      double worstDrop = 1;
      double best = 0;
      for (double w : windows) {
        if (best > 0) {
          worstDrop = Math.min(worstDrop, w / best);
        }
        best = Math.max(best, w);
      }
      boolean lostOk = lost[0] == 0 && lost[1] == 0;
      boolean errorsOk = unexpected.isEmpty();
      boolean leakOk = leak == null;
      boolean rssOk = client[2] <= 0.10 && rssA[2] <= 0.10 && rssBBefore[2] <= 0.10;
      boolean throughputOk = !windows.isEmpty() && worstDrop >= 0.5;
      double total = lookups + updates + searches;
      System.out.printf(Locale.ROOT, "soak summary (%d s, %d intervals of %d s, first %d excluded as warm-up; load at the end %s):%n", seconds,
          intervals.size(), intervalSeconds, warm, Measure.loadAverage());
      System.out.printf(Locale.ROOT, "  requests: %d lookups (256 ids), %d updates (64 ids), %d nearest (k 10); %.1f requests/s with %d clients;"
          + " baseline 1 client %.1f requests/s (ratio %.2f)%n", lookups, updates, searches, total / seconds, threads, baseline,
          baseline == 0 ? 0 : total / seconds / baseline);
      System.out.printf(Locale.ROOT, "  restart: B killed at %.1f s, ready again at %.1f s (%d ms down)%n", killRel / 1000.0, readyRel / 1000.0,
          readyMillis - killMillis);
      System.out.printf(Locale.ROOT, "  acknowledged updates: %d id-updates; rows missing acknowledged ones: %d; rows with more than acknowledged + unacknowledged: %d%n",
          lost[2], lost[0], lost[1]);
      System.out.printf(Locale.ROOT, "  errors: %d while B was down (each naming B's shard and endpoint; %d of them in the %d s after B was ready,"
          + " while the clients' channels reconnect), %d otherwise %s%n", expected, afterReady, GRACE_SECONDS, unexpected.size(),
          unexpected.isEmpty() ? "" : unexpected);
      System.out.printf(Locale.ROOT, "  allocator at close: %s%n", leakOk ? "no leak" : "LEAK " + leak);
      System.out.printf(Locale.ROOT, "  RSS after warm-up (MB, min-max, spread; limit 10%%): client %.1f-%.1f %.1f%%, A %.1f-%.1f %.1f%%,"
          + " B before the kill %.1f-%.1f %.1f%%, B after the restart %s%n",
          client[0], client[1], 100 * client[2], rssA[0], rssA[1], 100 * rssA[2], rssBBefore[0], rssBBefore[1], 100 * rssBBefore[2],
          rssBAfter[0] == 0 ? "(too short to judge)" : String.format(Locale.ROOT, "%.1f-%.1f %.1f%% (reported)", rssBAfter[0], rssBAfter[1], 100 * rssBAfter[2]));
      System.out.printf(Locale.ROOT, "  throughput after warm-up outside the restart, %d windows of %d s: min %.1f, max %.1f requests/s;"
          + " lowest window / best earlier window %.0f%% (limit 50%%)%n", windows.size(), per * intervalSeconds,
          windows.stream().mapToDouble(Double::doubleValue).min().orElse(0), windows.stream().mapToDouble(Double::doubleValue).max().orElse(0),
          100 * worstDrop);
      System.out.println("  latency per minute (us): minute  lookup p50 p99 (n)  update p50 p99 (n)  nearest p50 p99 (n)");
      synchronized (this) {
        for (int m = 0; m < minutes.size(); m++) {
          StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "    %2d", m + 1));
          for (int op = 0; op < 3; op++) {
            long[] s = minutes.get(m)[op];
            if (s == null || s[0] == 0) {
              line.append("   -");
              continue;
            }
            long[] v = Arrays.copyOfRange(s, 1, (int) s[0] + 1);
            Arrays.sort(v);
            line.append(String.format(Locale.ROOT, "   %,d %,d (%d)", v[v.length / 2], v[(int) Math.min(v.length - 1, (long) (v.length * 0.99))], v.length));
          }
          System.out.println(line);
        }
      }
      boolean ok = lostOk && errorsOk && leakOk && rssOk && throughputOk;
      System.out.printf(Locale.ROOT, "  verdict: %s (lost updates %s, errors %s, leak %s, rss %s, throughput %s)%n", ok ? "PASS" : "FAIL",
          lostOk ? "ok" : "FAIL", errorsOk ? "ok" : "FAIL", leakOk ? "ok" : "FAIL", rssOk ? "ok" : "FAIL", throughputOk ? "ok" : "FAIL");
      return ok;
    }

    private static void addWindows(List<long[]> run, int per, List<Double> windows) {
      for (int i = 0; i + per <= run.size(); i += per) {
        long n = 0;
        long ms = 0;
        for (int j = i; j < i + per; j++) {
          n += run.get(j)[0];
          ms += run.get(j)[6];
        }
        windows.add(n / (ms / 1000.0));
      }
    }

    /** {min MB, max MB, (max - min) / min} of column {@code k} over intervals from index {@code from} ending in [after, before). */
    private static double[] spread(List<long[]> intervals, int from, int k, long after, long before) {
      long min = Long.MAX_VALUE;
      long max = 0;
      for (int i = from; i < intervals.size(); i++) {
        long[] iv = intervals.get(i);
        if (iv[5] < after || iv[5] >= before || iv[k] <= 0) {
          continue;
        }
        min = Math.min(min, iv[k]);
        max = Math.max(max, iv[k]);
      }
      return min == Long.MAX_VALUE ? new double[] {0, 0, 0} : new double[] {min / 1048576.0, max / 1048576.0, (max - min) / (double) min};
    }
  }



  /** The table: column 0 of every row 0 (it counts the updates), the other columns random. */
  private static void writeTable(Path dir, long rows, int dim, BufferAllocator allocator) throws IOException {
    SplittableRandom r = new SplittableRandom(42);
    try (TableWriter w = TableWriter.create(dir, rows, dim, 4, "modulo", allocator)) {
      w.createdBy("soak");
      int chunk = 4096;
      ByteBuffer buf = ByteBuffer.allocateDirect(chunk * dim * 4).order(ByteOrder.LITTLE_ENDIAN);
      for (long id = 0; id < rows; id += chunk) {
        int n = (int) Math.min(chunk, rows - id);
        buf.clear();
        for (int i = 0; i < n * dim; i++) {
          buf.putFloat(i % dim == 0 ? 0f : (float) (r.nextDouble() * 2 - 1));
        }
        buf.flip();
        w.appendInIdOrder(buf, n);
      }
      TableManifest m = w.commit();
      System.out.printf(Locale.ROOT, "soak: wrote table v%d in %s%n", m.tableVersion(), dir);
    }
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
