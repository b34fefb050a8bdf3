package io.embstore.spark;

import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableStorage;
import io.embstore.format.TableManifest;
import io.embstore.format.Tokenizer;
import io.embstore.format.Vocabulary;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.stream.Stream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.FilterFunction;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.storage.StorageLevel;
import org.apache.spark.util.LongAccumulator;
import scala.Tuple2;

/**
 * The training corpus as sentences of token ids, partitioned and cached on the executors, with
 * the unigram statistics the sampler needs in compact form ({@link Unigrams.Spec}). No structure
 * with an entry per id is built on the driver or sent to every executor:
 *
 * <ul>
 *   <li>Text input: tokens are counted by a Spark aggregation, tokens seen fewer than {@code
 *       --min-count} times dropped, the rest sorted by descending count, ties by token (UTF-8 byte
 *       order), by a distributed sort whose partitions number the ids (at most {@code --max-vocab}
 *       kept). The vocabulary stays in those partitions: its pieces are written by the executors at
 *       the first checkpoint ({@link Pieces#write}), and the corpus's tokens are mapped to ids by a
 *       join with it (or, up to {@code --vocab-broadcast-max} tokens, a broadcast map). The driver
 *       holds per partition its size and its runs of equal counts.
 *   <li>Id input (array&lt;int|bigint&gt;): V = {@code --vocab-size}; ids are counted by a Spark
 *       aggregation and sorted by descending count; the driver streams them (one partition at a
 *       time) into the sampler's order file, 4 bytes per id seen, sent to the executors as a Spark
 *       file ({@link org.apache.spark.SparkContext#addFile}). Ids that are already numbered by
 *       descending count (ties by id), all of them seen, need no file.
 *   <li>A tokenizer's ids ({@code --tokenizer}): V is the tokenizer's (small and fixed), so one
 *       pass counts every id into one {@code long[V]}; the driver orders the ids for the sampler
 *       as above (the same order file) and the vocabulary takes its counts from the same array.
 * </ul>
 */
final class Corpus implements AutoCloseable {
  private static final String BAD_ID = "Cannot read token id ";
  final JavaRDD<int[]> sentences;
  /** V: rows of the input matrix. */
  final long rows;
  final Unigrams.Spec unigrams;
  /** The vocabulary to write with the first checkpoint (built here, or a tokenizer's); null for id input and for a resumed run. */
  final Hosting.VocabularyWriter vocabulary;
  final long[] partitionTokens;
  final long totalTokens;
  /** Seconds spent counting, sorting and numbering the vocabulary and building the sampler's runs. */
  final double vocabularySeconds;
  private final Path scratch;

  private Corpus(JavaRDD<int[]> sentences, long rows, Unigrams.Spec unigrams, Hosting.VocabularyWriter vocabulary, long[] partitionTokens,
      double vocabularySeconds, Path scratch) {
    this.sentences = sentences;
    this.rows = rows;
    this.unigrams = unigrams;
    this.vocabulary = vocabulary;
    this.partitionTokens = partitionTokens;
    this.totalTokens = Arrays.stream(partitionTokens).sum();
    this.vocabularySeconds = vocabularySeconds;
    this.scratch = scratch;
  }

  long rows() {
    return rows;
  }

  /**
   * The partition sizes as a checkpoint records them: the total and a CRC-32 of every partition's
   * token count, so a resume can tell that it rebuilt the same partitions.
   */
  String partitionFingerprint() {
    java.util.zip.CRC32 crc = new java.util.zip.CRC32();
    ByteBuffer b = ByteBuffer.allocate(8 * partitionTokens.length);
    for (long t : partitionTokens) {
      b.putLong(t);
    }
    crc.update(b.array());
    return totalTokens + " tokens in " + partitionTokens.length + " partitions, crc32 " + Long.toHexString(crc.getValue());
  }

