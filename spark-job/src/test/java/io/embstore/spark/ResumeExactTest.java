package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.ShardReader;
import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import java.nio.file.Path;
import java.util.Arrays;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Training resume, exactly: with one task slot ({@code local[1]}), a run cut after a checkpoint
 * (an injected failure in the first task after it) and resumed ends with the same rows and
 * optimizer state, bit for bit, in both matrices, as the same run never cut. Every seed depends on
 * run, epoch and partition only, the learning rate on the position in the corpus, and the resume
 * reloads exactly what the checkpoint holds.
 */
class ResumeExactTest {
  static SparkSession spark;
  @TempDir Path dir;
  BufferAllocator allocator;

  @BeforeAll
  static void startSpark() {
    spark = TrainJob.localSession("local[1]");
  }

  @AfterAll
  static void stopSpark() {
    spark.stop();
  }

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    allocator.close();
  }

  @ParameterizedTest
  @ValueSource(strings = {"sgd", "rowwise-adagrad"})
  void aResumedRunEndsBitForBitWhereTheUncutRunEnds(String optimizer) throws Exception {
    Path corpus = Gpt2TrainTest.quickstartLines(dir, 60);
    Path uncut = dir.resolve("uncut");
    Path cut = dir.resolve("cut");
    // 4 partitions, 3 epochs, a checkpoint at the end of each epoch (--checkpoint-minutes 0). The
    // cut run fails in epoch 2's second task (task 5), after its first task pushed updates that
    // the resume must discard: it restarts from epoch 1's checkpoint.
    String[] common = {"--input", corpus.toString(), "--epochs", "3", "--dim", "16", "--min-count", "3",
        "--partitions", "4", "--shards", "2", "--checkpoint-minutes", "0", "--seed", "11", "--optimizer", optimizer,
        "--progress-seconds", "30"};
    TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), HdfsTrainTest.concat(common, "--output", uncut.toString())));

    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
            HdfsTrainTest.concat(common, "--output", cut.toString(), "--fail-at-task", "5"))))
        .hasMessageContaining("injected failure in epoch 2, partition 1");
    TableManifest atCut = Table.open(cut).manifest();
    assertThat(atCut.properties()).containsEntry(TrainJob.P_EPOCH, "1").containsEntry(TrainJob.P_COMPLETE, "false");
    TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), HdfsTrainTest.concat(common, "--output", cut.toString(), "--resume")));

    for (String matrix : new String[] {"", TrainJob.CONTEXT_DIR}) {
      Table a = Table.open(matrix.isEmpty() ? uncut : uncut.resolve(matrix));
      Table b = Table.open(matrix.isEmpty() ? cut : cut.resolve(matrix));
      assertThat(b.manifest().properties()).containsEntry(TrainJob.P_COMPLETE, "true");
      assertThat(b.manifest().optimizer()).isEqualTo(a.manifest().optimizer());
      int[] bitsA = bits(a);
      int[] bitsB = bits(b);
      int differ = 0;
      for (int i = 0; i < bitsA.length; i++) {
        differ += bitsA[i] != bitsB[i] ? 1 : 0;
      }
      System.out.printf("resume exact, %s, %s: %,d of %,d stored values differ%n", optimizer,
          matrix.isEmpty() ? "input" : "context", differ, bitsA.length);
      assertThat(differ).as("%s values of %s that differ, of %d", optimizer, matrix.isEmpty() ? "input" : matrix, bitsA.length)
          .isZero();
      assertThat(Arrays.stream(bitsA).filter(x -> x != 0).count()).as("rows were trained").isGreaterThan(bitsA.length / 2);
    }
  }

  /** Every stored float (embedding, then every state column) of every shard, as raw bits, in shard and row order. */
  private int[] bits(Table t) throws Exception {
    TableManifest m = t.manifest();
    int width = m.dim();
    for (TableManifest.StateColumn s : m.stateColumns()) {
      width += s.width();
    }
    int[] out = new int[Math.toIntExact(m.rows() * width)];
    int at = 0;
    for (int s = 0; s < m.numShards(); s++) {
      try (ShardReader r = t.openShard(s, allocator, true)) {
        while (r.loadNextBatch()) {
          for (int i = 0; i < r.batchRows() * m.dim(); i++) {
            out[at++] = r.embeddings().getInt(4L * i);
          }
          for (int c = 0; c < m.stateColumns().size(); c++) {
            for (int i = 0; i < r.batchRows() * m.stateColumns().get(c).width(); i++) {
              out[at++] = r.state(c).getInt(4L * i);
            }
          }
        }
      }
    }
    assertThat(at).isEqualTo(out.length);
    return out;
  }
}
