package io.embstore.bench.format;

import io.embstore.format.Resharder;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TableStorage;
import io.embstore.format.convert.ExportFormat;
import io.embstore.format.convert.Exporter;
import io.embstore.format.convert.ImportFormat;
import io.embstore.format.convert.Importer;
import io.embstore.format.storage.MiniHdfs;
import io.embstore.shard.ShardServer;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;

/**
 * Tables on cluster storage and resharding, each step next to a plain copy of the same bytes
 * measured in the same run (steps interleaved within each repetition; medians of {@code --reps}):
 *
 * <ul>
 *   <li><b>HDFS</b> (a MiniDFSCluster in this JVM: NameNode and one DataNode on 127.0.0.1, its data
 *       under {@code --dir}): {@code import} of a generated npy into {@code hdfs://} against {@code
 *       put} (Hadoop's {@code copyFromLocalFile} of the npy, what {@code hdfs dfs -put} does);
 *       {@code export} of that table to a local npy against {@code get} ({@code copyToLocalFile}
 *       of the npy from HDFS, {@code hdfs dfs -get}); {@code serve-load} (a {@code ShardServer}
 *       loading every shard from HDFS, checksums checked, started and closed) against {@code
 *       get-table} (every file of the table copied to the local disk) and {@code cat-table} (every
 *       file read into memory and dropped).
 *   <li><b>reshard</b> on the local disk: a table of P shards into P2 ({@code Resharder}) against
 *       {@code copy-table} ({@code transferTo} + fsync of every file of the input table, as reshard
 *       forces its files: an in-kernel copy) and {@code rw-copy+fs} (the same bytes through user
 *       space: 8 MiB reads and writes, fsync, as any program that transforms them must); with the peak heap (MemoryPoolMXBean, after a GC) at two sizes of V to
 *       show it does not grow with V.
 * </ul>
 *
 * <p>Run: {@code BENCH_JAVA_OPTS="-Xmx512m -XX:MaxDirectMemorySize=8g" bench/run io.embstore.bench.format.StorageBench [--rows
 * 10000000] [--hdfs-rows 4000000] [--dim 64] [--shards 4] [--reshard-to 7] [--reps 3] [--dir
 * /tmp/embstore-storage-bench] [--skip-hdfs] [--skip-reshard]}. Needs about 5 x the generated
 * matrix of free disk.
 */
public final class StorageBench {
  private StorageBench() {}

