package io.embstore.bench.wal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.embstore.bench.common.ChildProcess;
import io.embstore.bench.common.IdStream;
import io.embstore.bench.common.Measure;
import io.embstore.bench.common.Rows;
import io.embstore.format.TableWriter;
import io.embstore.shard.EmbeddingClient;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * Update throughput of a shard server with a write-ahead log against the same server without one,
 * measured in the same run: a shard server in a JVM of its own ({@link
 * io.embstore.shard.ServerLauncher}, what {@code embstore serve} runs; both shards of a 2-shard
 * table, row-wise Adagrad), W writer threads of one {@link EmbeddingClient} in this JVM calling
 * {@code update} with B uniform random ids in a loop. Modes: no log, {@code --wal-sync always}
 * (group commit), {@code --wal-sync 10ms}, {@code --wal-sync none}; each round runs every mode once
 * (a fresh server and log directory each), and each figure is the median over the rounds. The log
 * goes to {@code java.io.tmpdir}'s disk. Also printed: update records per fsync (the group
 * commit's batching, from the server's {@code stats}).
 *
 * <pre>
 * bench/run wal.WalBench                                # 200,000 x 128, B = 64 and 512, 4 writers, 3 rounds
 * bench/run wal.WalBench --batches 64 --writers 1,4 --rounds 5 --ms 3000
 * </pre>
 */
public final class WalBench {
  private WalBench() {}

  static final List<String> MODES = List.of("no log", "always", "10ms", "none");

