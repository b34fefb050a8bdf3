package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.Vocabulary;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Corpus#load}: the vocabulary built with Spark and the encoded sentences, from text, from
 * Parquet/ORC token columns and from Parquet/ORC id columns, against what the test computes itself
 * from the same lines.
 */
class CorpusTest extends SparkTestBase {
  @TempDir Path dir;

  /** Mixed case, runs of blanks, blank lines, ties in the counts, lines longer than 5 tokens. */
  static List<String> lines() {
    String[] words = {"the", "of", "and", "king", "queen", "river", "army", "navy", "water", "stone", "crown",
        "sword", "ship", "field", "tower", "gold", "iron", "bread", "salt", "wine"};
    SplittableRandom r = new SplittableRandom(7);
    List<String> lines = new ArrayList<>();
    for (int l = 0; l < 300; l++) {
      int n = r.nextInt(13);
      StringBuilder sb = new StringBuilder(r.nextInt(4) == 0 ? "  " : "");
      for (int i = 0; i < n; i++) {
        // Roughly Zipfian: word k with probability ~ 1/(k+1).
        int k = (int) Math.min(words.length - 1, Math.floor(Math.pow(words.length + 1, r.nextDouble())) - 1);
        String w = words[k];
        int c = r.nextInt(20);
        w = c == 0 ? w.toUpperCase(Locale.ROOT) : c < 4 ? Character.toUpperCase(w.charAt(0)) + w.substring(1) : w;
        sb.append(w).append(r.nextInt(6) == 0 ? " \t " : " ");
      }
      lines.add(sb.toString());
    }
    return lines;
  }

  /** The sentences as the test reads them: strip, split on blanks, optionally lower-case, cut. */
  static List<String[]> sentences(List<String> lines, boolean lowercase, int max) {
    List<String[]> out = new ArrayList<>();
    for (String line : lines) {
      String s = lowercase ? line.strip().toLowerCase(Locale.ROOT) : line.strip();
      if (s.isEmpty()) {
        continue;
      }
      String[] t = s.split("\\s+");
      for (int i = 0; i < t.length; i += max) {
        out.add(Arrays.copyOfRange(t, i, Math.min(t.length, i + max)));
      }
    }
    return out;
  }

  /** Counts with a HashMap, keeps counts >= minCount, sorts by count descending then token, cuts. */
  static Vocabulary expectedVocabulary(List<String[]> sentences, long minCount, int maxVocab) {
    Map<String, Long> counts = new HashMap<>();
    for (String[] s : sentences) {
      for (String t : s) {
        counts.merge(t, 1L, Long::sum);
      }
    }
    List<Map.Entry<String, Long>> kept = counts.entrySet().stream()
        .filter(e -> e.getValue() >= minCount)
        .sorted(Map.Entry.<String, Long>comparingByValue().reversed().thenComparing(Map.Entry.comparingByKey()))
        .limit(maxVocab > 0 ? maxVocab : Long.MAX_VALUE)
        .collect(Collectors.toList());
    return Vocabulary.of(kept.stream().map(Map.Entry::getKey).collect(Collectors.toList()),
        kept.stream().mapToLong(Map.Entry::getValue).toArray());
  }

  static List<String> encoded(List<String[]> sentences, Vocabulary v) {
    List<String> out = new ArrayList<>();
    for (String[] s : sentences) {
      int[] ids = Arrays.stream(s).mapToInt(v::id).filter(id -> id >= 0).toArray();
      if (ids.length > 0) {
        out.add(Arrays.toString(ids));
      }
    }
    out.sort(null);
    return out;
  }

  /** The corpus's sentences as a sorted list (repartitioning does not keep their order). */
  static List<String> sentencesOf(Corpus c) {
    List<int[]> all = c.sentences.collect();
    assertThat(c.totalTokens).isEqualTo(all.stream().mapToLong(s -> s.length).sum());
    return all.stream().map(Arrays::toString).sorted().collect(Collectors.toList());
  }

  Corpus load(String... args) throws IOException {
    String[] all = Stream.concat(Stream.of("--output", dir.resolve("unused").toString()), Arrays.stream(args))
        .toArray(String[]::new);
    return Corpus.load(spark, TrainOptions.parse(new SparkConf(false), all), null, 3, null);
  }

  /** The vocabulary the executors hold, collected (tests only). */
  static Vocabulary vocab(Corpus c) {
    return ((Corpus.Pieces) c.vocabulary).collect();
  }

  /** Counts by id from the corpus's compact unigram statistics. */
  static long[] counts(Corpus c) throws IOException {
    return Unigrams.open(c.unigrams, name -> Path.of(org.apache.spark.SparkFiles.get(name))).countsById((int) c.rows);
  }

