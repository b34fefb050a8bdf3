package io.embstore.bench.lookup;

import io.embstore.bench.common.ChildProcess;
import io.embstore.bench.common.IdStream;
import io.embstore.bench.common.Measure;
import io.embstore.format.TableWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Lookups and sparse updates through embstore (one {@code EmbeddingClient}, 2 {@code ShardServer}s
 * on 127.0.0.1) against the baselines of {@code docs/BENCHMARKS.md}, all measured in the same run:
 *
 * <ul>
 *   <li>the raw-socket ceiling: a blocking socket server (separate JVM) that answers a request of B
 *       ids with B rows from a prefilled buffer, no gather;
 *   <li>the gRPC ceiling: the same over bare gRPC-Java ({@link GrpcCeiling}: one bidi stream, the
 *       server answering on the event loop), the transport under Arrow Flight without Flight;
 *   <li>the in-process gather: B rows copied by id from one contiguous off-heap matrix, 1 and 2
 *       threads;
 *   <li>Redis MGET (Jedis; rows as binary strings) when {@code redis-server} is on PATH.
 * </ul>
 *
 * <p>Run: {@code bench/run lookup.LookupBench} (quick, about 2-3 minutes) or {@code bench/run
 * lookup.LookupBench --full}; {@code --help} lists the options (sizes, batches, id distributions,
 * durations, which systems). Every figure is the median of {@code --reps} timed repetitions after a
 * warm-up; ratios are taken between figures of this run only.
 */
@Command(name = "LookupBench", mixinStandardHelpOptions = true, description = "Lookup/update benchmark of embstore vs baselines.")
public final class LookupBench implements Callable<Integer> {
  static final long SEED = 42;

  @Option(names = "--sizes", split = ",", description = "VxC table sizes (default: ${DEFAULT-VALUE})")
  List<String> sizes = List.of("1000000x128", "50257x768");

  @Option(names = "--batches", split = ",", description = "batch sizes B (default: ${DEFAULT-VALUE})")
  List<Integer> batches = List.of(1, 64, 512, 4096);

  @Option(names = "--dists", split = ",", description = "id distributions: uniform, zipf (s=1.1) (default: ${DEFAULT-VALUE})")
  List<String> dists = List.of("uniform", "zipf");

  @Option(names = "--systems", split = ",", description = "raw, grpc, gather, redis, embstore, update (default: all)")
  List<String> systems = List.of("raw", "grpc", "gather", "redis", "embstore", "update");

  @Option(names = "--warmup-ms", description = "warm-up per configuration (default: ${DEFAULT-VALUE})")
  long warmupMs = 300;

  @Option(names = "--duration-ms", description = "one timed repetition (default: ${DEFAULT-VALUE})")
  long durationMs = 400;

  @Option(names = "--reps", description = "timed repetitions; figures are their medians (default: ${DEFAULT-VALUE})")
  int reps = 3;

  @Option(names = "--jit-warmup-ms", description = "before embstore's figures of a size, every embstore path of the run in turn"
      + " for this long, results discarded, so that the client and both servers are JIT-compiled (default: ${DEFAULT-VALUE})")
  long jitWarmupMs = 0;

  @Option(names = "--full", description = "longer runs: JIT warm-up 40 s, warm-up 3 s per configuration, 5 repetitions of 2 s")
  boolean full;

  @Option(names = "--window", description = "calls in flight for the async B=1 run (default: ${DEFAULT-VALUE})")
  int window = 256;

  @Option(names = "--update-windows", split = ",", description = "updates in flight for the async B=512 update runs (default: ${DEFAULT-VALUE})")
  List<Integer> updateWindows = List.of(4);

  @Option(names = "--servers", description = "where the shard servers run: process (2 JVMs) or inproc (default: ${DEFAULT-VALUE})")
  String servers = "process";

  @Option(names = "--server-heap", description = "-Xmx of each server JVM (default: ${DEFAULT-VALUE})")
  String serverHeap = "1g";

  @Option(names = "--tmp", description = "where tables are written (and deleted) (default: ${DEFAULT-VALUE})")
  Path tmp = Path.of(System.getProperty("java.io.tmpdir"));

  final List<Figure> figures = new ArrayList<>();
  final List<String> memory = new ArrayList<>();
  /** CPU time per call of the embstore measurements (client + server processes). */
  final List<String> cpu = new ArrayList<>();
  final PrintStream out = System.out;

  /** One measured configuration. */
  record Figure(String size, int rowBytes, String system, String dist, int batch, Measure.Result r) {}