  /**
   * Reads and encodes the corpus into {@code numPartitions} partitions.
   *
   * @param known the table of a checkpoint being resumed, whose vocabulary the ids must follow, or null
   * @param progress receives the stage and counters of the build (may be null)
   */
  static Corpus load(SparkSession spark, TrainOptions o, Table known, int numPartitions, BuildProgress progress)
      throws IOException {
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    BuildProgress p = progress != null ? progress : BuildProgress.quiet(spark.sparkContext());
    String format = format(o);
    Dataset<Row> df = format.equals("text") ? null : spark.read().format(format).load(o.inputs.toArray(new String[0]));
    long t0 = System.nanoTime();
    JavaRDD<int[]> encoded;
    long rows;
    Unigrams.Spec unigrams = null;
    Hosting.VocabularyWriter vocabulary = null;
    Path scratch = null;
    JavaRDD<int[]> tokenized = null;
    Tokenizer tokenizer = null;
    if (o.tokenizer != null) {
      if (df != null) {
        throw new IllegalArgumentException("Cannot use --tokenizer " + o.tokenizer + " with " + format + " input " + o.inputs
            + ": it tokenizes text files (a " + format + " column of ids trains with --vocab-size)");
      }
      tokenizer = Tokenizer.of(o.tokenizer);
      rows = tokenizer.vocabularySize();
      // Encoded once: counting and the partitioning read it again.
      tokenized = tokenizedSentences(spark, o).persist(StorageLevel.MEMORY_AND_DISK());
      encoded = tokenized;
    } else if (df == null || stringColumn(df, o)) {
      JavaRDD<String[]> text = df == null ? textSentences(spark, o) : stringSentences(df, o);
      TokenIds ids = known != null ? TokenIds.read(spark, known, o, p) : TokenIds.count(spark, text, o, p);
      rows = ids.rows;
      unigrams = ids.unigrams;
      vocabulary = known != null ? null : ids.pieces;
      encoded = ids.encode(spark, text, o, p);
    } else {
      if (o.vocabSize < 1) {
        throw new IllegalArgumentException(
            "Cannot train on ids of column " + o.column + ": --vocab-size is required for id input (V, ids in [0, V))");
      }
      encoded = idSentences(df, o);
      rows = o.vocabSize;
    }
    if (unigrams == null) {
      // Ids (a tokenizer's or a column's): the sampler's order file goes into a scratch directory
      // that lives as long as the corpus.
      scratch = Files.createTempDirectory("embstore-train-");
      try {
        if (tokenizer != null) {
          // One pass: V is the tokenizer's (small and fixed), so the counts of every id are one
          // array, from which the driver orders the ids and the vocabulary takes its counts.
          long[] counts = countTokenizerIds(sc, encoded, (int) rows, p);
          unigrams = sampler(sc, List.of(byCount(counts)).iterator(), o, rows, scratch);
          vocabulary = known == null ? new TokenizerVocabulary(tokenizer, counts) : null;
        } else {
          unigrams = countIds(spark, encoded, o, rows, scratch, p);
        }
      } catch (Exception e) { // a failed Spark job surfaces as SparkException, a checked exception Scala does not declare
        deleteScratch(scratch);
        if (tokenized != null) {
          tokenized.unpersist(false);
        }
        throw badId(e);
      }
    }
    double vocabularySeconds = (System.nanoTime() - t0) / 1e9;
    p.log(String.format(Locale.ROOT, "vocabulary and sampler: V=%,d, %s%,d tokens, %,d runs of equal counts (%,d bytes) in %.1f s",
        rows, unigrams.ranks() == rows ? "" : String.format(Locale.ROOT, "%,d ids seen, ", unigrams.ranks()), unigrams.total(),
        unigrams.runs(), 16L * unigrams.runs(), vocabularySeconds));
    try {
      // Round-robin from a start seeded by the input partition's index: the same files read with the
      // same splits give the same partitions, which --resume checks (Resume.checkCorpusMatches).
      JavaRDD<int[]> parts = encoded.repartition(numPartitions).persist(StorageLevel.MEMORY_AND_DISK());
      p.stage("encode and partition the corpus (" + numPartitions + " partitions)");
      TrainJob.describe(sc, "embstore train: encode and partition the corpus (" + numPartitions + " partitions)");
      LongAccumulator done = p.counter(BuildProgress.SENTENCES);
      List<Tuple2<Integer, Long>> sizes = parts.mapPartitionsWithIndex((i, it) -> {
        long n = 0;
        while (it.hasNext()) {
          n += it.next().length;
          done.add(1);
        }
        return Collections.singletonList(new Tuple2<>(i, n)).iterator();
      }, true).collect();
      long[] partitionTokens = new long[numPartitions];
      for (Tuple2<Integer, Long> t : sizes) {
        partitionTokens[t._1()] = t._2();
      }
      if (tokenized != null) {
        tokenized.unpersist(false);
      }
      return new Corpus(parts, rows, unigrams, vocabulary, partitionTokens, vocabularySeconds, scratch);
    } catch (Exception e) { // a failed Spark job surfaces as SparkException, a checked exception Scala does not declare
      deleteScratch(scratch);
      throw badId(e);
    }
  }