  Path text(List<String> lines) throws IOException {
    Path p = dir.resolve("corpus.txt");
    Files.write(p, lines);
    return p;
  }

  /** Writes one row per element of {@code values} (null: a null array) with Spark. */
  <T> Path write(String format, String name, String column, DataType element, List<List<T>> values) {
    StructType schema = new StructType().add(column, DataTypes.createArrayType(element, true), true);
    List<Row> rows = values.stream().map(v -> RowFactory.create(v)).collect(Collectors.toList());
    Path p = dir.resolve(name);
    spark.createDataFrame(rows, schema).repartition(2).write().format(format).save(p.toString());
    return p;
  }

  @Test
  void textVocabularyIsLowerCasedCutByMinCountAndMaxVocabWithIdsByDescendingCountThenToken() throws Exception {
    Path small = dir.resolve("small.txt");
    Files.write(small, List.of("The cat sat on the mat", "", "the dog  sat on THE log", "A cat and a dog"));
    Corpus c = load("--input", small.toString(), "--lowercase", "--min-count", "2", "--max-vocab", "4");
    // the 4; a, cat, dog, on, sat 2 each (ties by token: on and sat fall past --max-vocab 4).
    assertThat(vocab(c).tokens()).containsExactly("the", "a", "cat", "dog");
    assertThat(counts(c)).containsExactly(4, 2, 2, 2);
    // Two runs of equal counts: 4 (id 0), 2 (ids 1..3); T = 10.
    assertThat(c.unigrams.runCounts()).containsExactly(4, 2);
    assertThat(c.unigrams.runStarts()).containsExactly(0, 1);
    assertThat(c.unigrams.total()).isEqualTo(10);
    assertThat(sentencesOf(c)).containsExactlyInAnyOrder("[0, 2, 0]", "[0, 3, 0]", "[1, 2, 1, 3]");

    Corpus cased = load("--input", small.toString(), "--min-count", "1");
    assertThat(vocab(cased).tokens()).containsExactly(
        "cat", "dog", "on", "sat", "the", "A", "THE", "The", "a", "and", "log", "mat");

    List<String> lines = lines();
    Path corpus = text(lines);
    for (boolean lowercase : new boolean[] {true, false}) {
      List<String[]> expected = sentences(lines, lowercase, 5);
      Vocabulary v = expectedVocabulary(expected, 3, 12);
      String[] args = {"--input", corpus.toString(), "--min-count", "3", "--max-vocab", "12", "--max-sentence-length", "5"};
      Corpus got = lowercase ? load(Stream.concat(Arrays.stream(args), Stream.of("--lowercase")).toArray(String[]::new))
          : load(args);
      assertThat(vocab(got).tokens()).as("lowercase %s", lowercase).isEqualTo(v.tokens());
      assertThat(counts(got)).as("lowercase %s", lowercase).isEqualTo(v.counts());
      assertThat(got.rows()).isEqualTo(12);
      assertThat(sentencesOf(got)).as("lowercase %s", lowercase).isEqualTo(encoded(expected, v));
      assertThat(got.partitionTokens).hasSize(3);
    }
  }

  /**
   * Above --vocab-broadcast-max tokens the corpus is mapped to ids by a join with the vocabulary
   * (no map in every executor): the same sentences as the broadcast map.
   */
  @Test
  void aVocabularyAboveTheBroadcastLimitIsJoinedWithTheCorpusGivingTheSameSentences() throws Exception {
    List<String> lines = lines();
    Path corpus = text(lines);
    String[] common = {"--input", corpus.toString(), "--lowercase", "--min-count", "2", "--max-sentence-length", "5"};
    Corpus broadcast = load(common);
    Corpus joined = load(cat(common, "--vocab-broadcast-max", "3"));
    Vocabulary v = expectedVocabulary(sentences(lines, true, 5), 2, 0);
    assertThat(v.size()).isGreaterThan(3);
    assertThat(vocab(joined)).isEqualTo(v);
    assertThat(sentencesOf(joined)).isEqualTo(sentencesOf(broadcast)).isEqualTo(encoded(sentences(lines, true, 5), v));
    assertThat(joined.totalTokens).isEqualTo(broadcast.totalTokens);
  }

