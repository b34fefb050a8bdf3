package io.embstore.bench.format;

import io.embstore.format.TableManifest;
import io.embstore.format.convert.ExportFormat;
import io.embstore.format.convert.Exporter;
import io.embstore.format.convert.ImportFormat;
import io.embstore.format.convert.Importer;
import java.io.IOException;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.zip.GZIPInputStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * Import and export throughput of {@code .npy} files next to a plain file copy of the same bytes,
 * measured in the same run with the page cache in the same state (the input was just written or
 * read, so every variant reads it from memory), plus the peak heap of each step.
 *
 * <p>Matrices: the real MiniLM-L6 matrix (30,522 x 384, 46.9 MB; unpacked from {@code
 * ../shared/data/embeddings} into the work directory first) and a generated 10,000,000 x 64 matrix
 * (2.56 GB), written into the work directory and deleted at the end.
 *
 * <p>Baselines: {@code copy} is {@link FileChannel#transferTo} of the npy file to a new file;
 * {@code copy+fsync} adds {@link FileChannel#force}, which import and export also do (a table is
 * durable once committed). Import writes P shard files (Arrow IPC, CRC-32C of every byte); export
 * reads them back in id order and writes an npy file. Rates are MB/s of the npy file's bytes;
 * figures are medians of {@code --reps} runs.
 *
 * <p>Run: {@code BENCH_JAVA_OPTS=-Xmx256m bench/run io.embstore.bench.format.ImportExportBench [--rows 10000000]
 * [--dim 64] [--shards 4] [--reps 3] [--dir /tmp/embstore-bench] [--partitioners modulo,range]
 * [--skip-large]}. Needs about 4 x the generated matrix of free disk in {@code --dir}.
 */
public final class ImportExportBench {
  private ImportExportBench() {}

  public static void main(String[] args) throws Exception {
    long rows = 10_000_000L;
    int dim = 64;
    int shards = 4;
    int reps = 3;
    boolean large = true;
    List<String> partitioners = List.of("modulo", "range");
    Path dir = Paths.get("/tmp/embstore-bench");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--rows" -> rows = Long.parseLong(args[++i]);
        case "--dim" -> dim = Integer.parseInt(args[++i]);
        case "--shards" -> shards = Integer.parseInt(args[++i]);
        case "--reps" -> reps = Integer.parseInt(args[++i]);
        case "--dir" -> dir = Paths.get(args[++i]);
        case "--partitioners" -> partitioners = Arrays.asList(args[++i].split(","));
        case "--skip-large" -> large = false;
        default -> throw new IllegalArgumentException("Unknown argument " + args[i]);
      }
    }
    Files.createDirectories(dir);
    System.out.printf(
        Locale.ROOT,
        "# ImportExportBench: java %s, max heap %d MB, %d cpus, dir %s, P=%d, %d reps (median)%n",
        System.getProperty("java.version"),
        Runtime.getRuntime().maxMemory() >> 20,
        Runtime.getRuntime().availableProcessors(),
        dir,
        shards,
        reps);
    System.out.printf(
        Locale.ROOT, "%-22s %-10s %-12s %9s %9s %7s %7s %10s %10s%n",
        "matrix", "step", "partitioner", "MB/s", "seconds", "vs copy", "vs c+fs", "heap peak", "offheap pk");
    try (BufferAllocator allocator = new RootAllocator()) {
      Path shared = Paths.get(System.getProperty("embstore.shared.dir", "../shared"));
      Path minilmGz = shared.resolve("data/embeddings/minilm-l6-wte-30522x384-f32.npy.gz");
      if (Files.isRegularFile(minilmGz)) {
        Path npy = dir.resolve("minilm.npy");
        try (InputStream in = new GZIPInputStream(Files.newInputStream(minilmGz), 1 << 16)) {
          Files.copy(in, npy, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        try {
          run("minilm 30522x384", npy, shards, partitioners, Math.max(reps, 5), dir, allocator);
        } finally {
          Files.deleteIfExists(npy);
        }
      } else {
        System.out.println("# skipped MiniLM: " + minilmGz + " missing");
      }
      if (large) {
        Path npy = dir.resolve("generated.npy");
        long t0 = System.nanoTime();
        generate(npy, rows, dim);
        System.out.printf(Locale.ROOT, "# generated %s (%d bytes) in %.1f s%n", npy, Files.size(npy), (System.nanoTime() - t0) / 1e9);
        try {
          run("generated " + rows + "x" + dim, npy, shards, partitioners, reps, dir, allocator);
        } finally {
          Files.deleteIfExists(npy);
        }
      }
    }
  }

  private static void run(
      String name, Path npy, int shards, List<String> partitioners, int reps, Path dir, BufferAllocator allocator)
      throws IOException {
    long bytes = Files.size(npy);
    Path copy = dir.resolve("copy.npy");
    Path table = dir.resolve("table");
    Path exported = dir.resolve("exported.npy");
    // Warm the page cache with the input, as every step below will find it.
    copy(npy, copy, false);
    Files.delete(copy);
    // The steps are interleaved within each repetition so that drift in the machine's load hits
    // the baseline and the measured steps alike; the medians are taken per step.
    Map<String, List<Sample>> samples = new LinkedHashMap<>();
    for (int r = 0; r < reps; r++) {
      sample(samples, "copy|-", allocator, a -> copy(npy, copy, false));
      Files.delete(copy);
      sample(samples, "copy+fsync|-", allocator, a -> copy(npy, copy, true));
      Files.delete(copy);
      sample(samples, "rw-copy+fs|-", allocator, a -> readWriteCopy(npy, copy));
      Files.delete(copy);
      for (String partitioner : partitioners) {
        sample(samples, "import|" + partitioner, allocator, a -> importNpy(npy, table, shards, partitioner, a));
        sample(samples, "export|" + partitioner, allocator, a -> Exporter.run(ExportFormat.NPY, table, exported, a));
        Files.delete(exported);
        deleteTree(table);
      }
    }
    Result plain = median(samples.get("copy|-"));
    Result synced = median(samples.get("copy+fsync|-"));
    for (Map.Entry<String, List<Sample>> e : samples.entrySet()) {
      String[] key = e.getKey().split("\\|");
      print(name, key[0], key[1], bytes, median(e.getValue()), plain, synced);
    }
  }

  private static void importNpy(Path npy, Path table, int shards, String partitioner, BufferAllocator allocator)
      throws IOException {
    TableManifest m =
        Importer.run(
            new Importer.Options(ImportFormat.NPY, npy, null, shards, partitioner, io.embstore.format.TableLocation.of(table), false, null),
            allocator);
    if (m.numShards() != shards) {
      throw new IllegalStateException("unexpected manifest " + m);
    }
  }

  @FunctionalInterface
  interface Step {
    void run(BufferAllocator allocator) throws IOException;
  }

  record Result(double seconds, long heapPeak, long offHeapPeak) {}

  record Sample(double seconds, long heapPeak, long offHeapPeak) {}

  /** Runs {@code step} once, with a fresh child allocator, and records time and memory peaks. */
  private static void sample(Map<String, List<Sample>> samples, String key, BufferAllocator allocator, Step step)
      throws IOException {
    System.gc();
    resetPeaks();
    try (BufferAllocator child = allocator.newChildAllocator(key, 0, Long.MAX_VALUE)) {
      long t0 = System.nanoTime();
      step.run(child);
      double secs = (System.nanoTime() - t0) / 1e9;
      samples.computeIfAbsent(key, k -> new ArrayList<>()).add(new Sample(secs, heapPeak(), child.getPeakMemoryAllocation()));
    }
  }

  /** Median time; peaks are the largest seen. */
  private static Result median(List<Sample> runs) {
    double[] secs = runs.stream().mapToDouble(Sample::seconds).sorted().toArray();
    long heap = runs.stream().mapToLong(Sample::heapPeak).max().orElse(0);
    long offHeap = runs.stream().mapToLong(Sample::offHeapPeak).max().orElse(0);
    return new Result(secs[secs.length / 2], heap, offHeap);
  }

  private static void resetPeaks() {
    for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
      if (p.getType() == MemoryType.HEAP) {
        p.resetPeakUsage();
      }
    }
  }

  /** Sum of the peak usage of every heap pool since the last reset (an upper bound of the peak). */
  private static long heapPeak() {
    long sum = 0;
    for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
      if (p.getType() == MemoryType.HEAP) {
        sum += p.getPeakUsage().getUsed();
      }
    }
    return sum;
  }

  private static void print(String name, String step, String partitioner, long bytes, Result r, Result copy, Result synced) {
    System.out.printf(
        Locale.ROOT,
        "%-22s %-10s %-12s %9.0f %9.3f %7.2f %7.2f %7.1f MB %7.1f MB%n",
        name,
        step,
        partitioner,
        bytes / 1e6 / r.seconds(),
        r.seconds(),
        copy.seconds() / r.seconds(),
        synced.seconds() / r.seconds(),
        r.heapPeak() / 1e6,
        r.offHeapPeak() / 1e6);
    System.out.flush();
  }

  private static void copy(Path from, Path to, boolean fsync) throws IOException {
    try (FileChannel in = FileChannel.open(from, StandardOpenOption.READ);
        FileChannel out = FileChannel.open(to, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      long size = in.size();
      long done = 0;
      while (done < size) {
        done += in.transferTo(done, size - done, out);
      }
      if (fsync) {
        out.force(true);
      }
    }
  }

  /** A copy through user space: 8 MiB reads into a direct buffer, written out, then fsync. */
  static void readWriteCopy(Path from, Path to) throws IOException {
    ByteBuffer buf = ByteBuffer.allocateDirect(8 << 20);
    try (FileChannel in = FileChannel.open(from, StandardOpenOption.READ);
        FileChannel out = FileChannel.open(to, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      while (in.read(buf.clear()) > 0) {
        buf.flip();
        while (buf.hasRemaining()) {
          out.write(buf);
        }
      }
      out.force(true);
    }
  }

  /** Writes a rows x dim npy of seeded values in [-1, 1), 8 MiB at a time. */
  static void generate(Path npy, long rows, int dim) throws IOException {
    String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + rows + ", " + dim + "), }";
    dict += " ".repeat(Math.max(0, 21 - Long.toString(rows).length()));
    int hlen = dict.length() + 1;
    int pad = 64 - ((10 + hlen) % 64);
    ByteBuffer header = ByteBuffer.allocate(10 + hlen + pad).order(ByteOrder.LITTLE_ENDIAN);
    header.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) (hlen + pad));
    header.put(dict.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
    for (int i = 0; i < pad; i++) {
      header.put((byte) ' ');
    }
    header.put((byte) '\n').flip();
    SplittableRandom random = new SplittableRandom(42);
    ByteBuffer chunk = ByteBuffer.allocateDirect(8 << 20).order(ByteOrder.LITTLE_ENDIAN);
    try (FileChannel out = FileChannel.open(npy, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      while (header.hasRemaining()) {
        out.write(header);
      }
      long values = rows * dim;
      while (values > 0) {
        chunk.clear();
        int n = (int) Math.min(values, chunk.capacity() / 4);
        for (int i = 0; i < n; i++) {
          chunk.putFloat((float) (random.nextDouble() * 2 - 1));
        }
        chunk.flip();
        while (chunk.hasRemaining()) {
          out.write(chunk);
        }
        values -= n;
      }
    }
  }

  static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    List<Path> paths = new ArrayList<>();
    try (var s = Files.walk(dir)) {
      s.sorted(Comparator.reverseOrder()).forEach(paths::add);
    }
    for (Path p : paths) {
      Files.delete(p);
    }
  }
}