  /**
   * A bad id fails a Spark job whose message carries the task's whole stack trace, which {@code
   * embstore train} would print on its one error line: the task's exception (with its executor
   * stack) becomes the cause of one with its own message.
   */
  private static RuntimeException badId(Exception e) {
    for (Throwable t = e.getCause(); t != null; t = t.getCause()) {
      if (t instanceof IllegalArgumentException && String.valueOf(t.getMessage()).startsWith(BAD_ID)) {
        return new IllegalArgumentException(t.getMessage(), t);
      }
    }
    if (e instanceof RuntimeException r) {
      return r;
    }
    return new IllegalStateException(e.getMessage(), e);
  }

  /** Deletes the sampler's order file of id input (the executors have their own copies). */
  @Override
  public void close() {
    deleteScratch(scratch);
  }

  private static void deleteScratch(Path dir) {
    if (dir == null) {
      return;
    }
    try (Stream<Path> s = Files.list(dir)) {
      for (Path f : (Iterable<Path>) s::iterator) {
        Files.deleteIfExists(f);
      }
      Files.deleteIfExists(dir);
    } catch (IOException e) {
      // a temporary directory; the OS cleans it
    }
  }

  // ------------------------------------------------------------------ vocabulary of text input

  /** The token-to-id mapping of a run: built here (distributed) or read from a checkpoint's vocabulary files. */
  private static final class TokenIds {
    final long rows;
    final Unigrams.Spec unigrams;
    /** (token string, id int) rows, one partition per vocabulary piece. */
    final JavaRDD<Row> tokenIds;
    final Pieces pieces;

    TokenIds(long rows, Unigrams.Spec unigrams, JavaRDD<Row> tokenIds, Pieces pieces) {
      this.rows = rows;
      this.unigrams = unigrams;
      this.tokenIds = tokenIds;
      this.pieces = pieces;
    }

    /** Counts, cuts, sorts and numbers the tokens of {@code text}. */
    static TokenIds count(SparkSession spark, JavaRDD<String[]> text, TrainOptions o, BuildProgress p) {
      JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
      p.stage("count tokens");
      TrainJob.describe(sc, "embstore train: count tokens and build the vocabulary");
      LongAccumulator read = p.counter(BuildProgress.TOKENS);
      LongAccumulator distinct = p.counter(BuildProgress.DISTINCT);
      StructType schema = new StructType().add("token", DataTypes.StringType, false).add("n", DataTypes.LongType, false);
      Dataset<Row> partial = spark.createDataFrame(text.mapPartitions(it -> new PartialCounts<String[], String>(it, (s, m) -> {
        read.add(s.length);
        for (String t : s) {
          m.computeIfAbsent(t, k -> new long[1])[0]++;
        }
      }, PartialCounts.LIMIT)), schema);
      Counted counted = countAndSort(sc, partial, o.minCount, distinct);
      JavaRDD<Row> sorted = counted.sorted();
      p.stage("number the vocabulary");
      List<long[]> stats = new ArrayList<>(sorted.mapPartitionsWithIndex((i, it) -> runsOf(i, it, 1), true).collect());
      counted.cache().unpersist(false);
      long distinctKept = stats.stream().mapToLong(s -> s[1]).sum();
      long rows = o.maxVocab > 0 ? Math.min(o.maxVocab, distinctKept) : distinctKept;
      if (rows < 1) {
        throw new IllegalArgumentException(
            "Cannot train on " + o.inputs + ": no token is seen at least --min-count=" + o.minCount + " times");
      }
      long[] offsets = new long[stats.stream().mapToInt(s -> (int) s[0]).max().orElse(0) + 1];
      Unigrams.Builder runs = new Unigrams.Builder();
      stats.sort((a, b) -> Long.compare(a[0], b[0]));
      long next = 0;
      for (long[] s : stats) {
        offsets[(int) s[0]] = next;
        next += s[1];
        for (int r = 2; r + 1 < s.length; r += 2) {
          runs.add(s[r], Math.min(s[r + 1], rows - runs.ranks()));
        }
      }
      long v = rows;
      JavaRDD<Row> tokenIds = sorted.mapPartitionsWithIndex((i, it) -> {
        long first = i < offsets.length ? offsets[i] : v;
        // Lazily: a partition of the vocabulary may hold millions of tokens.
        return new Iterator<Row>() {
          long id = first;

          @Override
          public boolean hasNext() {
            return id < v && it.hasNext();
          }

          @Override
          public Row next() {
            return RowFactory.create(it.next().getString(0), (int) id++);
          }
        };
      }, true);
      return new TokenIds(rows, runs.build(o.sample, null), tokenIds, new Pieces(sorted, offsets, rows));
    }