  /**
   * The executors write the vocabulary in pieces, one per partition of its distributed sort, into a
   * table that one manifest commits; read back it is the vocabulary counted here.
   */
  @Test
  void theVocabularyIsWrittenInPiecesByTheExecutorsAndReadsBackWhole() throws Exception {
    List<String> lines = lines();
    Path corpus = text(lines);
    // Keep the sort's 8 partitions (adaptive execution would merge this small one into one).
    spark.conf().set("spark.sql.adaptive.coalescePartitions.enabled", "false");
    Corpus c;
    try {
      c = load("--input", corpus.toString(), "--min-count", "1", "--max-vocab", "25");
    } finally {
      spark.conf().unset("spark.sql.adaptive.coalescePartitions.enabled");
    }
    Vocabulary expected = expectedVocabulary(sentences(lines, false, 1000), 1, 25);
    Path table = dir.resolve("table");
    try (org.apache.arrow.memory.BufferAllocator a = new org.apache.arrow.memory.RootAllocator()) {
      try (io.embstore.format.TableWriter w = io.embstore.format.TableWriter.create(table, c.rows(), 2, 1, "modulo", a)) {
        java.nio.ByteBuffer zeros = java.nio.ByteBuffer.allocate((int) c.rows() * 2 * 4);
        w.appendInIdOrder(zeros, (int) c.rows());
        w.vocabularyFiles(c.vocabulary.write(io.embstore.format.TableLocation.of(table), w.tableVersion()));
        w.commit();
      }
      io.embstore.format.Table t = io.embstore.format.Table.open(table);
      assertThat(t.manifest().vocabularyFiles()).as("pieces").hasSizeGreaterThan(1);
      assertThat(t.verify(a)).allMatch(l -> l.contains(": ok"));
      assertThat(t.vocabulary(a)).isEqualTo(expected);
    }
  }

  @Test
  void parquetAndOrcTokenColumnsGiveTheSameVocabularyAndSentencesAsTheText() throws Exception {
    List<String> lines = lines();
    Path corpus = text(lines);
    // One array per line, the blank line as a null array (an empty array for the whitespace-only ones).
    List<List<String>> arrays = lines.stream()
        .map(l -> l.isEmpty() ? null : l.isBlank() ? List.<String>of() : Arrays.asList(l.strip().split("\\s+")))
        .collect(Collectors.toList());
    Path parquet = write("parquet", "tokens.parquet-dir", "tokens", DataTypes.StringType, arrays);
    Path orc = write("orc", "words.orc-dir", "words", DataTypes.StringType, arrays);
    String[] common = {"--lowercase", "--min-count", "2", "--max-sentence-length", "5"};
    Corpus fromText = load(cat(common, "--input", corpus.toString()));
    Vocabulary v = expectedVocabulary(sentences(lines, true, 5), 2, 0);
    assertThat(vocab(fromText)).isEqualTo(v);
    List<String> textSentences = sentencesOf(fromText);
    assertThat(textSentences).isEqualTo(encoded(sentences(lines, true, 5), v));
    // Directories of part files: --format auto finds the format from their extensions.
    Corpus fromParquet = load(cat(common, "--input", parquet.toString()));
    Corpus fromOrc = load(cat(common, "--input", orc.toString(), "--column", "words"));
    for (Corpus c : List.of(fromParquet, fromOrc)) {
      assertThat(vocab(c).tokens()).isEqualTo(v.tokens());
      assertThat(counts(c)).isEqualTo(v.counts());
      assertThat(sentencesOf(c)).isEqualTo(textSentences);
      assertThat(c.totalTokens).isEqualTo(fromText.totalTokens);
    }
  }

