package io.embstore.bench.lookup;

import io.embstore.bench.common.ChildProcess;
import io.embstore.bench.common.IdStream;
import io.embstore.bench.common.Measure;
import io.embstore.format.HalfFloats;
import io.embstore.format.Int8Rows;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import io.embstore.format.ValueType;
import io.embstore.shard.EmbeddingClient;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * 16-bit and int8 rows against float32 rows, same run: the same seeded V x C matrix as a float32, a
 * bfloat16, a float16 and an int8 table (2 shards each), each served by 2 shard servers in separate
 * JVMs ({@link ServerMain} {@code shard}, row-wise Adagrad: state of 1 float32 a row, none for the
 * read-only int8 table), one client in this JVM.
 *
 * <ul>
 *   <li>server memory per row: the servers' allocated bytes / V, against C x 4 and C x 2 (+ 4 bytes
 *       of optimizer state) and C + 8 (int8: codes, scale, bias);
 *   <li>lookups of B ids (uniform), rows/s: float32 table; 16-bit table with float32 rows on the
 *       wire (widened on the server); 16-bit table with its 16-bit rows on the wire (widened by the
 *       client, {@code EmbeddingClient.Builder.storedRowsOnWire}); ratios against the float32
 *       table's figure of this run.
 * </ul>
 *
 * <p>Every configuration is measured in turn, round after round (the machine may be shared: a change
 * of load falls on all of them), each figure the median of its rounds.
 *
 * <p>Run: {@code bench/run lookup.CompactRowsBench} (defaults: 50,257 x 768, B = 512, 5 rounds of
 * 2 s after 1 s of warm-up each); {@code --help} lists the options.
 */
@Command(name = "CompactRowsBench", mixinStandardHelpOptions = true, description = "16-bit and int8 rows vs float32 rows: server memory and lookups.")
public final class CompactRowsBench implements Callable<Integer> {
  @Option(names = "--rows", description = "V (default: ${DEFAULT-VALUE})")
  long rows = 50_257;

  @Option(names = "--dim", description = "C (default: ${DEFAULT-VALUE})")
  int dim = 768;

  @Option(names = "--batch", description = "B, ids per lookup (default: ${DEFAULT-VALUE})")
  int batch = 512;

  @Option(names = "--warmup-ms", description = "warm-up of a configuration before each timed run (default: ${DEFAULT-VALUE})")
  long warmupMs = 1000;

  @Option(names = "--duration-ms", description = "one timed repetition (default: ${DEFAULT-VALUE})")
  long durationMs = 2000;

  @Option(names = "--rounds", description = "rounds of every configuration in turn; figures are their medians (default: ${DEFAULT-VALUE})")
  int rounds = 5;

  @Option(names = "--jit-warmup-ms", description = "an untimed run of every configuration first, this long each (default: ${DEFAULT-VALUE})")
  long jitWarmupMs = 5000;

  @Option(names = "--server-heap", description = "-Xmx of each server JVM (default: ${DEFAULT-VALUE})")
  String serverHeap = "512m";

  @Option(names = "--types", split = ",", description = "value types, the first the baseline of the ratios (default: float32,bfloat16,float16,int8)")
  String[] typeNames = {"float32", "bfloat16", "float16", "int8"};

  @Option(names = "--dir", description = "where the tables are written (default: a temporary directory, deleted)")
  Path dir;

  public static void main(String[] args) {
    System.exit(new CommandLine(new CompactRowsBench()).execute(args));
  }