  public static void main(String[] args) {
    System.exit(new CommandLine(new LookupBench()).execute(args));
  }

  @Override
  public Integer call() throws Exception {
    if (full) {
      jitWarmupMs = 40_000;
      warmupMs = 3000;
      durationMs = 2000;
      reps = 5;
    }
    Measure m = new Measure(warmupMs, durationMs, reps);
    out.printf(Locale.ROOT, "# LookupBench: embstore JIT warm-up %d ms; warm-up %d ms, %d x %d ms, medians; %d cores; servers: %s%n",
        jitWarmupMs, warmupMs, reps, durationMs, Runtime.getRuntime().availableProcessors(), servers);
    try (BufferAllocator root = new RootAllocator()) {
      for (String size : sizes) {
        String[] vc = size.toLowerCase(Locale.ROOT).split("x");
        runSize(root, m, Long.parseLong(vc[0]), Integer.parseInt(vc[1]));
      }
    }
    out.printf("%n# load average at the end: %s%n", Measure.loadAverage());
    printAll();
    return 0;
  }

  private void runSize(BufferAllocator root, Measure m, long rows, int dim) throws Exception {
    String size = String.format(Locale.ROOT, "%dx%d", rows, dim);
    int rowBytes = dim * 4;
    int maxBatch = batches.stream().max(Comparator.naturalOrder()).orElse(1);
    out.printf(Locale.ROOT, "%n## V=%,d x C=%d: %d-byte rows, %.1f MB matrix; load average %s%n", rows, dim, rowBytes,
        rows * rowBytes / 1e6, Measure.loadAverage());
    Map<String, IdStream> ids = new LinkedHashMap<>();
    for (String d : dists) {
      IdStream s = IdStream.of(d, rows, Math.max(1 << 21, 64 * maxBatch), SEED);
      ids.put(d, s);
      out.printf(Locale.ROOT, "ids %s: hottest 1%% of rows get %.0f%% of lookups%n", d, 100 * s.hotShare(rows, 0.01));
    }

    // Two server JVMs per baseline: the ceiling is one connection to the first (BENCHMARKS.md's
    // definition); the fan-out variant splits each batch over both, like a 2-shard lookup (requests
    // sent, then replies read). The baseline servers do not look at the ids, so one distribution is enough.
    IdStream anyIds = ids.values().iterator().next();
    if (systems.contains("raw")) {
      try (ChildProcess p0 = server("raw", rowBytes);
          ChildProcess p1 = server("raw", rowBytes);
          RawSocketServer.Client c0 = new RawSocketServer.Client("127.0.0.1", port(p0.await("endpoint")), rowBytes);
          RawSocketServer.Client c1 = new RawSocketServer.Client("127.0.0.1", port(p1.await("endpoint")), rowBytes)) {
        baseline(m, size, rowBytes, "raw-socket", anyIds, c0, c1);
      }
    }
    if (systems.contains("grpc")) {
      // The same shapes over bare gRPC (GrpcCeiling): what the transport under Flight costs by itself.
      try (ChildProcess p0 = server("grpc", rowBytes);
          ChildProcess p1 = server("grpc", rowBytes);
          GrpcCeiling.Client c0 = new GrpcCeiling.Client("127.0.0.1", port(p0.await("endpoint")));
          GrpcCeiling.Client c1 = new GrpcCeiling.Client("127.0.0.1", port(p1.await("endpoint")))) {
        baseline(m, size, rowBytes, "grpc", anyIds, c0, c1);
      }
    }

    if (systems.contains("gather")) {
      try (InProcessGather g = new InProcessGather(root, rows, dim, SEED)) {
        for (var e : ids.entrySet()) {
          for (int b : batches) {
            for (int threads : new int[] {1, 2}) {
              InProcessGather.Output[] outs = new InProcessGather.Output[threads];
              try {
                for (int t = 0; t < threads; t++) {
                  outs[t] = g.new Output(b);
                }
                Measure.Result r = m.threads(threads, b, t -> {
                  IdStream s = e.getValue().fork(t + 1);
                  long[] batch = new long[b];
                  InProcessGather.Output o = outs[t];
                  return () -> {
                    s.next(batch);
                    o.gather(batch);
                  };
                });
                record(size, rowBytes, "gather " + threads + " thread" + (threads > 1 ? "s" : ""), e.getKey(), b, r);
              } finally {
                for (InProcessGather.Output o : outs) {
                  if (o != null) {
                    o.close();
                  }
                }
              }
            }
          }
        }
      }
    }

    if (systems.contains("embstore") || systems.contains("update")) {
      Path dir = Files.createTempDirectory(tmp, "embstore-bench-");
      try {
        Path table = dir.resolve("table");
        long t0 = System.nanoTime();
        writeTable(table, rows, dim, root);
        out.printf(Locale.ROOT, "table written in %.1f s (%s)%n", (System.nanoTime() - t0) / 1e9, table);
        try (EmbstoreSystem es = EmbstoreSystem.start(table, servers.equals("process"), serverHeap, root, out)) {
          es.check(ids.values().iterator().next(), Math.min(maxBatch, 512));
          warmJit(es, ids.values().iterator().next());
          if (systems.contains("embstore")) {
            for (var e : ids.entrySet()) {
              for (int b : batches) {
                record(size, rowBytes, "embstore lookup", e.getKey(), b, es.lookupSync(e.getValue().fork(1), b, m));
                cpu(es, size, "embstore lookup", e.getKey(), b);
              }
              if (batches.contains(1)) {
                record(size, rowBytes, "embstore async x" + window, e.getKey(), 1, es.lookupAsync(e.getValue().fork(2), 1, window, m));
                cpu(es, size, "embstore async x" + window, e.getKey(), 1);
              }
              if (batches.contains(64)) {
                record(size, rowBytes, "embstore async x8", e.getKey(), 64, es.lookupAsync(e.getValue().fork(3), 64, 8, m));
                cpu(es, size, "embstore async x8", e.getKey(), 64);
              }
            }
          }
          memory.addAll(es.memory(size));
          if (systems.contains("update")) {
            for (var e : ids.entrySet()) {
              for (int b : batches) {
                if (b >= 64) {
                  record(size, rowBytes, "embstore update", e.getKey(), b, es.updateSync(e.getValue().fork(4), b, m));
                  cpu(es, size, "embstore update", e.getKey(), b);
                }
              }
              if (batches.contains(512)) {
                for (int w : updateWindows) {
                  record(size, rowBytes, "embstore update async x" + w, e.getKey(), 512, es.updateAsync(e.getValue().fork(5), 512, w, m));
                  cpu(es, size, "embstore update async x" + w, e.getKey(), 512);
                }
              }
            }
            memory.addAll(es.memory(size + " after updates"));
          }
        }
      } finally {
        deleteTree(dir);
      }
    }

    if (systems.contains("redis")) {
      Optional<String> bin = RedisPeer.binary();
      if (bin.isEmpty()) {
        out.println("redis: skipped (no redis-server on PATH)");
      } else {
        long t0 = System.nanoTime();
        try (RedisPeer redis = RedisPeer.start(bin.get(), rows, dim, SEED)) {
          out.printf(Locale.ROOT, "redis loaded in %.1f s%n", (System.nanoTime() - t0) / 1e9);
          try (RedisPeer.Reader reader = redis.new Reader()) {
            for (var e : ids.entrySet()) {
              for (int b : batches) {
                IdStream s = e.getValue().fork(1);
                long[] batch = new long[b];
                record(size, rowBytes, "redis MGET", e.getKey(), b, m.sync(b, () -> {
                  s.next(batch);
                  reader.mget(batch);
                }));
                if (b <= 512) {
                  int depth = 16;
                  long[] deep = new long[b * depth];
                  record(size, rowBytes, "redis MGET pipelined x" + depth, e.getKey(), b, m.sync(b * depth, () -> {
                    s.next(deep);
                    reader.pipelined(deep, depth);
                  }));
                }
              }
            }
          }
          long used = redis.usedMemory();
          long[] rss = ChildProcess.rss(redis.pid());
          double raw = rows * (double) rowBytes;
          memory.add(String.format(Locale.ROOT, "%s redis: used_memory %.1f MB (%.2f x raw %.1f MB), RSS %.1f MB (%.2f x), peak RSS %.1f MB",
              size, used / 1e6, used / raw, raw / 1e6, rss[0] / 1e6, rss[0] / raw, rss[1] / 1e6));
        }
      }
    }
  }