  @Test
  void idColumnsTakeVFromVocabSizeBuildNoVocabularyAndCountLikeTheText() throws Exception {
    List<String> lines = lines();
    Corpus fromText = load("--input", text(lines).toString(), "--lowercase", "--min-count", "3", "--max-sentence-length", "5");
    List<int[]> encoded = fromText.sentences.collect();
    List<List<Integer>> ints = new ArrayList<>();
    List<List<Long>> longs = new ArrayList<>();
    for (int[] s : encoded) {
      ints.add(Arrays.stream(s).boxed().collect(Collectors.toList()));
      longs.add(Arrays.stream(s).mapToLong(x -> x).boxed().collect(Collectors.toList()));
    }
    ints.add(null);
    longs.add(Arrays.asList(null, null));
    Path parquet = write("parquet", "ids.parquet-dir", "ids", DataTypes.IntegerType, ints);
    Path orc = write("orc", "ids.orc-dir", "tokens", DataTypes.LongType, longs);
    int v = vocab(fromText).size();
    long[] padded = Arrays.copyOf(counts(fromText), v + 2);

    // V = the text's vocabulary and two ids that never occur; options of the vocabulary cut do not apply.
    Corpus fromParquet = load("--input", parquet.toString(), "--column", "ids", "--vocab-size", Integer.toString(v + 2),
        "--min-count", "1000", "--max-vocab", "1", "--max-sentence-length", "5");
    assertThat(fromParquet.vocabulary).isNull();
    assertThat(fromParquet.rows()).isEqualTo(v + 2);
    assertThat(counts(fromParquet)).isEqualTo(padded);
    // The sampler's id order of id input: ids by descending count, those never seen left out.
    assertThat(fromParquet.unigrams.orderFile()).isNotNull();
    assertThat(fromParquet.unigrams.ranks()).isEqualTo(v);
    // Ids numbered by descending count already (the text's), every one seen: no order file.
    Corpus countOrdered = load("--input", parquet.toString(), "--column", "ids", "--vocab-size", Integer.toString(v),
        "--max-sentence-length", "5");
    assertThat(countOrdered.unigrams.orderFile()).isNull();
    assertThat(counts(countOrdered)).isEqualTo(counts(fromText));
    assertThat(sentencesOf(fromParquet)).isEqualTo(sentencesOf(fromText));

    // bigint ids, sentences cut at 2 ids.
    Corpus fromOrc = load("--input", orc.toString(), "--format", "orc", "--vocab-size", Integer.toString(v + 2),
        "--max-sentence-length", "2");
    assertThat(fromOrc.vocabulary).isNull();
    assertThat(counts(fromOrc)).isEqualTo(padded);
    List<String> cut = new ArrayList<>();
    for (int[] s : encoded) {
      for (int i = 0; i < s.length; i += 2) {
        cut.add(Arrays.toString(Arrays.copyOfRange(s, i, Math.min(s.length, i + 2))));
      }
    }
    cut.sort(null);
    assertThat(sentencesOf(fromOrc)).isEqualTo(cut);
  }

