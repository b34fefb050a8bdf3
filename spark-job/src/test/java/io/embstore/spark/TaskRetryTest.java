package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Table;
import java.nio.file.Path;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A training task that fails is retried by Spark (here local[2,2]: two attempts per task, as
 * spark.task.maxFailures gives on a cluster): the retry trains the whole partition again while the
 * updates the failed attempt pushed stay applied. The job finishes with a complete table, logs the
 * repeated attempt and counts it in its summary (docs/training.md, "Retried tasks"). Not a {@link
 * SparkTestBase}: it needs a session that retries.
 */
class TaskRetryTest {
  static SparkSession spark;
  @TempDir Path dir;

  @BeforeAll
  static void startSpark() {
    spark = TrainJob.localSession("local[2,2]");
  }

  @AfterAll
  static void stopSpark() {
    spark.stop();
  }

  @Test
  void aFailedTrainingTaskIsRetriedAndItsPartitionTrainedAgain() throws Exception {
    Path corpus = SparkTestBase.proseSlice(dir, 200_000);
    Path out = dir.resolve("t");
    TrainJob.Result r;
    List<String> warnings;
    try (LogLines log = LogLines.of(TrainJob.class.getName())) {
      // Task ordinal 1: epoch 1, partition 1; its first attempt throws after one mini-batch.
      r = TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), "--input", corpus.toString(), "--output",
          out.toString(), "--epochs", "1", "--dim", "16", "--partitions", "4", "--checkpoint-minutes", "0",
          "--fail-at-task", "1"));
      warnings = List.copyOf(log.lines);
    }
    System.out.println(r.summary());
    assertThat(warnings).contains("epoch 1 partition 1: attempt 2 of at most 2 trains the partition again; the updates"
        + " the failed attempt pushed stay applied");
    assertThat(r.summary()).containsPattern(", 1 partitions trained again by a retried task \\(the failed attempts' pushes stay"
        + " applied\\); job \\d+\\.\\d s in all$");
    try (BufferAllocator a = new RootAllocator()) {
      Table t = Table.open(out);
      assertThat(t.verify(a)).allMatch(l -> l.contains(": ok"));
      assertThat(t.manifest().properties()).containsEntry(TrainJob.P_COMPLETE, "true");
    }
  }
}