    /** The vocabulary of a checkpoint's table, read by tasks, one per vocabulary file. */
    static TokenIds read(SparkSession spark, Table table, TrainOptions o, BuildProgress p) {
      JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
      TableManifest m = table.manifest();
      if (!m.hasVocabulary()) {
        throw new IllegalArgumentException("Cannot resume " + table.location() + ": the checkpoint of text input has no vocabulary");
      }
      p.stage("read the checkpoint's vocabulary");
      TrainJob.describe(sc, "embstore train: read the vocabulary of " + table.location());
      String dir = table.location().uri();
      byte[] conf = ShardHosting.serialize(sc.hadoopConfiguration());
      List<Integer> files = new ArrayList<>();
      for (int f = 0; f < m.vocabularyFiles().size(); f++) {
        files.add(f);
      }
      LongAccumulator read = p.counter(BuildProgress.DISTINCT);
      // Read twice (runs, then ids), a record batch at a time: files are cheaper to read again
      // than the rows to cache.
      JavaRDD<Row> rows = sc.parallelize(files, files.size()).mapPartitions(fs -> vocabularyRows(dir, conf, fs.next(), read));
      List<long[]> stats = new ArrayList<>(rows.mapPartitionsWithIndex((i, it) -> runsOf(i, it, 2), true).collect());
      stats.sort((a, b) -> Long.compare(a[0], b[0]));
      Unigrams.Builder runs = new Unigrams.Builder();
      try {
        for (long[] s : stats) {
          for (int r = 2; r + 1 < s.length; r += 2) {
            runs.add(s[r], s[r + 1]);
          }
        }
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("Cannot resume " + table.location() + ": its vocabulary is not in descending count order ("
            + e.getMessage() + ")", e);
      }
      JavaRDD<Row> tokenIds = rows.map(r -> RowFactory.create(r.getString(0), r.getInt(1)));
      return new TokenIds(m.rows(), runs.build(o.sample, null), tokenIds, null);
    }

    /**
     * The sentences as ids: a broadcast map up to {@code --vocab-broadcast-max} tokens, else a join
     * of every (sentence, position, token) with the vocabulary, regrouped by sentence.
     */
    JavaRDD<int[]> encode(SparkSession spark, JavaRDD<String[]> text, TrainOptions o, BuildProgress p) {
      JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
      p.stage("map tokens to ids (" + (rows <= o.vocabBroadcastMax ? "broadcast map" : "join") + ")");
      if (rows <= o.vocabBroadcastMax) {
        Map<String, Integer> ids = new HashMap<>((int) rows * 2);
        for (Row r : tokenIds.collect()) {
          ids.put(r.getString(0), r.getInt(1));
        }
        Broadcast<Map<String, Integer>> b = sc.broadcast(ids);
        return text.map(s -> Corpus.encode(s, b.value())).filter(s -> s.length > 0);
      }
      StructType sentenceSchema = new StructType()
          .add("sid", DataTypes.LongType, false)
          .add("tokens", DataTypes.createArrayType(DataTypes.StringType, false), false);
      Dataset<Row> withIds = spark.createDataFrame(text.zipWithUniqueId().map(t -> RowFactory.create(t._2(), t._1())), sentenceSchema);
      StructType vocabSchema = new StructType().add("token", DataTypes.StringType, false).add("id", DataTypes.IntegerType, false);
      Dataset<Row> vocab = spark.createDataFrame(tokenIds, vocabSchema);
      Dataset<Row> positions = withIds.select(functions.col("sid"), functions.posexplode(functions.col("tokens")).as(new String[] {"pos", "token"}));
      Dataset<Row> joined = positions.join(vocab, "token")
          .groupBy("sid")
          .agg(functions.array_sort(functions.collect_list(functions.struct(functions.col("pos"), functions.col("id")))).as("p"))
          .select(functions.col("p.id"));
      return joined.javaRDD().map(r -> {
        List<Integer> l = r.getList(0);
        int[] out = new int[l.size()];
        for (int i = 0; i < out.length; i++) {
          out[i] = l.get(i);
        }
        return out;
      });
    }
  }