  @Override
  public Integer call() throws Exception {
    PrintStream out = System.out;
    Path work = dir != null ? dir : Files.createTempDirectory("compact-rows-bench");
    out.printf(Locale.ROOT, "CompactRowsBench: %d x %d, B = %d, %d rounds of every configuration in turn (%d ms each, after %d ms warm-up);"
        + " load average %s%n", rows, dim, batch, rounds, durationMs, warmupMs, Measure.loadAverage());
    ValueType[] types = java.util.Arrays.stream(typeNames).map(ValueType::of).toArray(ValueType[]::new);
    List<ChildProcess> servers = new ArrayList<>();
    List<EmbeddingClient> clients = new ArrayList<>();
    List<String> names = new ArrayList<>();
    try (BufferAllocator root = new RootAllocator()) {
      try {
        for (ValueType type : types) {
          Path table = work.resolve(type.label());
          if (!Files.exists(table.resolve("manifest.json"))) {
            write(table, type, root);
          }
          List<String> endpoints = new ArrayList<>();
          long allocated = 0;
          for (int shard = 0; shard < 2; shard++) {
            ChildProcess p = ChildProcess.java(type.label() + "-shard-" + shard, List.of("-Xmx" + serverHeap), ServerMain.class.getName(),
                List.of("shard", table.toString(), Integer.toString(shard)));
            servers.add(p);
            endpoints.add(p.await("endpoint"));
            allocated += Long.parseLong(p.ask("mem", "mem").split(" ")[0]);
          }
          double perRow = (double) allocated / rows;
          long ideal = type.rowBytes(dim);
          if (type == ValueType.INT8) {
            out.printf(Locale.ROOT, "%-8s server memory %,.0f bytes a row (C + 8 = %,d; no optimizer state: never updated): %.3fx%n",
                type, perRow, ideal, perRow / ideal);
          } else {
            out.printf(Locale.ROOT, "%-8s server memory %,.0f bytes a row (C x %d = %,d; with the row-wise Adagrad state %,d): %.3fx%n",
                type, perRow, type.bytes(), ideal, ideal + 4, perRow / (ideal + 4));
          }
          for (boolean stored : type.isCompact() ? new boolean[] {false, true} : new boolean[] {false}) {
            EmbeddingClient client = EmbeddingClient.builder().table(table).endpoints(endpoints).storedRowsOnWire(stored)
                .allocator(root).build();
            clients.add(client);
            names.add(type.label() + " " + (stored ? type.label() : "float32"));
            check(client, type, new long[batch], new float[batch * dim]);
          }
        }
        // Every configuration in turn, round after round, so that a change of the machine's load
        // (it is shared) falls on all of them; the figure of each is its median over the rounds.
        double[][] rates = new double[clients.size()][rounds];
        double[][] p50 = new double[clients.size()][rounds];
        Measure m = new Measure(warmupMs, durationMs, 1);
        // One untimed round first: the client and the servers JIT-compile every path.
        for (int k = 0; k < clients.size(); k++) {
          EmbeddingClient client = clients.get(k);
          IdStream ids = IdStream.uniform(rows, 1 << 16, 7);
          long[] b = new long[batch];
          float[] rowsOut = new float[batch * dim];
          new Measure(0, jitWarmupMs, 1).sync(batch, () -> {
            ids.next(b);
            client.lookup(b, rowsOut);
          });
        }
        for (int round = 0; round < rounds; round++) {
          for (int k = 0; k < clients.size(); k++) {
            EmbeddingClient client = clients.get(k);
            IdStream ids = IdStream.uniform(rows, 1 << 16, 42 + round);
            long[] b = new long[batch];
            float[] rowsOut = new float[batch * dim];
            Measure.Result r = m.sync(batch, () -> {
              ids.next(b);
              client.lookup(b, rowsOut);
            });
            rates[k][round] = r.rowsPerSec();
            p50[k][round] = r.p50Us();
            out.printf(Locale.ROOT, "round %d  %-17s %,12.0f rows/s  p50 %,.0f us%n", round + 1, names.get(k), r.rowsPerSec(), r.p50Us());
          }
        }
        double base = Measure.median(rates[0]);
        out.println();
        out.println("| table, rows on the wire | rows/s (median of " + rounds + " rounds) | MB/s on the wire | p50 us | vs float32 table |"
            + " median of the rounds' ratios (min-max) |");
        out.println("|---|---|---|---|---|---|");
        for (int k = 0; k < clients.size(); k++) {
          double rate = Measure.median(rates[k]);
          boolean compactWire = !names.get(k).endsWith("float32");
          long wireRowBytes = compactWire ? ValueType.of(names.get(k).split(" ")[1]).rowBytes(dim) : dim * 4L;
          // The ratio within each round (measured seconds apart) is steadier than the ratio of medians on a shared machine.
          double[] ratios = new double[rounds];
          for (int round = 0; round < rounds; round++) {
            ratios[round] = rates[k][round] / rates[0][round];
          }
          double[] sorted = ratios.clone();
          java.util.Arrays.sort(sorted);
          out.printf(Locale.ROOT, "| %s | %,.0f | %.0f | %.0f | %.2fx | %.2fx (%.2f-%.2f) |%n", names.get(k), rate,
              rate * wireRowBytes / 1e6, Measure.median(p50[k]), rate / base, Measure.median(ratios), sorted[0], sorted[rounds - 1]);
        }
        out.printf(Locale.ROOT, "load average at the end %s%n", Measure.loadAverage());
      } finally {
        for (EmbeddingClient c : clients) {
          c.close();
        }
        for (ChildProcess p : servers) {
          p.close();
        }
      }
    } finally {
      if (dir == null) {
        deleteTree(work);
      }
    }
    return 0;
  }