  /** A baseline's client: a request for ids[from, to) and the reply of its n rows, sent and read apart. */
  interface BaselineClient {
    void send(long[] ids, int from, int to) throws Exception;

    void receive(int n) throws Exception;
  }

  /** Records {@code "<name> ceiling"} (one server) and {@code "<name> 2 servers"} (each batch split over both). */
  private void baseline(Measure m, String size, int rowBytes, String name, IdStream ids, BaselineClient c0, BaselineClient c1)
      throws Exception {
    for (int b : batches) {
      IdStream s = ids.fork(1);
      long[] batch = new long[b];
      record(size, rowBytes, name + " ceiling", "-", b, m.sync(b, () -> {
        s.next(batch);
        c0.send(batch, 0, b);
        c0.receive(b);
      }));
      if (b >= 2) {
        int half = b / 2;
        record(size, rowBytes, name + " 2 servers", "-", b, m.sync(b, () -> {
          s.next(batch);
          c0.send(batch, 0, half);
          c1.send(batch, half, b);
          c0.receive(half);
          c1.receive(b - half);
        }));
      }
    }
  }

  /**
   * Runs every embstore path that this run measures (each batch size, the async lookups, the
   * updates) in turn, three rounds, for {@code --jit-warmup-ms} in all; results are discarded. Why:
   * three JVMs compile the gRPC/Flight path on 2 cores, and a per-configuration warm-up of seconds
   * leaves them half-compiled (blocking B=1 lookups: 2,370/s after 8 s, 10,549/s after 40 s).
   */
  private void warmJit(EmbstoreSystem es, IdStream ids) throws Exception {
    if (jitWarmupMs <= 0) {
      return;
    }
    List<Measure.Call> paths = new ArrayList<>();
    Measure[] slice = new Measure[1];
    if (systems.contains("embstore")) {
      for (int b : batches) {
        paths.add(() -> es.lookupSync(ids.fork(11), b, slice[0]));
      }
      paths.add(() -> es.lookupAsync(ids.fork(12), 1, window, slice[0]));
      paths.add(() -> es.lookupAsync(ids.fork(13), 64, 8, slice[0]));
    }
    if (systems.contains("update")) {
      for (int b : batches) {
        if (b >= 64) {
          paths.add(() -> es.updateSync(ids.fork(14), b, slice[0]));
        }
      }
      for (int w : updateWindows) {
        paths.add(() -> es.updateAsync(ids.fork(15), 512, w, slice[0]));
      }
    }
    int rounds = 3;
    slice[0] = new Measure(0, Math.max(1, jitWarmupMs / (rounds * paths.size())), 1);
    long t0 = System.nanoTime();
    for (int r = 0; r < rounds; r++) {
      for (Measure.Call p : paths) {
        p.run();
      }
    }
    out.printf(Locale.ROOT, "JIT warm-up: %d embstore paths x %d rounds in %.1f s%n", paths.size(), rounds, (System.nanoTime() - t0) / 1e9);
  }