  /**
   * The values of one partition's sentences as rows (value, n), counted in a hash map of at most
   * about {@code limit} values that is emitted and started again whenever it is full: a value may
   * come in several rows (the aggregation after sums them), and a task's memory stays bounded
   * however many distinct values its partition holds. Handing Spark SQL a row per token instead
   * (its own partial aggregation after) converted every token to Spark's internal form first: in
   * issue 20's profile of the vocabulary that conversion cost more than the counting.
   */
  static final class PartialCounts<S, K> implements Iterator<Row> {
    /** Distinct values counted before the map is emitted (about 17 MB of heap for short tokens). */
    static final int LIMIT = 1 << 17;

    private final Iterator<S> sentences;
    private final java.util.function.BiConsumer<S, Map<K, long[]>> count;
    private final int limit;
    private Iterator<Map.Entry<K, long[]>> pending = Collections.emptyIterator();

    /** {@code count} adds the values of one sentence to the map, each to its {@code long[1]}. */
    PartialCounts(Iterator<S> sentences, java.util.function.BiConsumer<S, Map<K, long[]>> count, int limit) {
      this.sentences = sentences;
      this.count = count;
      this.limit = limit;
    }

    @Override
    public boolean hasNext() {
      while (!pending.hasNext()) {
        if (!sentences.hasNext()) {
          return false;
        }
        Map<K, long[]> counts = new HashMap<>();
        while (counts.size() < limit && sentences.hasNext()) {
          count.accept(sentences.next(), counts);
        }
        pending = counts.entrySet().iterator();
      }
      return true;
    }

    @Override
    public Row next() {
      if (!hasNext()) {
        throw new java.util.NoSuchElementException();
      }
      Map.Entry<K, long[]> e = pending.next();
      return RowFactory.create(e.getKey(), e.getValue()[0]);
    }
  }

  /** The cached counts and their sort (unpersist the cache once the sort's shuffle has run). */
  private record Counted(Dataset<Row> cache, JavaRDD<Row> sorted) {}

  /**
   * The distinct values of {@code partial} (rows (value, n): {@link PartialCounts} of each input
   * partition) as rows (value, count), those counted fewer than {@code minCount} times left out,
   * sorted by descending count, then by value: a Spark aggregation cached on disk so that it is
   * computed once (the sort samples it, then reads it), counting each distinct value in {@code
   * distinct}, and a distributed sort whose partitions later jobs on the returned RDD reuse. The
   * cache's spark.sql.shuffle.partitions (200 by default) are merged into a task per slot: a cached
   * plan keeps its partitions, and 200 tasks per stage cost more than the work on small inputs.
   */
  private static Counted countAndSort(JavaSparkContext sc, Dataset<Row> partial, long minCount, LongAccumulator distinct) {
    String value = partial.columns()[0];
    Dataset<Row> counted = partial.groupBy(value).agg(functions.sum(partial.columns()[1]).as("count"))
        .filter((FilterFunction<Row>) r -> {
          distinct.add(1);
          return r.getLong(1) >= minCount;
        })
        .coalesce(Math.max(1, sc.defaultParallelism()))
        .persist(StorageLevel.DISK_ONLY());
    JavaRDD<Row> sorted = counted.orderBy(functions.col("count").desc(), functions.col(value).asc()).javaRDD();
    return new Counted(counted, sorted);
  }

