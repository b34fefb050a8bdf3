package io.embstore.bench.ml;

import io.embstore.bench.common.IdStream;
import io.embstore.format.TableWriter;
import io.embstore.spark.ml.EmbeddingLookup;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Spark ML lookups: {@code EmbeddingLookup} of N ids (Zipf 1.1, id 0 hottest) against a V x C
 * table (default 10,000,000 ids, 1,000,000 x 128), rows per second of the whole Spark job, against
 * the same run's baselines: (a) a DataFrame join of the ids with the same table read from Parquet
 * ({@code id}, {@code embedding array<float>}, written from the table by EmbeddingLookup itself so
 * that the values are the same), and (b) MLlib's {@code Word2VecModel.transform} of one-token
 * sentences where its vocabulary fits it ({@code --w2v-rows}, default all V rows; it broadcasts the
 * whole matrix), against EmbeddingLookup of the same token column. Every system's output goes to
 * Spark's {@code noop} sink, which reads every row and column; the input ids come from a Parquet
 * file (read cost shown as {@code read ids}).
 *
 * <p>Rows, in one session, repetitions interleaved so that load drift hits all alike: {@code
 * lookup} (the table hosted anew by each transform: hosting time included), {@code lookup warm}
 * (the hosting kept from the previous transform), {@code lookup vector} (warm, {@code
 * ml.linalg.Vector} output instead of {@code array<float>}), {@code join parquet}, and for tokens
 * {@code w2v transform} against {@code lookup tokens}. Medians of the repetitions; ratios against
 * the join (ids) and against Word2VecModel (tokens).
 *
 * <p>Run: {@code BENCH_JAVA_OPTS=-Xmx6g bench/run ml.LookupTransformBench [--ids 10000000] [--rows
 * 1000000] [--dim 128] [--shards 4] [--reps 3] [--w2v-rows 1000000] [--master local[2]] [--dir
 * /tmp/embstore-ml-bench]}. The work directory (the table, the Parquet files: about 1.2 GB at the
 * defaults) is deleted at the end.
 */