  public static void main(String[] args) throws Exception {
    long rows = 10_000_000L;
    long hdfsRows = 4_000_000L;
    int dim = 64;
    int shards = 4;
    int reshardTo = 7;
    int reps = 3;
    boolean hdfs = true;
    boolean reshard = true;
    Path dir = Paths.get("/tmp/embstore-storage-bench");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--rows" -> rows = Long.parseLong(args[++i]);
        case "--hdfs-rows" -> hdfsRows = Long.parseLong(args[++i]);
        case "--dim" -> dim = Integer.parseInt(args[++i]);
        case "--shards" -> shards = Integer.parseInt(args[++i]);
        case "--reshard-to" -> reshardTo = Integer.parseInt(args[++i]);
        case "--reps" -> reps = Integer.parseInt(args[++i]);
        case "--dir" -> dir = Paths.get(args[++i]);
        case "--skip-hdfs" -> hdfs = false;
        case "--skip-reshard" -> reshard = false;
        default -> throw new IllegalArgumentException("Unknown argument " + args[i]);
      }
    }
    ImportExportBench.deleteTree(dir);
    Files.createDirectories(dir);
    System.out.printf(Locale.ROOT, "# StorageBench: java %s, max heap %d MB, %d cpus, dir %s, %d reps (median), load %s%n",
        System.getProperty("java.version"), Runtime.getRuntime().maxMemory() >> 20,
        Runtime.getRuntime().availableProcessors(), dir, reps, loadAverage());
    System.out.printf(Locale.ROOT, "%-28s %-12s %9s %9s %8s %10s %10s%n", "case", "step", "MB/s", "seconds", "ratio", "heap peak", "offheap pk");
    try (BufferAllocator allocator = new RootAllocator()) {
      if (hdfs) {
        hdfs(dir, hdfsRows, dim, shards, reps, allocator);
      }
      if (reshard) {
        for (long v : new long[] {rows / 10, rows}) {
          reshard(dir, v, dim, shards, reshardTo, reps, allocator);
        }
      }
    } finally {
      ImportExportBench.deleteTree(dir);
    }
    System.out.printf(Locale.ROOT, "# done, load %s%n", loadAverage());
  }

  private static void hdfs(Path dir, long rows, int dim, int shards, int reps, BufferAllocator allocator) throws Exception {
    Path npy = dir.resolve("hdfs-input.npy");
    ImportExportBench.generate(npy, rows, dim);
    long npyBytes = Files.size(npy);
    try (MiniHdfs cluster = MiniHdfs.start(dir.resolve("hdfs"))) {
      TableStorage storage = cluster.storage();
      FileSystem fs = cluster.fileSystem();
      org.apache.hadoop.fs.Path remoteNpy = new org.apache.hadoop.fs.Path("/npy/m.npy");
      String table = cluster.uri("/tables/t");
      Path local = dir.resolve("local-copy");
      Files.createDirectories(local);
      Map<String, List<Sample>> samples = new LinkedHashMap<>();
      long tableBytes = 0;
      for (int r = 0; r < reps; r++) {
        sample(samples, "put", allocator, a -> fs.copyFromLocalFile(false, true, new org.apache.hadoop.fs.Path(npy.toUri()), remoteNpy));
        sample(samples, "put+hsync", allocator, a -> putSynced(fs, npy, remoteNpy));
        sample(samples, "import", allocator, a -> Importer.run(new Importer.Options(ImportFormat.NPY, npy, null, shards, "modulo",
            storage.location(table), false, null), a));
        Path got = local.resolve("got.npy");
        sample(samples, "get", allocator, a -> fs.copyToLocalFile(false, remoteNpy, new org.apache.hadoop.fs.Path(got.toUri()), true));
        Files.delete(got);
        Path exported = local.resolve("exported.npy");
        sample(samples, "export", allocator, a -> Exporter.run(ExportFormat.NPY, storage.location(table), exported, null, a));
        Files.delete(exported);
        FileStatus[] files = fs.listStatus(new org.apache.hadoop.fs.Path("/tables/t"));
        tableBytes = 0;
        for (FileStatus f : files) {
          tableBytes += f.getLen();
        }
        sample(samples, "cat-table", allocator, a -> {
          ByteBuffer buf = ByteBuffer.allocateDirect(8 << 20);
          for (FileStatus f : files) {
            try (FSDataInputStream in = fs.open(f.getPath())) {
              while (in.read(buf.clear()) > 0) {
                // dropped
              }
            }
          }
        });
        sample(samples, "get-table", allocator, a -> {
          for (FileStatus f : files) {
            fs.copyToLocalFile(false, f.getPath(), new org.apache.hadoop.fs.Path(local.resolve(f.getPath().getName()).toUri()), true);
          }
        });
        sample(samples, "serve-load", allocator, a -> {
          try (ShardServer s = ShardServer.builder().table(storage.location(table)).allocator(a).start()) {
            if (s.shards().length != shards) {
              throw new IllegalStateException("hosts " + s.shards().length + " shards");
            }
          }
        });
        for (Path p : listFiles(local)) {
          Files.delete(p);
        }
        fs.delete(new org.apache.hadoop.fs.Path("/tables/t"), true);
        fs.delete(remoteNpy, false);
      }
      String name = "hdfs " + rows + "x" + dim + " P=" + shards;
      Result put = median(samples.get("put"));
      Result get = median(samples.get("get"));
      Result getTable = median(samples.get("get-table"));
      Result cat = median(samples.get("cat-table"));
      print(name, "put", npyBytes, put, null);
      Result putSynced = median(samples.get("put+hsync"));
      print(name, "put+hsync", npyBytes, putSynced, null);
      print(name, "import", npyBytes, median(samples.get("import")), put);
      System.out.printf(Locale.ROOT, "%-28s %-12s %38.2f  (import vs put+hsync)%n", name, "", putSynced.seconds() / median(samples.get("import")).seconds());
      print(name, "get", npyBytes, get, null);
      print(name, "export", npyBytes, median(samples.get("export")), get);
      print(name, "get-table", tableBytes, getTable, null);
      print(name, "cat-table", tableBytes, cat, null);
      Result load = median(samples.get("serve-load"));
      print(name, "serve-load", tableBytes, load, getTable);
      System.out.printf(Locale.ROOT, "%-28s %-12s %38.2f  (serve-load vs cat-table)%n", name, "", cat.seconds() / load.seconds());
    } finally {
      Files.deleteIfExists(npy);
    }
  }

  private static void reshard(Path dir, long rows, int dim, int shards, int to, int reps, BufferAllocator allocator) throws Exception {
    Path npy = dir.resolve("reshard-input.npy");
    ImportExportBench.generate(npy, rows, dim);
    Path in = dir.resolve("reshard-in");
    Importer.run(new Importer.Options(ImportFormat.NPY, npy, null, shards, "modulo", TableLocation.of(in), false, null), allocator);
    Files.delete(npy);
    long tableBytes = 0;
    for (Path p : listFiles(in)) {
      tableBytes += Files.size(p);
    }
    Map<String, List<Sample>> samples = new LinkedHashMap<>();
    Path out = dir.resolve("reshard-out");
    Path copy = dir.resolve("copy");
    for (int r = 0; r < reps; r++) {
      sample(samples, "copy-table", allocator, a -> {
        Files.createDirectories(copy);
        for (Path p : listFiles(in)) {
          copyFile(p, copy.resolve(p.getFileName()));
        }
      });
      ImportExportBench.deleteTree(copy);
      sample(samples, "rw-copy+fs", allocator, a -> {
        Files.createDirectories(copy);
        for (Path p : listFiles(in)) {
          ImportExportBench.readWriteCopy(p, copy.resolve(p.getFileName()));
        }
      });
      ImportExportBench.deleteTree(copy);
      sample(samples, "reshard", allocator, a -> {
        TableManifest m = Resharder.run(new Resharder.Options(TableLocation.of(in), TableLocation.of(out), to, null, null), a);
        if (m.numShards() != to) {
          throw new IllegalStateException("resharded into " + m.numShards());
        }
      });
      if (r == 0) {
        Table.open(out).verify(allocator);
      }
      ImportExportBench.deleteTree(out);
    }
    String name = "reshard " + rows + "x" + dim + " " + shards + "->" + to;
    Result base = median(samples.get("copy-table"));
    Result userSpace = median(samples.get("rw-copy+fs"));
    Result resharded = median(samples.get("reshard"));
    print(name, "copy-table", tableBytes, base, null);
    print(name, "rw-copy+fs", tableBytes, userSpace, base);
    print(name, "reshard", tableBytes, resharded, base);
    System.out.printf(Locale.ROOT, "%-28s %-12s %38.2f  (reshard vs rw-copy+fs)%n", name, "", userSpace.seconds() / resharded.seconds());
    ImportExportBench.deleteTree(in);
  }

  @FunctionalInterface
  interface Step {
    void run(BufferAllocator allocator) throws Exception;
  }

  record Sample(double seconds, long heapPeak, long offHeapPeak) {}

  record Result(double seconds, long heapPeak, long offHeapPeak) {}

  private static void sample(Map<String, List<Sample>> samples, String key, BufferAllocator allocator, Step step) throws Exception {
    System.gc();
    for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
      if (p.getType() == MemoryType.HEAP) {
        p.resetPeakUsage();
      }
    }
    try (BufferAllocator child = allocator.newChildAllocator(key, 0, Long.MAX_VALUE)) {
      long t0 = System.nanoTime();
      step.run(child);
      double secs = (System.nanoTime() - t0) / 1e9;
      long heap = 0;
      for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
        if (p.getType() == MemoryType.HEAP) {
          heap += p.getPeakUsage().getUsed();
        }
      }
      samples.computeIfAbsent(key, k -> new ArrayList<>()).add(new Sample(secs, heap, child.getPeakMemoryAllocation()));
    }
  }

  private static Result median(List<Sample> runs) {
    double[] secs = runs.stream().mapToDouble(Sample::seconds).sorted().toArray();
    return new Result(secs[secs.length / 2], runs.stream().mapToLong(Sample::heapPeak).max().orElse(0),
        runs.stream().mapToLong(Sample::offHeapPeak).max().orElse(0));
  }

  /** One line: MB/s of {@code bytes}, seconds, the ratio base time / this time (speed relative to the base). */
  private static void print(String name, String step, long bytes, Result r, Result base) {
    System.out.printf(Locale.ROOT, "%-28s %-12s %9.0f %9.3f %8s %7.1f MB %7.1f MB%n", name, step, bytes / 1e6 / r.seconds(),
        r.seconds(), base == null ? "1.00" : String.format(Locale.ROOT, "%.2f", base.seconds() / r.seconds()),
        r.heapPeak() / 1e6, r.offHeapPeak() / 1e6);
    System.out.flush();
  }

  private static String loadAverage() {
    return String.format(Locale.ROOT, "%.1f", ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
  }

  /** {@code put} as import writes: the same bytes streamed to HDFS, {@code hsync}ed before close. */
  private static void putSynced(FileSystem fs, Path from, org.apache.hadoop.fs.Path to) throws IOException {
    byte[] buf = new byte[1 << 20];
    try (var in = Files.newInputStream(from);
        var out = fs.create(to, true)) {
      for (int n; (n = in.read(buf)) > 0; ) {
        out.write(buf, 0, n);
      }
      out.hsync();
    }
  }

  private static void copyFile(Path from, Path to) throws IOException {
    try (FileChannel in = FileChannel.open(from, StandardOpenOption.READ);
        FileChannel out = FileChannel.open(to, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      long size = in.size();
      long done = 0;
      while (done < size) {
        done += in.transferTo(done, size - done, out);
      }
      out.force(true);
    }
  }

  private static List<Path> listFiles(Path dir) throws IOException {
    try (var s = Files.list(dir)) {
      return s.filter(Files::isRegularFile).toList();
    }
  }
}
