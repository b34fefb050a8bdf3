package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Table;
import io.embstore.format.Vocabulary;
import io.embstore.spark.SparkTestBase;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code embstore train} and then {@code embstore export --to word2vec}, as the command line runs
 * them: subcommands found by {@link Cli#root()}. Not a {@link SparkTestBase}: the train command
 * makes its own local[2] session and stops it.
 */
class TrainCommandTest {
  @TempDir Path dir;

  @Test
  void embstoreTrainWritesATableThatExportsToWord2vecTextRowForRow() throws Exception {
    Path corpus = SparkTestBase.proseSlice(dir, 200_000);
    Path out = dir.resolve("table");
    StringWriter stdout = new StringWriter();
    StringWriter stderr = new StringWriter();
    CommandLine root = Cli.root();
    root.setOut(new PrintWriter(stdout));
    root.setErr(new PrintWriter(stderr));

    int code = root.execute("train", "--input", corpus.toString(), "--output", out.toString(), "--epochs", "1",
        "--dim", "16", "--min-count", "20", "--checkpoint-minutes", "0", "--progress-seconds", "2");
    assertThat(code).as("stderr: %s", stderr).isEqualTo(Cli.EXIT_OK);
    assertThat(stdout.toString()).contains("trained ").contains("wrote " + out + " (table version ");

    Path file = dir.resolve("vectors.txt");
    code = root.execute("export", "--to", "word2vec", "--table", out.toString(), "--output", file.toString());
    assertThat(code).as("stderr: %s", stderr).isEqualTo(Cli.EXIT_OK);

    List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    try (BufferAllocator allocator = new RootAllocator()) {
      Table t = Table.open(out);
      assertThat(t.verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
      long rows = t.manifest().rows();
      Vocabulary v = t.vocabulary(allocator);
      assertThat(v.size()).isEqualTo(rows).isGreaterThan(100);
      assertThat(v.token(0)).isEqualTo("the");
      assertThat(lines.get(0)).isEqualTo(rows + " 16");
      assertThat(lines).hasSize((int) rows + 1);
      long[] checked = {0};
      t.forEachRowInIdOrder(allocator, true, (firstId, n, buf, offset) -> {
        for (int r = 0; r < n; r++) {
          long id = firstId + r;
          String[] fields = lines.get((int) id + 1).split(" ");
          assertThat(fields).as("line of id %d", id).hasSize(17);
          assertThat(fields[0]).as("token of id %d", id).isEqualTo(v.token(id));
          float[] expected = new float[16];
          float[] exported = new float[16];
          for (int c = 0; c < 16; c++) {
            expected[c] = buf.getFloat(offset + (r * 16L + c) * 4);
            exported[c] = Float.parseFloat(fields[c + 1]);
          }
          assertThat(exported).as("vector of id %d (%s)", id, v.token(id)).containsExactly(expected);
          checked[0]++;
        }
      });
      assertThat(checked[0]).isEqualTo(rows);
      // Trained, not the initial rows: every initial value is below 0.5 / C in magnitude.
      assertThat(java.util.Arrays.stream(lines.get(1).split(" ")).skip(1).mapToDouble(Float::parseFloat).map(Math::abs).max()
          .orElse(0)).isGreaterThan(0.5 / 16);
    }

    // A task that fails: exit 1 and one line naming the task's own error, not Spark's stack traces.
    stderr.getBuffer().setLength(0);
    code = root.execute("train", "--input", corpus.toString(), "--output", dir.resolve("failed").toString(), "--epochs", "1",
        "--dim", "16", "--min-count", "20", "--checkpoint-minutes", "0", "--fail-at-task", "0");
    assertThat(code).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(stderr.toString().lines().toList()).as("stderr").singleElement().satisfies(line -> assertThat(line)
        .startsWith("embstore train: ")
        .contains("Cannot continue training: injected failure in epoch 1, partition 0 (--fail-at-task)")
        .doesNotContain("\tat ", "Driver stacktrace"));
  }

  @Test
  void aMissingInputIsOneLineBeforeSparkStarts() {
    Path missing = dir.resolve("no-such-corpus.txt");
    StringWriter stderr = new StringWriter();
    CommandLine root = Cli.root();
    root.setOut(new PrintWriter(new StringWriter()));
    root.setErr(new PrintWriter(stderr));
    int code = root.execute("train", "--input", missing.toString(), "--output", dir.resolve("never").toString());
    assertThat(code).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(stderr.toString().lines().toList()).as("stderr")
        .containsExactly("embstore train: Cannot read --input " + missing + ": no such file or directory");
    assertThat(dir.resolve("never")).doesNotExist();
  }

  @Test
  void trainCommandReportsABadOptionOnOneLineWithExitOne() {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Cli.run(new TrainCommand(), new PrintWriter(out), new PrintWriter(err),
        "--input", "a.txt", "--output", "t", "--negatives", "-1");
    assertThat(code).isEqualTo(1);
    assertThat(err.toString()).startsWith("embstore train: Cannot use --negatives: -1 (must be in 0..1000)");
  }
}