  /**
   * The rows (token, id, count) of vocabulary file {@code file} of the table in {@code dir}, read
   * lazily in a task; the reader closes when the task completes.
   */
  private static Iterator<Row> vocabularyRows(String dir, byte[] conf, int file, LongAccumulator read) throws IOException {
    BufferAllocator a = new RootAllocator();
    Vocabulary.TokenReader r;
    try {
      r = Table.open(TableStorage.hadoop(ShardHosting.deserialize(conf)).location(dir)).vocabularyReader(file, a);
    } catch (IOException | RuntimeException e) {
      a.close();
      throw e;
    }
    org.apache.spark.TaskContext.get().addTaskCompletionListener((org.apache.spark.util.TaskCompletionListener) ctx -> {
      try (a; r) {
        // closed in this order: the reader, then its allocator
      } catch (IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    });
    return new Iterator<Row>() {
      boolean ready;
      boolean has;

      @Override
      public boolean hasNext() {
        if (!ready) {
          try {
            has = r.next();
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
          ready = true;
        }
        return has;
      }

      @Override
      public Row next() {
        if (!hasNext()) {
          throw new java.util.NoSuchElementException();
        }
        ready = false;
        read.add(1);
        return RowFactory.create(r.token(), (int) r.id(), r.count());
      }
    };
  }

  /**
   * {@code {partition, n, count_1, n_1, count_2, n_2, ...}}: the size of one partition of a sorted
   * vocabulary (rows with the count in column {@code countColumn}) and its runs of equal counts, in
   * order.
   */
  private static Iterator<long[]> runsOf(int partition, Iterator<Row> rows, int countColumn) {
    RunLengths runs = new RunLengths(2);
    while (rows.hasNext()) {
      runs.add(rows.next().getLong(countColumn));
    }
    long[] out = runs.toArray();
    out[0] = partition;
    out[1] = runs.n;
    return Collections.singletonList(out).iterator();
  }

  /** Counts in order as runs: {@code {count_1, n_1, count_2, n_2, ...}} after {@code offset} free slots. */
  private static final class RunLengths {
    private long[] a = new long[16];
    private int k;
    private final int offset;
    long n;

    RunLengths(int offset) {
      this.offset = offset;
      this.k = offset;
    }

    void add(long c) {
      n++;
      if (k > offset && a[k - 2] == c) {
        a[k - 1]++;
        return;
      }
      if (k + 2 > a.length) {
        a = Arrays.copyOf(a, a.length * 2);
      }
      a[k++] = c;
      a[k++] = 1;
    }

    long[] toArray() {
      return Arrays.copyOf(a, k);
    }
  }

  /**
   * The vocabulary built by a run, still in the partitions of its distributed sort: written by the
   * executors as pieces of a table version, one piece per non-empty partition, ids from the
   * partition's offset, cut at V.
   */
  static final class Pieces implements Hosting.VocabularyWriter {
    private final JavaRDD<Row> sorted;
    private final long[] offsets;
    private final long rows;

    Pieces(JavaRDD<Row> sorted, long[] offsets, long rows) {
      this.sorted = sorted;
      this.offsets = offsets;
      this.rows = rows;
    }

    /** Writes the pieces as files of table version {@code version} in {@code dir}; returns their entries in id order. */
    @Override
    public List<TableManifest.FileEntry> write(TableLocation dir, long version) {
      String d = dir.uri();
      byte[] conf = ShardHosting.serialize(sorted.context().hadoopConfiguration());
      long[] off = offsets;
      long v = rows;
      List<Tuple2<Long, TableManifest.FileEntry>> written = new ArrayList<>(sorted.mapPartitionsWithIndex((i, it) -> {
        long first = i < off.length ? off[i] : v;
        if (first >= v || !it.hasNext()) {
          return Collections.<Tuple2<Long, TableManifest.FileEntry>>emptyIterator();
        }
        try (BufferAllocator a = new RootAllocator();
            Vocabulary.TokenWriter w = Vocabulary.pieceWriter(TableStorage.hadoop(ShardHosting.deserialize(conf)).location(d), i,
                version, first, a)) {
          for (long id = first; it.hasNext() && id < v; id++) {
            Row r = it.next();
            w.add(r.getString(0), r.getLong(1));
          }
          return Collections.singletonList(new Tuple2<>(first, w.finish())).iterator();
        }
      }, true).collect());
      written.sort((a, b) -> Long.compare(a._1(), b._1()));
      List<TableManifest.FileEntry> files = new ArrayList<>();
      for (Tuple2<Long, TableManifest.FileEntry> t : written) {
        files.add(t._2());
      }
      return files;
    }

    /** The whole vocabulary on the driver's heap: for tests. */
    Vocabulary collect() {
      List<String> tokens = new ArrayList<>();
      List<Long> counts = new ArrayList<>();
      for (Row r : sorted.collect()) {
        if (tokens.size() < rows) {
          tokens.add(r.getString(0));
          counts.add(r.getLong(1));
        }
      }
      return Vocabulary.of(tokens, counts.stream().mapToLong(Long::longValue).toArray());
    }
  }

  // ------------------------------------------------------------------ id input

  /**
   * Counts the ids of {@code encoded} with a Spark aggregation, sorts them by descending count
   * (ties by id), and streams them one partition at a time into the sampler's order file, which
   * {@link org.apache.spark.SparkContext#addFile} sends to every executor.
   */
  private static Unigrams.Spec countIds(SparkSession spark, JavaRDD<int[]> encoded, TrainOptions o, long rows, Path scratch,
      BuildProgress p) throws IOException {
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    p.stage("count token ids");
    TrainJob.describe(sc, "embstore train: count token ids");
    LongAccumulator read = p.counter(BuildProgress.TOKENS);
    LongAccumulator distinct = p.counter(BuildProgress.DISTINCT);
    StructType schema = new StructType().add("id", DataTypes.IntegerType, false).add("n", DataTypes.LongType, false);
    Dataset<Row> partial = spark.createDataFrame(encoded.mapPartitions(it -> new PartialCounts<int[], Integer>(it, (s, m) -> {
      read.add(s.length);
      for (int id : s) {
        m.computeIfAbsent(id, k -> new long[1])[0]++;
      }
    }, PartialCounts.LIMIT)), schema);
    Counted counted = countAndSort(sc, partial, 1, distinct);
    JavaRDD<Row> sorted = counted.sorted();
    p.stage("write the sampler's id order");
    // Packed on the executors into chunks of ids (4 bytes each) and their runs, so that the driver
    // holds one partition's chunks at a time, not a row object per id.
    JavaRDD<Tuple2<int[], long[]>> chunks = sorted.mapPartitions(it -> {
      List<Tuple2<int[], long[]>> out = new ArrayList<>();
      while (it.hasNext()) {
        int[] ids = new int[1 << 20];
        RunLengths runs = new RunLengths(0);
        int n = 0;
        while (n < ids.length && it.hasNext()) {
          Row r = it.next();
          ids[n++] = r.getInt(0);
          runs.add(r.getLong(1));
        }
        out.add(new Tuple2<>(Arrays.copyOf(ids, n), runs.toArray()));
      }
      return out.iterator();
    });
    try {
      return sampler(sc, chunks.toLocalIterator(), o, rows, scratch);
    } finally {
      counted.cache().unpersist(false);
    }
  }

  /**
   * The sampler's statistics of ids in rank order (descending count, ties by id), given as chunks
   * of ids and their runs of equal counts ({@code {count, n, ...}}): the runs, and the ids in the
   * order file that {@link org.apache.spark.SparkContext#addFile} sends to every executor, written
   * into {@code scratch} one chunk at a time; none when the ids are already numbered by descending
   * count and all of them are seen.
   */
  private static Unigrams.Spec sampler(JavaSparkContext sc, Iterator<Tuple2<int[], long[]>> chunks, TrainOptions o, long rows,
      Path scratch) throws IOException {
    String name = "embstore-ids-by-count-" + UUID.randomUUID() + ".bin";
    Path file = scratch.resolve(name);
    Unigrams.Builder runs = new Unigrams.Builder();
    boolean countOrder = true;
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      while (chunks.hasNext()) {
        Tuple2<int[], long[]> chunk = chunks.next();
        int[] ids = chunk._1();
        for (int i = 0; i < ids.length && countOrder; i++) {
          countOrder = ids[i] == runs.ranks() + i;
        }
        ByteBuffer buf = ByteBuffer.allocate(4 * ids.length).order(ByteOrder.LITTLE_ENDIAN);
        buf.asIntBuffer().put(ids);
        while (buf.hasRemaining()) {
          ch.write(buf);
        }
        long[] r = chunk._2();
        for (int i = 0; i < r.length; i += 2) {
          runs.add(r[i], r[i + 1]);
        }
      }
    }
    if (runs.ranks() < 1) {
      throw new IllegalArgumentException("Cannot train on " + o.inputs + ": the corpus holds no token id");
    }
    if (countOrder && runs.ranks() == rows) {
      // Every id seen and numbered by descending count already: rank = id, no file needed.
      Files.delete(file);
      return runs.build(o.sample, null);
    }
    sc.addFile(file.toString());
    return runs.build(o.sample, name);
  }

  /**
   * The ids of {@code counts} seen at least once, by descending count (ties by id: the order of
   * {@link #countIds}'s sort), with their runs of equal counts: one chunk for {@link #sampler}.
   */
  static Tuple2<int[], long[]> byCount(long[] counts) {
    int seen = 0;
    for (long c : counts) {
      if (c > 0) {
        seen++;
      }
    }
    Integer[] order = new Integer[seen];
    for (int id = 0, n = 0; id < counts.length; id++) {
      if (counts[id] > 0) {
        order[n++] = id;
      }
    }
    // stable: equal counts keep ascending ids
    Arrays.sort(order, (a, b) -> Long.compare(counts[b], counts[a]));
    int[] ids = new int[seen];
    RunLengths runs = new RunLengths(0);
    for (int i = 0; i < seen; i++) {
      ids[i] = order[i];
      runs.add(counts[order[i]]);
    }
    return new Tuple2<>(ids, runs.toArray());
  }

  // ------------------------------------------------------------------ reading the input

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

  /**
   * The one place where a line of text becomes tokens: the line stripped ({@link String#strip}),
   * optionally lower-cased, split on runs of the blanks of regex {@code \s} (space, tab, line
   * feed, vertical tab, form feed, carriage return), exactly as {@code strip().split("\\s+")}, by a
   * scan of the line (the regex cost more than the counting in issue 20's profile of the vocabulary).
   */
  static String[] tokenize(String line, boolean lowercase) {
    String s = line.strip();
    if (s.isEmpty()) {
      return new String[0];
    }
    if (lowercase) {
      s = s.toLowerCase(Locale.ROOT);
    }
    int n = s.length();
    String[] out = new String[Math.min(16, n / 2 + 1)];
    int t = 0;
    for (int i = 0; i < n; ) {
      int start = i;
      while (i < n && !isBlank(s.charAt(i))) {
        i++;
      }
      if (t == out.length) {
        out = Arrays.copyOf(out, 2 * t);
      }
      out[t++] = s.substring(start, i);
      while (i < n && isBlank(s.charAt(i))) {
        i++;
      }
    }
    return t == out.length ? out : Arrays.copyOf(out, t);
  }

  /** A character of regex {@code \s}: {@code [ \t\n\x0B\f\r]}. */
  private static boolean isBlank(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
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
      return cut(ids, n, max);
    });
  }

  /** The first {@code n} ids as sentences of at most {@code max} ids (none when {@code n} is 0). */
  static Iterator<int[]> cut(int[] ids, int n, int max) {
    if (n == ids.length && n <= max) {
      return n == 0 ? Collections.emptyIterator() : Collections.singletonList(ids).iterator();
    }
    List<int[]> out = new ArrayList<>(n / max + 1);
    for (int i = 0; i < n; i += max) {
      out.add(Arrays.copyOfRange(ids, i, Math.min(n, i + max)));
    }
    return out.iterator();
  }

  // ------------------------------------------------------------------ a tokenizer's ids

  /**
   * Text lines as a tokenizer's ids ({@code --tokenizer}): each line is encoded on its own (its
   * line break is not part of the text), then cut at {@code --max-sentence-length}.
   */
  private static JavaRDD<int[]> tokenizedSentences(SparkSession spark, TrainOptions o) {
    String name = o.tokenizer;
    int max = o.maxSentenceLength;
    return spark.read().textFile(o.inputs.toArray(new String[0])).javaRDD().flatMap(line -> {
      long[] ids = Tokenizer.of(name).encode(line);
      int[] out = new int[ids.length];
      int n = 0;
      for (long id : ids) {
        if (id != Tokenizer.UNKNOWN) {
          out[n++] = (int) id;
        }
      }
      return cut(out, n, max);
    });
  }

  /**
   * How often each of the {@code v} ids of a tokenizer occurs: a tree aggregation of one {@code
   * long[v]} per task (the build's progress counts the tokens read and, at the end, the distinct
   * ids).
   */
  static long[] countTokenizerIds(JavaSparkContext sc, JavaRDD<int[]> encoded, int v, BuildProgress p) {
    p.stage("count token ids");
    TrainJob.describe(sc, "embstore train: count token ids");
    LongAccumulator read = p.counter(BuildProgress.TOKENS);
    long[] counts = encoded.treeAggregate(new long[v], (acc, s) -> {
      for (int id : s) {
        acc[id]++;
      }
      read.add(s.length);
      return acc;
    }, (a, b) -> {
      for (int i = 0; i < a.length; i++) {
        a[i] += b[i];
      }
      return a;
    });
    p.counter(BuildProgress.DISTINCT).add(Arrays.stream(counts).filter(c -> c > 0).count());
    return counts;
  }

  /**
   * The vocabulary of a tokenizer's ids: every id's token string (id i is line i) and its count in
   * the corpus, written by the driver as one file (the tokenizer's vocabulary is small and fixed:
   * GPT-2's 50,257 tokens, about 1 MB).
   */
  static final class TokenizerVocabulary implements Hosting.VocabularyWriter {
    private final Tokenizer tokenizer;
    private final long[] counts;

    TokenizerVocabulary(Tokenizer tokenizer, long[] counts) {
      this.tokenizer = tokenizer;
      this.counts = counts;
    }

    @Override
    public List<TableManifest.FileEntry> write(TableLocation dir, long version) throws IOException {
      Vocabulary tokens = tokenizer.vocabulary();
      try (BufferAllocator a = new RootAllocator();
          Vocabulary.TokenWriter w = Vocabulary.pieceWriter(dir, 0, version, 0, a)) {
        for (int id = 0; id < counts.length; id++) {
          w.add(tokens.token(id), counts[id]);
        }
        return List.of(w.finish());
      }
    }
  }
}