  /** A baseline server JVM of {@link ServerMain}: {@code raw} or {@code grpc}. */
  private static ChildProcess server(String mode, int rowBytes) throws IOException {
    return ChildProcess.java(mode + "-server", List.of("-Xmx256m"), ServerMain.class.getName(), List.of(mode, Integer.toString(rowBytes)));
  }

  private static int port(String endpoint) {
    return Integer.parseInt(endpoint.substring(endpoint.lastIndexOf(':') + 1));
  }



  void cpu(EmbstoreSystem es, String size, String system, String dist, int batch) {
    cpu.add(String.format(Locale.ROOT, "%-11s %-26s %-8s %5d %10.1f us/call", size, system, dist, batch, es.cpuPerCallUs()));
  }

  void record(String size, int rowBytes, String system, String dist, int batch, Measure.Result r) {
    Figure f = new Figure(size, rowBytes, system, dist, batch, r);
    figures.add(f);
    out.println(line(f));
  }

  private static String header() {
    return String.format(Locale.ROOT, "%-11s %-26s %-8s %5s %12s %9s %9s %9s", "size", "system", "ids", "B", "rows/s", "MB/s", "p50 us", "p99 us");
  }

  private static String line(Figure f) {
    return String.format(Locale.ROOT, "%-11s %-26s %-8s %5d %,12.0f %,9.0f %9.1f %9.1f", f.size, f.system, f.dist, f.batch,
        f.r.rowsPerSec(), f.r.mbPerSec(f.rowBytes), f.r.p50Us(), f.r.p99Us());
  }

  private Optional<Figure> find(String size, String system, String dist, int batch) {
    return figures.stream()
        .filter(f -> f.size.equals(size) && f.system.equals(system) && (f.dist.equals(dist) || f.dist.equals("-")) && f.batch == batch)
        .findFirst();
  }