  @Test
  void idsOutsideZeroToVocabSizeAreRefusedNamingTheIdAndTheLimit() throws Exception {
    Path tooLarge = write("parquet", "large.parquet-dir", "ids", DataTypes.IntegerType, List.of(List.of(0, 1, 2), List.of(3, 5, 4)));
    assertThatThrownBy(() -> load("--input", tooLarge.toString(), "--column", "ids", "--vocab-size", "5"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("Cannot read token id 5 of column ids in file:")
        .hasMessageContaining(tooLarge + "/part-")
        .hasMessageEndingWith(".parquet: outside [0, 5) (--vocab-size 5)")
        // The error line of `embstore train` is the message alone (a cause only repeats it), not Spark's stage
        // failure with its stack trace.
        .hasMessageNotContaining("\n")
        .satisfies(e -> {
          for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
            assertThat(e.getMessage()).contains(c.getMessage());
          }
        });
    Path negative = write("orc", "negative.orc-dir", "tokens", DataTypes.LongType, List.of(List.of(0L, -1L)));
    assertThatThrownBy(() -> load("--input", negative.toString(), "--vocab-size", "5"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("Cannot read token id -1 of column tokens in file:")
        .hasMessageContaining(negative + "/part-")
        .hasMessageEndingWith(".orc: outside [0, 5) (--vocab-size 5)");
    assertThatThrownBy(() -> load("--input", tooLarge.toString(), "--column", "ids"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot train on ids of column ids: --vocab-size is required for id input (V, ids in [0, V))");
    assertThatThrownBy(() -> load("--input", tooLarge.toString(), "--column", "words", "--vocab-size", "5"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot read column words of [" + tooLarge + "]: not found (columns: ids)");
  }

  static String[] cat(String[] a, String... b) {
    return Stream.concat(Arrays.stream(a), Arrays.stream(b)).toArray(String[]::new);
  }

  // ------------------------------------------------------------------ partitions (what --resume relies on)

  /**
   * The same input read the same way rebuilds the same partitions (the ones a checkpoint counts as
   * done hold the same sentences), and an input that Spark splits otherwise gives another {@link
   * Corpus#partitionFingerprint()}, which the resume refuses.
   */
  @Test
  void theSameInputRebuildsTheSamePartitionsAndAnotherSplitIsDetected() throws IOException {
    SplittableRandom r = new SplittableRandom(5);
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < 600; i++) {
      StringBuilder b = new StringBuilder();
      for (int t = 0, n = 5 + r.nextInt(30); t < n; t++) {
        b.append(t == 0 ? "" : " ").append("w").append(r.nextInt(40));
      }
      lines.add(b.toString());
    }
    Path one = dir.resolve("one.txt");
    Files.write(one, lines);
    Corpus a = load(one);
    Corpus again = load(one);
    List<List<String>> pa = partitions(a);
    assertThat(partitions(again)).isEqualTo(pa);
    assertThat(again.partitionFingerprint()).isEqualTo(a.partitionFingerprint());
    assertThat(pa.stream().mapToInt(List::size).sum()).isEqualTo(600);
    assertThat(Arrays.stream(a.partitionTokens).min().getAsLong()).isGreaterThan(a.totalTokens / 8);
    // The same lines in 3 uneven files: Spark reads 3 input partitions, the round-robin starts
    // differ, and so do the partitions; the fingerprint tells.
    Path three = Files.createDirectories(dir.resolve("three"));
    int[] cuts = {0, 151, 381, 600};
    for (int f = 0; f < 3; f++) {
      Files.write(three.resolve("part-" + f + ".txt"), lines.subList(cuts[f], cuts[f + 1]));
    }
    Corpus split = load(three);
    assertThat(split.totalTokens).isEqualTo(a.totalTokens);
    assertThat(partitions(split)).isNotEqualTo(pa);
    assertThat(split.partitionFingerprint()).isNotEqualTo(a.partitionFingerprint())
        .startsWith(a.totalTokens + " tokens in 4 partitions, crc32 ");
  }

  private static Corpus load(Path input) throws IOException {
    TrainOptions o = TrainOptions.parse(new SparkConf(false), "--input", input.toString(), "--output", "unused", "--min-count", "1");
    return Corpus.load(spark, o, null, 4, null);
  }

  /** Each partition's sentences, sorted (order inside a partition is not part of the contract). */
  private static List<List<String>> partitions(Corpus c) {
    List<List<String>> out = new ArrayList<>(c.sentences.mapPartitions(it -> {
      List<String> s = new ArrayList<>();
      it.forEachRemaining(ids -> s.add(Arrays.toString(ids)));
      Collections.sort(s);
      return Collections.singletonList(s).iterator();
    }).collect());
    return out;
  }

  /**
   * A tokenizer's ids are counted once (one array of V counts); the sampler's order comes from
   * that array in the order of the id input's distributed sort: descending count, ties by id, ids
   * never seen left out, with the runs of equal counts.
   */
  @Test
  void theTokenizersCountsOrderTheIdsByDescendingCountTiesById() {
    scala.Tuple2<int[], long[]> chunk = Corpus.byCount(new long[] {3, 0, 7, 3, 1, 7, 0});
    assertThat(chunk._1()).containsExactly(2, 5, 0, 3, 4);
    assertThat(chunk._2()).containsExactly(7, 2, 3, 2, 1, 1);
  }

  /**
   * The tokenizer's one counting pass gives the sampler the statistics that id input's distributed
   * count and sort gives the same ids: the same runs, ranks and total, the same id order file.
   */
  @Test
  void aTokenizersIdsGetTheSamplerThatTheSameIdsAsAnIdColumnGet() throws Exception {
    List<String> lines = List.of("The cat sat on the mat.", "The dog sat on the log, and the cat saw the dog.",
        "A cat and a dog", "on the mat the cat sat");
    Corpus tokenized = load("--input", text(lines).toString(), "--tokenizer", "gpt2");
    io.embstore.format.Tokenizer gpt2 = io.embstore.format.Tokenizer.of("gpt2");
    List<List<Integer>> ids = new ArrayList<>();
    for (String line : lines) {
      ids.add(Arrays.stream(gpt2.encode(line)).mapToInt(x -> (int) x).boxed().collect(Collectors.toList()));
    }
    Path parquet = write("parquet", "gpt2-ids.parquet-dir", "ids", DataTypes.IntegerType, ids);
    Corpus column = load("--input", parquet.toString(), "--column", "ids", "--vocab-size", Long.toString(tokenized.rows()));

    Unigrams.Spec a = tokenized.unigrams;
    Unigrams.Spec b = column.unigrams;
    assertThat(a.runCounts()).isEqualTo(b.runCounts());
    assertThat(a.runStarts()).isEqualTo(b.runStarts());
    assertThat(a.ranks()).isEqualTo(b.ranks());
    assertThat(a.total()).isEqualTo(b.total());
    assertThat(a.orderFile()).isNotNull();
    assertThat(Files.readAllBytes(Path.of(org.apache.spark.SparkFiles.get(a.orderFile()))))
        .isEqualTo(Files.readAllBytes(Path.of(org.apache.spark.SparkFiles.get(b.orderFile()))));
    assertThat(counts(tokenized)).isEqualTo(counts(column));
    tokenized.close();
    column.close();
  }
}