  /** The seeded matrix (values in [-1, 1)) as a 2-shard table of {@code type}. */
  private void write(Path table, ValueType type, BufferAllocator root) throws Exception {
    try (BufferAllocator a = root.newChildAllocator("writer", 0, Long.MAX_VALUE);
        TableWriter w = TableWriter.create(TableLocation.of(table),
            TableManifest.builder().rows(rows).dim(dim).partitioner("modulo").valueType(type), 2, a)) {
      SplittableRandom r = new SplittableRandom(42);
      int chunk = 1024;
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
      w.createdBy("CompactRowsBench");
      w.commit();
    }
  }

  /** Every looked-up value must be the seeded value rounded to the table's type (rows regenerated by id). */
  private void check(EmbeddingClient client, ValueType type, long[] ids, float[] out) throws Exception {
    for (int i = 0; i < ids.length; i++) {
      ids[i] = (i * 97L) % rows;
    }
    client.lookup(ids, out);
    // The generator runs in id order, so row id's values are its (id * C)-th draws on.
    SplittableRandom r = new SplittableRandom(42);
    long wanted = ids[1];
    for (long skip = 0; skip < wanted * dim; skip++) {
      r.nextDouble();
    }
    float[] seeded = new float[dim];
    for (int c = 0; c < dim; c++) {
      seeded[c] = (float) (r.nextDouble() * 2 - 1);
    }
    float[] quantized = new float[dim];
    ByteBuffer row = ByteBuffer.allocateDirect(dim + Int8Rows.EXTRA_BYTES);
    long at = org.apache.arrow.memory.util.MemoryUtil.getByteBufferAddress(row);
    Int8Rows.encodeRow(seeded, at, dim);
    Int8Rows.decodeRow(at, quantized, dim);
    for (int c = 0; c < dim; c++) {
      float f = seeded[c];
      float expected = switch (type) {
        case FLOAT32 -> f;
        case FLOAT16 -> HalfFloats.float16ToFloat(HalfFloats.toFloat16(f));
        case BFLOAT16 -> HalfFloats.bfloat16ToFloat(HalfFloats.toBfloat16(f));
        case INT8 -> quantized[c];
      };
      if (out[dim + c] != expected) {
        throw new IllegalStateException("Cannot benchmark: id " + wanted + " column " + c + " is " + out[dim + c] + ", expected " + expected);
      }
    }
  }

  private static void deleteTree(Path p) throws java.io.IOException {
    if (!Files.exists(p)) {
      return;
    }
    try (var s = Files.walk(p)) {
      for (Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(q);
      }
    }
  }
}
