package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.Tokenizer;
import io.embstore.format.Vocabulary;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.stream.IntStream;
import java.util.zip.GZIPInputStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code train --tokenizer gpt2} on the quickstart corpus: the table has GPT-2's 50,257 rows, its
 * vocabulary is GPT-2's token strings with the corpus's counts, it records its tokenizer (so a
 * text lookup needs no flag), and frequent tokens get sensible neighbours.
 */
class Gpt2TrainTest extends SparkTestBase {
  @TempDir Path dir;
  BufferAllocator allocator;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    allocator.close();
  }

  /** The first {@code lines} lines (about 1,000 words each) of the quickstart corpus. */
  static Path quickstartLines(Path dir, int lines) throws Exception {
    Path kjv = Paths.get(System.getProperty("embstore.repo.dir", ".."), "deploy/quickstart/kjv.txt.gz");
    Path out = dir.resolve("kjv.txt");
    try (BufferedReader r = new BufferedReader(new InputStreamReader(new GZIPInputStream(Files.newInputStream(kjv)), StandardCharsets.UTF_8));
        Writer w = Files.newBufferedWriter(out)) {
      String line;
      for (int i = 0; i < lines && (line = r.readLine()) != null; i++) {
        w.write(line);
        w.write('\n');
      }
    }
    return out;
  }

  @Test
  void trainsGpt2IdsIntoATableThatRecordsItsTokenizer() throws Exception {
    Path corpus = quickstartLines(dir, 400);
    Path out = dir.resolve("gpt2");
    String[] options = {"--input", corpus.toString(), "--output", out.toString(), "--tokenizer", "gpt2", "--epochs", "3",
        "--dim", "32", "--checkpoint-minutes", "0", "--progress-seconds", "5"};
    TrainJob.Result r = TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), options));
    System.out.println(r.summary());

    Table t = Table.open(out);
    TableManifest m = t.manifest();
    assertThat(m.rows()).isEqualTo(50_257);
    assertThat(m.properties()).containsEntry(Tokenizer.PROPERTY, "gpt2").containsEntry(TrainJob.P_COMPLETE, "true");
    assertThat(t.verify(allocator)).allMatch(l -> l.contains(": ok"));
    assertThat(Table.open(out.resolve(TrainJob.CONTEXT_DIR)).manifest().rows()).isEqualTo(50_257);

    // The vocabulary is GPT-2's, id for id, with this corpus's counts.
    Vocabulary v = t.vocabulary(allocator);
    Vocabulary gpt2 = Tokenizer.of("gpt2").vocabulary();
    assertThat(v.size()).isEqualTo(50_257);
    assertThat(v.tokens()).isEqualTo(gpt2.tokens());
    assertThat(v.token(15496)).isEqualTo("Hello");
    long[] expected = new long[50_257];
    for (String line : Files.readAllLines(corpus)) {
      for (long id : Tokenizer.of("gpt2").encode(line)) {
        expected[(int) id]++;
      }
    }
    assertThat(v.counts()).isEqualTo(expected);
    assertThat(v.count(v.requireId("\u0120god"))).isGreaterThan(1000);

    // The table's own tokenizer turns text into the ids it was trained on.
    Tokenizer forTable = Tokenizer.forTable(m, v);
    assertThat(forTable.name()).isEqualTo("gpt2");
    assertThat(forTable.encode("Hello world")).containsExactly(15496, 995);

    // Neighbours among the ids the corpus holds (the others keep their random start).
    float[][] rows = TrainJobTest.rows(t, allocator);
    int[] seen = IntStream.range(0, expected.length).filter(i -> expected[i] > 0).toArray();
    long father = closer(rows, seen, v.requireId("\u0120father"), v.requireId("\u0120mother"));
    long sons = closer(rows, seen, v.requireId("\u0120sons"), v.requireId("\u0120daughters"));
    long water = closer(rows, seen, v.requireId("\u0120king"), v.requireId("\u0120water"));
    System.out.printf("gpt2 ids closer than the pair's second token, of %d seen: father~mother %d, sons~daughters %d, king~water %d%n",
        seen.length, father, sons, water);
    assertThat(father).isLessThan(seen.length / 20);
    assertThat(sons).isLessThan(seen.length / 20);
    assertThat(water).isGreaterThan(seen.length / 10);

    // A resume must keep the tokenizer: the ids would mean other tokens.
    String[] noTokenizer = {"--input", corpus.toString(), "--output", out.toString(), "--epochs", "4", "--dim", "32", "--resume"};
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), noTokenizer)))
        .hasMessage("Cannot resume " + out + ": the checkpoint's ids come from --tokenizer gpt2 but these options use"
            + " whitespace tokens (the tokenizer must stay as it was)");
    assertThat(Table.open(out).manifest().tableVersion()).isEqualTo(m.tableVersion());
  }

  @Test
  void aTokenizerIsRefusedWithOptionsThatContradictIt() {
    String[] base = {"--input", "corpus.txt", "--output", "out", "--tokenizer"};
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), HdfsTrainTest.concat(base, "bpe")))
        .hasMessage("Cannot use --tokenizer: bpe (known: gpt2)");
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), HdfsTrainTest.concat(base, "gpt2", "--lowercase")))
        .hasMessage("Cannot use --lowercase: with --tokenizer gpt2 (a byte-pair encoding takes the text as it is; give one of them)");
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), HdfsTrainTest.concat(base, "gpt2", "--vocab-size", "100")))
        .hasMessage("Cannot use --vocab-size: 100 (--tokenizer gpt2 sets V)");
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), HdfsTrainTest.concat(base, "gpt2", "--max-vocab", "100")))
        .hasMessage("Cannot use --max-vocab: 100 (--tokenizer gpt2 sets V; every id of the tokenizer has a row)");
  }

  @Test
  void aTokenizerReadsTextFilesOnly() throws Exception {
    Path parquet = dir.resolve("ids.parquet");
    spark.createDataFrame(java.util.List.of(org.apache.spark.sql.RowFactory.create((Object) new String[] {"a", "b"})),
            new org.apache.spark.sql.types.StructType().add("tokens",
                org.apache.spark.sql.types.DataTypes.createArrayType(org.apache.spark.sql.types.DataTypes.StringType)))
        .write().parquet(parquet.toString());
    Path out = dir.resolve("never");
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
            "--input", parquet.toString(), "--output", out.toString(), "--tokenizer", "gpt2")))
        .hasMessage("Cannot use --tokenizer gpt2 with parquet input [" + parquet + "]: it tokenizes text files"
            + " (a parquet column of ids trains with --vocab-size)");
    assertThat(out).doesNotExist();
  }

  /** How many of the {@code seen} ids other than {@code a} are closer (cosine) to {@code a} than {@code b} is. */
  static long closer(float[][] rows, int[] seen, int a, int b) {
    double target = TrainJobTest.cos(rows[a], rows[b]);
    return IntStream.of(seen).filter(j -> j != a && TrainJobTest.cos(rows[a], rows[j]) > target).count();
  }
}