  public static void main(String[] args) throws Exception {
    Map<String, String> opt = new LinkedHashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      opt.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    long rows = Long.parseLong(opt.getOrDefault("rows", "200000"));
    int dim = Integer.parseInt(opt.getOrDefault("dim", "128"));
    int[] batches = Arrays.stream(opt.getOrDefault("batches", "64,512").split(",")).mapToInt(Integer::parseInt).toArray();
    int[] writers = Arrays.stream(opt.getOrDefault("writers", "4").split(",")).mapToInt(Integer::parseInt).toArray();
    int rounds = Integer.parseInt(opt.getOrDefault("rounds", "3"));
    long warmupMs = Long.parseLong(opt.getOrDefault("warmup-ms", "2000"));
    long ms = Long.parseLong(opt.getOrDefault("ms", "2000"));
    Path work = Files.createTempDirectory("embstore-walbench");
    Path table = work.resolve("t");
    System.out.printf(Locale.ROOT, "WalBench: table %d x %d (2 shards), batches %s, writers %s, %d rounds, load %s%n", rows, dim,
        Arrays.toString(batches), Arrays.toString(writers), rounds, Measure.loadAverage());
    try (BufferAllocator root = new RootAllocator()) {
      writeTable(table, rows, dim, root);
      Measure m = new Measure(warmupMs, ms, 1);
      // results[batch][writers][mode] = per-round rows/s
      Map<String, List<double[]>> figures = new LinkedHashMap<>();
      for (int round = 0; round < rounds; round++) {
        for (int b : batches) {
          for (int w : writers) {
            for (String mode : MODES) {
              double[] f = run(table, work.resolve("wal-" + round + "-" + b + "-" + w + "-" + mode.replace(' ', '_')), mode, b, w, dim,
                  rows, m, root, round);
              figures.computeIfAbsent(b + "/" + w + "/" + mode, k -> new ArrayList<>()).add(f);
              System.out.printf(Locale.ROOT, "  round %d  B=%-4d writers=%d  %-7s %,12.0f rows/s  p50 %,8.0f us  p99 %,8.0f us  records/fsync %s%n",
                  round, b, w, mode, f[0], f[1], f[2], f[3] > 0 ? String.format(Locale.ROOT, "%.1f", f[3]) : "-");
            }
          }
        }
      }
      System.out.printf(Locale.ROOT, "%nMedians over %d rounds (load at the end %s):%n", rounds, Measure.loadAverage());
      System.out.println("  B     writers  mode      rows/s        x no log   p50 us    p99 us   records/fsync");
      for (int b : batches) {
        for (int w : writers) {
          double base = median(figures.get(b + "/" + w + "/no log"), 0);
          for (String mode : MODES) {
            List<double[]> fs = figures.get(b + "/" + w + "/" + mode);
            double rate = median(fs, 0);
            System.out.printf(Locale.ROOT, "  %-5d %-8d %-8s %,12.0f   %5.2f   %8.0f  %8.0f   %s%n", b, w, mode, rate, rate / base,
                median(fs, 1), median(fs, 2), median(fs, 3) > 0 ? String.format(Locale.ROOT, "%.1f", median(fs, 3)) : "-");
          }
        }
      }
    } finally {
      try (Stream<Path> files = Files.walk(work)) {
        for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
  }

  private static double median(List<double[]> fs, int k) {
    double[] v = fs.stream().mapToDouble(f -> f[k]).sorted().toArray();
    return v[v.length / 2];
  }

  /** One mode: rows/s, p50 us, p99 us, update records per fsync (0 without a log). */
  private static double[] run(Path table, Path wal, String mode, int b, int w, int dim, long rows, Measure m,
      BufferAllocator root, int round) throws Exception {
    List<String> args = new ArrayList<>(List.of("--table", table.toString(), "--optimizer", "rowwise-adagrad", "--lr", "0.05", "--port", "0"));
    if (!mode.equals("no log")) {
      args.addAll(List.of("--wal", wal.toString(), "--wal-sync", mode));
    }
    try (ChildProcess server = ChildProcess.java("serve-" + mode.replace(' ', '-'), List.of("-Xmx1g"), io.embstore.shard.ServerLauncher.class.getName(), args);
        BufferAllocator a = root.newChildAllocator("walbench-client", 0, Long.MAX_VALUE)) {
      String ready = server.await("embstore serve: serving");
      String endpoint = ready.substring(ready.lastIndexOf(" at ") + 4).trim();
      double[] f = new double[4];
      try (EmbeddingClient client = EmbeddingClient.builder().table(table).endpoints(List.of(endpoint)).allocator(a).build()) {
        IdStream ids = IdStream.uniform(rows, 1 << 20, 17 + round);
        Measure.Result r = m.threads(w, b, t -> {
          IdStream mine = ids.fork(t);
          long[] batch = new long[b];
          float[] grads = new float[b * dim];
          SplittableRandom rnd = new SplittableRandom(t);
          for (int i = 0; i < grads.length; i++) {
            grads[i] = (float) (rnd.nextDouble() - 0.5) * 0.01f;
          }
          return () -> {
            mine.next(batch);
            client.update(batch, grads, 0.05f);
          };
        });
        f[0] = r.rowsPerSec();
        f[1] = r.p50Us();
        f[2] = r.p99Us();
        long[] walCounts = walCounts(endpoint, a);
        f[3] = walCounts[1] == 0 ? 0 : (double) walCounts[0] / walCounts[1];
      }
      return f;
    }
  }

  /** Update records and fsyncs of the server's logs, summed over its shards (from {@code stats}). */
  private static long[] walCounts(String endpoint, BufferAllocator a) throws Exception {
    try (FlightClient c = FlightClient.builder(a, new Location(endpoint)).build()) {
      var it = c.doAction(new Action("stats", new byte[0]));
      JsonNode n = new ObjectMapper().readTree(it.next().getBody());
      long records = 0;
      long syncs = 0;
      for (JsonNode s : n.get("shards")) {
        records += s.path("walRecords").asLong();
        syncs += s.path("walSyncs").asLong();
      }
      return new long[] {records, syncs};
    }
  }

  private static void writeTable(Path table, long rows, int dim, BufferAllocator root) throws IOException {
    try (TableWriter w = TableWriter.create(table, rows, dim, 2, "modulo", root)) {
      w.createdBy("WalBench");
      int chunk = 4096;
      ByteBuffer buf = ByteBuffer.allocateDirect(chunk * dim * 4).order(ByteOrder.LITTLE_ENDIAN);
      for (long from = 0; from < rows; from += chunk) {
        int n = (int) Math.min(chunk, rows - from);
        buf.clear();
        for (long id = from; id < from + n; id++) {
          Rows.put(1, id, dim, buf);
        }
        buf.flip();
        w.appendInIdOrder(buf, n);
      }
      w.commit();
    }
  }


}