public final class LookupTransformBench {
  private LookupTransformBench() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> o = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      o.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    long n = Long.parseLong(o.getOrDefault("ids", "10000000"));
    int rows = Integer.parseInt(o.getOrDefault("rows", "1000000"));
    int dim = Integer.parseInt(o.getOrDefault("dim", "128"));
    int shards = Integer.parseInt(o.getOrDefault("shards", "4"));
    int reps = Integer.parseInt(o.getOrDefault("reps", "3"));
    int w2vRows = Integer.parseInt(o.getOrDefault("w2v-rows", Integer.toString(rows)));
    Path dir = Paths.get(o.getOrDefault("dir", "/tmp/embstore-ml-bench"));
    deleteTree(dir);
    Files.createDirectories(dir);
    SparkSession spark = SparkSession.builder().master(o.getOrDefault("master", "local[2]")).appName("ml lookup bench")
        .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1").config("spark.sql.shuffle.partitions", "8")
        .config("spark.driver.maxResultSize", "0").getOrCreate();
    try {
      run(spark, dir, n, rows, dim, shards, reps, w2vRows);
    } finally {
      spark.stop();
      deleteTree(dir);
    }
  }

  private static void run(SparkSession spark, Path dir, long n, int rows, int dim, int shards, int reps, int w2vRows) throws Exception {
    long t0 = System.nanoTime();
    Path table = dir.resolve("table");
    writeTable(table, rows, dim, shards);
    System.out.printf(Locale.ROOT, "table %d x %d, %d shards, written in %.1f s%n", rows, dim, shards, secs(t0));

    t0 = System.nanoTime();
    EmbeddingLookup lookup = new EmbeddingLookup().setTablePath(table.toString()).setOutputType("array");
    lookup.setInputCol("id").setOutputCol("embedding")
        .transform(spark.range(rows).toDF("id")).write().parquet(dir.resolve("table.parquet").toString());
    lookup.release();
    System.out.printf(Locale.ROOT, "table as Parquet (id, embedding array<float>) in %.1f s%n", secs(t0));

    t0 = System.nanoTime();
    writeIds(spark, dir.resolve("ids.parquet"), n, rows);
    Dataset<Row> ids = spark.read().parquet(dir.resolve("ids.parquet").toString());
    Dataset<Row> tokens = ids.filter(functions.col("id").lt(w2vRows))
        .select(functions.array(functions.concat(functions.lit("t"), functions.col("id").cast("string"))).as("words"));
    tokens.write().parquet(dir.resolve("tokens.parquet").toString());
    Dataset<Row> words = spark.read().parquet(dir.resolve("tokens.parquet").toString());
    long tokenRows = words.count();
    double hot = IdStream.zipf(rows, 1.1, 1_000_000, 1).hotShare(rows, 0.01);
    System.out.printf(Locale.ROOT, "%,d Zipf(1.1) ids (hottest 1%% of rows: %.0f%% of lookups) and %,d one-token sentences (ids < %,d) in %.1f s%n",
        n, 100 * hot, tokenRows, w2vRows, secs(t0));

    Dataset<Row> tableParquet = spark.read().parquet(dir.resolve("table.parquet").toString());
    org.apache.spark.ml.feature.Word2VecModel w2v = word2vecModel(table, w2vRows, dim);

    EmbeddingLookup byId = new EmbeddingLookup().setTablePath(table.toString()).setInputCol("id").setOutputCol("embedding").setOutputType("array");
    EmbeddingLookup vectors = new EmbeddingLookup().setTablePath(table.toString()).setInputCol("id").setOutputCol("embedding");
    EmbeddingLookup byToken = new EmbeddingLookup().setTablePath(table.toString()).setInputCol("words").setOutputCol("vec");
    Map<String, List<Double>> secs = new LinkedHashMap<>();
    Map<String, Long> count = new LinkedHashMap<>();
    for (int r = 0; r < reps; r++) {
      time(secs, count, "read ids", n, () -> noop(ids));
      byId.release();
      time(secs, count, "lookup", n, () -> noop(byId.transform(ids)));
      time(secs, count, "lookup warm", n, () -> noop(byId.transform(ids)));
      time(secs, count, "lookup vector", n, () -> noop(vectors.transform(ids)));
      time(secs, count, "join parquet", n, () -> noop(ids.join(tableParquet, "id")));
      if (w2v != null) {
        time(secs, count, "w2v transform", tokenRows, () -> noop(w2v.transform(words)));
      }
      time(secs, count, "lookup tokens", tokenRows, () -> noop(byToken.transform(words)));
      System.out.printf(Locale.ROOT, "repetition %d done (load average %.1f)%n", r + 1, java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
    }
    byId.release();
    double join = median(secs.get("join parquet"));
    Double w2vSecs = w2v == null ? null : median(secs.get("w2v transform"));
    System.out.println();
    System.out.println("| system | rows | s (median) | rows/s | vs join | vs Word2VecModel |");
    System.out.println("|---|---:|---:|---:|---:|---:|");
    for (Map.Entry<String, List<Double>> e : secs.entrySet()) {
      double s = median(e.getValue());
      long rowsOf = count.get(e.getKey());
      boolean tokenRow = e.getKey().contains("w2v") || e.getKey().contains("tokens");
      System.out.printf(Locale.ROOT, "| %s | %,d | %.2f | %,.0f | %s | %s |%n", e.getKey(), rowsOf, s, rowsOf / s,
          tokenRow ? "-" : String.format(Locale.ROOT, "%.2f", join / s),
          tokenRow && w2vSecs != null ? String.format(Locale.ROOT, "%.2f", w2vSecs / s) : "-");
    }
  }

  private interface Step {
    void run() throws Exception;
  }

  private static void time(Map<String, List<Double>> secs, Map<String, Long> count, String name, long rows, Step step) throws Exception {
    long t0 = System.nanoTime();
    step.run();
    double s = secs(t0);
    secs.computeIfAbsent(name, k -> new ArrayList<>()).add(s);
    count.put(name, rows);
    System.out.printf(Locale.ROOT, "  %-14s %7.2f s  %,12.0f rows/s%n", name, s, rows / s);
  }

  private static void noop(Dataset<Row> df) {
    df.write().format("noop").mode("overwrite").save();
  }

  private static double secs(long t0) {
    return (System.nanoTime() - t0) / 1e9;
  }

  private static double median(List<Double> v) {
    double[] a = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    return a.length % 2 == 1 ? a[a.length / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
  }

  /** Row id's values: seeded by the id, so that any part of the matrix can be recomputed. */
  static void row(long id, float[] out) {
    SplittableRandom r = new SplittableRandom(id * 0x9E3779B97F4A7C15L + 17);
    for (int c = 0; c < out.length; c++) {
      out[c] = (float) (r.nextDouble() * 2 - 1);
    }
  }

  private static void writeTable(Path dir, int rows, int dim, int shards) throws IOException {
    List<String> tokens = new ArrayList<>(rows);
    for (int i = 0; i < rows; i++) {
      tokens.add("t" + i);
    }
    try (BufferAllocator allocator = new RootAllocator();
        TableWriter w = TableWriter.create(dir, rows, dim, shards, "modulo", allocator)) {
      int batch = Math.max(1, (8 << 20) / (dim * 4));
      ByteBuffer buf = ByteBuffer.allocateDirect(batch * dim * 4).order(ByteOrder.LITTLE_ENDIAN);
      float[] row = new float[dim];
      for (long id = 0; id < rows; ) {
        int k = (int) Math.min(batch, rows - id);
        buf.clear();
        for (int i = 0; i < k; i++) {
          row(id + i, row);
          for (float v : row) {
            buf.putFloat(v);
          }
        }
        buf.flip();
        w.appendInIdOrder(buf, k);
        id += k;
      }
      w.vocabulary(io.embstore.format.Vocabulary.of(tokens, null)).createdBy("LookupTransformBench");
      w.commit();
    }
  }

  /** N Zipf(1.1) ids over [0, rows) as a Parquet file of one bigint column {@code id}, drawn in 16 parallel slices. */
  private static void writeIds(SparkSession spark, Path out, long n, int rows) {
    int slices = 16;
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    List<Integer> parts = new ArrayList<>();
    for (int i = 0; i < slices; i++) {
      parts.add(i);
    }
    org.apache.spark.api.java.JavaRDD<Row> r = sc.parallelize(parts, slices).flatMap(i -> {
      int size = (int) (n / slices + (i < n % slices ? 1 : 0));
      long[] pool = new long[size];
      IdStream.zipf(rows, 1.1, size, 1000 + i).next(pool);
      List<Row> l = new ArrayList<>(size);
      for (long id : pool) {
        l.add(org.apache.spark.sql.RowFactory.create(id));
      }
      return l.iterator();
    });
    spark.createDataFrame(r, new org.apache.spark.sql.types.StructType().add("id", org.apache.spark.sql.types.DataTypes.LongType))
        .write().parquet(out.toString());
  }

  /** MLlib's model over tokens t0..t(w2vRows-1) with the table's rows, or null when it does not fit. */
  private static org.apache.spark.ml.feature.Word2VecModel word2vecModel(Path table, int w2vRows, int dim) {
    try {
      Map<String, float[]> vectors = new HashMap<>(w2vRows * 2);
      for (int id = 0; id < w2vRows; id++) {
        float[] row = new float[dim];
        row(id, row);
        vectors.put("t" + id, row);
      }
      org.apache.spark.mllib.feature.Word2VecModel old = new org.apache.spark.mllib.feature.Word2VecModel(
          scala.collection.immutable.Map$.MODULE$.from(CollectionConverters.asScala(vectors)));
      org.apache.spark.ml.feature.Word2VecModel m = new org.apache.spark.ml.feature.Word2VecModel("w2v-bench", old);
      m.set(m.vectorSize(), dim);
      m.setInputCol("words").setOutputCol("vec");
      return m;
    } catch (OutOfMemoryError e) {
      System.out.println("Word2VecModel with " + w2vRows + " words does not fit this heap: " + e);
      return null;
    }
  }

  private static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path p : (Iterable<Path>) files.sorted(Comparator.reverseOrder())::iterator) {
        Files.deleteIfExists(p);
      }
    }
  }
}