  private void printAll() {
    out.printf("%n# All figures (medians)%n%s%n", header());
    figures.forEach(f -> out.println(line(f)));
    out.printf("%n# Ratios (rows/s of embstore lookup over the baseline, same size, ids and B)%n");
    out.printf(Locale.ROOT, "%-11s %-8s %5s %14s %14s %14s %14s %14s %14s%n", "size", "ids", "B", "/raw ceiling", "/raw 2 serv.", "/grpc 2 serv.",
        "/gather 1T", "/redis MGET", "/redis pipel.");
    for (Figure f : figures) {
      if (!f.system.equals("embstore lookup")) {
        continue;
      }
      out.printf(Locale.ROOT, "%-11s %-8s %5d %14s %14s %14s %14s %14s %14s%n", f.size, f.dist, f.batch,
          ratio(f, find(f.size, "raw-socket ceiling", f.dist, f.batch)),
          ratio(f, find(f.size, "raw-socket 2 servers", f.dist, f.batch)),
          ratio(f, find(f.size, "grpc 2 servers", f.dist, f.batch)),
          ratio(f, find(f.size, "gather 1 thread", f.dist, f.batch)),
          ratio(f, find(f.size, "redis MGET", f.dist, f.batch)),
          ratio(f, find(f.size, "redis MGET pipelined x16", f.dist, f.batch)));
    }
    if (!cpu.isEmpty()) {
      out.printf("%n# CPU per call (client + server processes, user + system, warm-up included; robust to other load)%n");
      cpu.forEach(out::println);
    }
    out.printf("%n# Memory%n");
    memory.forEach(out::println);
    out.printf("%n# Goals%n");
    for (Figure f : figures) {
      if (f.system.equals("embstore lookup") && f.batch == 512) {
        Optional<Figure> raw = find(f.size, "raw-socket ceiling", f.dist, 512);
        raw.ifPresent(r -> goal(String.format(Locale.ROOT, "%s %s B=512 lookup >= 0.70 x raw-socket ceiling", f.size, f.dist),
            f.r.rowsPerSec() / r.r.rowsPerSec(), 0.70, "x ceiling"));
      }
      if (f.system.startsWith("embstore async x") && f.batch == 1) {
        goal(String.format(Locale.ROOT, "%s %s B=1 async lookups/s >= 150,000", f.size, f.dist), f.r.rowsPerSec(), 150_000, "lookups/s");
      }
      if (f.system.equals("embstore lookup") && f.batch == 64 && f.rowBytes == 3072) {
        goalBelow(String.format(Locale.ROOT, "%s %s B=64 p99 < 1000 us", f.size, f.dist), f.r.p99Us(), 1000, "us");
      }
      if (f.system.startsWith("embstore update") && f.batch == 512 && f.rowBytes == 512) {
        goal(String.format(Locale.ROOT, "%s %s %s B=512 >= 1 M rows/s", f.size, f.dist, f.system), f.r.rowsPerSec(), 1e6, "rows/s");
      }
    }
  }

  private void goal(String what, double value, double target, String unit) {
    out.printf(Locale.ROOT, "%-64s %,14.2f %-10s %s%n", what, value, unit, value >= target ? "MET" : "MISSED");
  }

  private void goalBelow(String what, double value, double target, String unit) {
    out.printf(Locale.ROOT, "%-64s %,14.2f %-10s %s%n", what, value, unit, value < target ? "MET" : "MISSED");
  }

  private static String ratio(Figure f, Optional<Figure> base) {
    return base.map(b -> String.format(Locale.ROOT, "%.2f", f.r.rowsPerSec() / b.r.rowsPerSec())).orElse("-");
  }

  /** A 2-shard table (modulo partitioner) of the seeded matrix. */
  static void writeTable(Path dir, long rows, int dim, BufferAllocator root) throws IOException {
    int chunk = 4096;
    ByteBuffer b = ByteBuffer.allocateDirect(chunk * dim * 4).order(ByteOrder.LITTLE_ENDIAN);
    try (BufferAllocator a = root.newChildAllocator("bench-table-writer", 0, Long.MAX_VALUE);
        TableWriter w = TableWriter.create(dir, rows, dim, 2, "modulo", a)) {
      for (long id = 0; id < rows; id += chunk) {
        int n = (int) Math.min(chunk, rows - id);
        b.clear();
        for (int i = 0; i < n; i++) {
          io.embstore.bench.common.Rows.put(SEED, id + i, dim, b);
        }
        b.flip();
        w.appendInIdOrder(b, n);
      }
      w.createdBy("LookupBench");
      w.commit();
    }
  }

  static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }
}
