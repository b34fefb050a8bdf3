package io.embstore.spark;

import io.embstore.format.Vocabulary;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.storage.StorageLevel;
import scala.Tuple2;

/**
 * The training corpus as sentences of token ids, partitioned and cached on the executors, with
 * the unigram counts the sampler needs. Text input builds the vocabulary here, with Spark: counts
 * by reduceByKey, tokens seen fewer than {@code --min-count} times dropped, at most {@code
 * --max-vocab} kept, ids by descending count with ties broken by token. Id input
 * (array&lt;int|bigint&gt;) has V = {@code --vocab-size} and no vocabulary.
 */
final class Corpus {
  private static final String BAD_ID = "Cannot read token id ";
  final JavaRDD<int[]> sentences;
  final long[] counts;
  final Vocabulary vocabulary;
  final long[] partitionTokens;
  final long totalTokens;

  private Corpus(JavaRDD<int[]> sentences, long[] counts, Vocabulary vocabulary, long[] partitionTokens) {
    this.sentences = sentences;
    this.counts = counts;
    this.vocabulary = vocabulary;
    this.partitionTokens = partitionTokens;
    this.totalTokens = Arrays.stream(partitionTokens).sum();
  }

  long rows() {
    return counts.length;
  }

  /**
   * The partition sizes as a checkpoint records them: the total and a CRC-32 of every partition's
   * token count, so a resume can tell that it rebuilt the same partitions.
   */
  String partitionFingerprint() {
    java.util.zip.CRC32 crc = new java.util.zip.CRC32();
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 * partitionTokens.length);
    for (long t : partitionTokens) {
      b.putLong(t);
    }
    crc.update(b.array());
    return totalTokens + " tokens in " + partitionTokens.length + " partitions, crc32 " + Long.toHexString(crc.getValue());
  }

  /**
   * Reads and encodes the corpus into {@code numPartitions} partitions.
   *
   * @param known the vocabulary of a checkpoint being resumed (ids must not change), or null
   */
  static Corpus load(SparkSession spark, TrainOptions o, Vocabulary known, int numPartitions) throws IOException {
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    String format = format(o);
    JavaRDD<int[]> encoded;
    long[] counts;
    Vocabulary vocabulary = null;
    Dataset<Row> df = format.equals("text") ? null : spark.read().format(format).load(o.inputs.toArray(new String[0]));
    if (df == null || stringColumn(df, o)) {
      TrainJob.describe(sc, "embstore train: count tokens and build the vocabulary");
      JavaRDD<String[]> text = df == null ? textSentences(spark, o) : stringSentences(df, o);
      if (known != null) {
        vocabulary = known;
      } else {
        vocabulary = buildVocabulary(text, o);
      }
      counts = vocabulary.counts();
      Map<String, Integer> ids = new HashMap<>(vocabulary.size() * 2);
      for (int i = 0; i < vocabulary.size(); i++) {
        ids.put(vocabulary.token(i), i);
      }
      Broadcast<Map<String, Integer>> b = sc.broadcast(ids);
      encoded = text.map(s -> encode(s, b.value())).filter(s -> s.length > 0);
    } else {
      encoded = idSentences(df, o);
      if (o.vocabSize < 1) {
        throw new IllegalArgumentException(
            "Cannot train on ids of column " + o.column + ": --vocab-size is required for id input (V, ids in [0, V))");
      }
      TrainJob.describe(sc, "embstore train: count token ids");
      int v = (int) o.vocabSize;
      try {
        counts = encoded.mapPartitions(it -> {
          long[] c = new long[v];
          while (it.hasNext()) {
            for (int id : it.next()) {
              c[id]++;
            }
          }
          return Collections.singletonList(c).iterator();
        }).treeReduce((a, b) -> {
          for (int i = 0; i < a.length; i++) {
            a[i] += b[i];
          }
          return a;
        });
      } catch (Exception e) { // a failed Spark job surfaces as SparkException, a checked exception Scala does not declare
        // The job's message carries the task's whole stack trace, which `embstore train` would
        // print on its one error line: the task's exception (with its executor stack) is the cause.
        for (Throwable t = e.getCause(); t != null; t = t.getCause()) {
          if (t instanceof IllegalArgumentException && String.valueOf(t.getMessage()).startsWith(BAD_ID)) {
            throw new IllegalArgumentException(t.getMessage(), t);
          }
        }
        throw e;
      }
    }
    if (counts.length < 1) {
      throw new IllegalArgumentException(
          "Cannot train on " + o.inputs + ": no token is seen at least --min-count=" + o.minCount + " times");
    }
    // Round-robin from a start seeded by the input partition's index: the same files read with the
    // same splits give the same partitions, which --resume checks (TrainJob.checkCorpusMatches).
    JavaRDD<int[]> parts = encoded.repartition(numPartitions).persist(StorageLevel.MEMORY_AND_DISK());
    TrainJob.describe(sc, "embstore train: encode and partition the corpus (" + numPartitions + " partitions)");
    List<Tuple2<Integer, Long>> sizes = parts.mapPartitionsWithIndex((i, it) -> {
      long n = 0;
      while (it.hasNext()) {
        n += it.next().length;
      }
      return Collections.singletonList(new Tuple2<>(i, n)).iterator();
    }, true).collect();
    long[] partitionTokens = new long[numPartitions];
    for (Tuple2<Integer, Long> t : sizes) {
      partitionTokens[t._1()] = t._2();
    }
    return new Corpus(parts, counts, vocabulary, partitionTokens);
  }

  static String format(TrainOptions o) throws IOException {
    if (!o.format.equals("auto")) {
      return o.format;
    }
    for (String input : o.inputs) {
      String f = formatOf(input);
      if (f != null) {
        return f;
      }
    }
    return "text";
  }

  private static String formatOf(String input) throws IOException {
    String lower = input.toLowerCase(Locale.ROOT);
    if (lower.endsWith(".parquet")) {
      return "parquet";
    }
    if (lower.endsWith(".orc")) {
      return "orc";
    }
    Path p = Paths.get(input.replaceFirst("^file:", ""));
    if (Files.isDirectory(p)) {
      try (Stream<Path> files = Files.list(p)) {
        for (Path f : (Iterable<Path>) files::iterator) {
          String n = f.getFileName().toString().toLowerCase(Locale.ROOT);
          if (n.endsWith(".parquet")) {
            return "parquet";
          }
          if (n.endsWith(".orc")) {
            return "orc";
          }
        }
      }
    }
    return null;
  }

  private static JavaRDD<String[]> textSentences(SparkSession spark, TrainOptions o) {
    boolean lower = o.lowercase;
    int max = o.maxSentenceLength;
    return spark.read().textFile(o.inputs.toArray(new String[0])).javaRDD()
        .flatMap(line -> cut(tokenize(line, lower), max));
  }

  static String[] tokenize(String line, boolean lowercase) {
    String s = line.strip();
    if (s.isEmpty()) {
      return new String[0];
    }
    if (lowercase) {
      s = s.toLowerCase(Locale.ROOT);
    }
    return s.split("\\s+");
  }

  static Iterator<String[]> cut(String[] tokens, int max) {
    if (tokens.length <= max) {
      return tokens.length == 0 ? Collections.emptyIterator() : Collections.singletonList(tokens).iterator();
    }
    List<String[]> out = new ArrayList<>(tokens.length / max + 1);
    for (int i = 0; i < tokens.length; i += max) {
      out.add(Arrays.copyOfRange(tokens, i, Math.min(tokens.length, i + max)));
    }
    return out.iterator();
  }

  private static Vocabulary buildVocabulary(JavaRDD<String[]> text, TrainOptions o) {
    long min = o.minCount;
    JavaPairRDD<String, Long> counted = text
        .flatMapToPair(s -> {
          Map<String, Long> local = new HashMap<>();
          for (String t : s) {
            local.merge(t, 1L, Long::sum);
          }
          List<Tuple2<String, Long>> l = new ArrayList<>(local.size());
          local.forEach((k, v) -> l.add(new Tuple2<>(k, v)));
          return l.iterator();
        })
        .reduceByKey(Long::sum)
        .filter(t -> t._2() >= min);
    List<Tuple2<String, Long>> kept = new ArrayList<>(counted.collect());
    kept.sort((a, b) -> {
      int c = Long.compare(b._2(), a._2());
      return c != 0 ? c : a._1().compareTo(b._1());
    });
    if (o.maxVocab > 0 && kept.size() > o.maxVocab) {
      kept = kept.subList(0, (int) o.maxVocab);
    }
    List<String> tokens = new ArrayList<>(kept.size());
    long[] counts = new long[kept.size()];
    for (int i = 0; i < kept.size(); i++) {
      tokens.add(kept.get(i)._1());
      counts[i] = kept.get(i)._2();
    }
    return Vocabulary.of(tokens, counts);
  }

  static int[] encode(String[] tokens, Map<String, Integer> ids) {
    int[] out = new int[tokens.length];
    int n = 0;
    for (String t : tokens) {
      Integer id = ids.get(t);
      if (id != null) {
        out[n++] = id;
      }
    }
    return n == out.length ? out : Arrays.copyOf(out, n);
  }

  /** Whether the column is array&lt;string&gt; (tokens) rather than ids; checks that it exists. */
  private static boolean stringColumn(Dataset<Row> df, TrainOptions o) {
    String column = o.column;
    if (!Arrays.asList(df.columns()).contains(column)) {
      throw new IllegalArgumentException(
          "Cannot read column " + column + " of " + o.inputs + ": not found (columns: " + String.join(", ", df.columns()) + ")");
    }
    DataType type = df.schema().apply(column).dataType();
    if (!(type instanceof ArrayType)) {
      throw new IllegalArgumentException(
          "Cannot read column " + column + " of " + o.inputs + ": type " + type.simpleString() + " (expected array<string>, array<int> or array<bigint>)");
    }
    DataType element = ((ArrayType) type).elementType();
    if (element.equals(DataTypes.StringType)) {
      return true;
    }
    if (!element.equals(DataTypes.IntegerType) && !element.equals(DataTypes.LongType)) {
      throw new IllegalArgumentException(
          "Cannot read column " + column + " of " + o.inputs + ": element type " + element.simpleString() + " (expected string, int or bigint)");
    }
    return false;
  }

  private static JavaRDD<String[]> stringSentences(Dataset<Row> df, TrainOptions o) {
    boolean lower = o.lowercase;
    int max = o.maxSentenceLength;
    return df.select(o.column).javaRDD().flatMap(row -> {
      if (row.isNullAt(0)) {
        return Collections.emptyIterator();
      }
      List<String> values = row.getList(0);
      List<String> kept = new ArrayList<>(values.size());
      for (String t : values) {
        if (t != null && !t.isBlank()) {
          kept.add(lower ? t.toLowerCase(Locale.ROOT) : t);
        }
      }
      return cut(kept.toArray(new String[0]), max);
    });
  }

  private static JavaRDD<int[]> idSentences(Dataset<Row> df, TrainOptions o) {
    String column = o.column;
    long v = o.vocabSize;
    int max = o.maxSentenceLength;
    return df.select(functions.col(column), functions.input_file_name()).javaRDD().flatMap(row -> {
      if (row.isNullAt(0)) {
        return Collections.emptyIterator();
      }
      List<Object> values = row.getList(0);
      int[] ids = new int[values.size()];
      int n = 0;
      for (Object x : values) {
        if (x == null) {
          continue;
        }
        long id = ((Number) x).longValue();
        if (id < 0 || id >= v) {
          String file = row.isNullAt(1) || row.getString(1).isEmpty() ? "" : " in " + row.getString(1);
          throw new IllegalArgumentException(
              BAD_ID + id + " of column " + column + file + ": outside [0, " + v + ") (--vocab-size " + v + ")");
        }
        ids[n++] = (int) id;
      }
      List<int[]> out = new ArrayList<>();
      for (int i = 0; i < n; i += max) {
        out.add(Arrays.copyOfRange(ids, i, Math.min(n, i + max)));
      }
      return out.iterator();
    });
  }
}
