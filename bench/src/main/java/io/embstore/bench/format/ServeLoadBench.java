package io.embstore.bench.format;

import io.embstore.format.TableWriter;
import io.embstore.shard.ShardServer;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * How long a shard server takes to load a table from the local disk (every shard into memory,
 * checksums checked; Flight server started and closed) next to reading the same files into memory
 * ({@code FileChannel} reads into a direct buffer), in the same run, page cache warm. It uses only
 * APIs that every build since issue 2 has, so {@code bench/ab-main.sh} runs it on the {@code main}
 * build and on this one (the A/B of "a local serve keeps today's speed").
 *
 * <p>Run: {@code bench/run io.embstore.bench.format.ServeLoadBench [--rows 4000000] [--dim 64]
 * [--shards 4] [--reps 5] [--dir /tmp/embstore-serve-load]}.
 */
public final class ServeLoadBench {
  private ServeLoadBench() {}

  public static void main(String[] args) throws Exception {
    long rows = 4_000_000L;
    int dim = 64;
    int shards = 4;
    int reps = 5;
    Path dir = Paths.get("/tmp/embstore-serve-load");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--rows" -> rows = Long.parseLong(args[++i]);
        case "--dim" -> dim = Integer.parseInt(args[++i]);
        case "--shards" -> shards = Integer.parseInt(args[++i]);
        case "--reps" -> reps = Integer.parseInt(args[++i]);
        case "--dir" -> dir = Paths.get(args[++i]);
        default -> throw new IllegalArgumentException("Unknown argument " + args[i]);
      }
    }
    Path table = dir.resolve("table");
    delete(dir);
    Files.createDirectories(dir);
    try (BufferAllocator allocator = new RootAllocator()) {
      write(table, rows, dim, shards, allocator);
      List<Path> files;
      try (var s = Files.list(table)) {
        files = s.toList();
      }
      long bytes = 0;
      for (Path f : files) {
        bytes += Files.size(f);
      }
      double[] read = new double[reps];
      double[] load = new double[reps];
      ByteBuffer buf = ByteBuffer.allocateDirect(8 << 20);
      for (int r = 0; r < reps; r++) {
        long t0 = System.nanoTime();
        for (Path f : files) {
          try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            while (ch.read(buf.clear()) > 0) {
              // dropped
            }
          }
        }
        read[r] = (System.nanoTime() - t0) / 1e9;
        t0 = System.nanoTime();
        try (ShardServer s = ShardServer.builder().table(table).allocator(allocator).start()) {
          if (s.shards().length != shards) {
            throw new IllegalStateException("hosts " + s.shards().length + " shards");
          }
        }
        load[r] = (System.nanoTime() - t0) / 1e9;
      }
      Arrays.sort(read);
      Arrays.sort(load);
      double readS = read[reps / 2];
      double loadS = load[reps / 2];
      System.out.printf(Locale.ROOT, "serve-load local %dx%d P=%d: %d bytes; read-files %.3f s (%.0f MB/s), serve-load %.3f s (%.0f MB/s),"
              + " ratio %.2f; load average %.1f%n", rows, dim, shards, bytes, readS, bytes / 1e6 / readS, loadS, bytes / 1e6 / loadS,
          readS / loadS, ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
    } finally {
      delete(dir);
    }
  }

  /** Deletes {@code dir} and what is in it (self-contained: the A side of ab-main.sh builds this file alone). */
  private static void delete(Path dir) throws IOException {
    if (Files.exists(dir)) {
      try (var s = Files.walk(dir)) {
        for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.delete(p);
        }
      }
    }
  }

  private static void write(Path table, long rows, int dim, int shards, BufferAllocator allocator) throws IOException {
    SplittableRandom random = new SplittableRandom(7);
    int chunk = 65_536;
    ByteBuffer buf = ByteBuffer.allocateDirect(chunk * dim * 4).order(ByteOrder.LITTLE_ENDIAN);
    try (TableWriter w = TableWriter.create(table, rows, dim, shards, "modulo", allocator)) {
      for (long id = 0; id < rows; id += chunk) {
        int n = (int) Math.min(chunk, rows - id);
        buf.clear();
        for (int i = 0; i < n * dim; i++) {
          buf.putFloat((float) (random.nextDouble() * 2 - 1));
        }
        buf.flip();
        w.appendInIdOrder(buf, n);
      }
      w.commit();
    }
  }
}
