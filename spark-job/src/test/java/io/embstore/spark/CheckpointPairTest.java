package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@code --resume} takes the output and its {@code _context} table as one checkpoint: equal, or
 * the context one checkpoint ahead (its commit comes first), never behind or from another run.
 */
class CheckpointPairTest {
  static final TableLocation OUT = TableLocation.of(Path.of("/data/table"));

  private static TableManifest.Builder table(int dim) {
    return TableManifest.builder().tableVersion(3).rows(100).dim(dim).partitioner("modulo")
        .addShard(new TableManifest.ShardEntry(0, "shard-00000.arrow", 100, 0, 99, 100L * dim * 4, 0));
  }

  private static TableManifest at(int epoch, int done, int partitions, int dim) {
    return table(dim)
        .properties(Map.of(TrainJob.P_EPOCH, Integer.toString(epoch), TrainJob.P_DONE, Integer.toString(done),
            TrainJob.P_PARTITIONS, Integer.toString(partitions)))
        .build();
  }

  @Test
  void theSameCheckpointOrAContextOneAheadResumes() {
    assertThatCode(() -> Resume.checkContextMatches(OUT, at(1, 4, 8, 16), at(1, 4, 8, 16))).doesNotThrowAnyException();
    assertThatCode(() -> Resume.checkContextMatches(OUT, at(1, 4, 8, 16), at(1, 6, 8, 16))).doesNotThrowAnyException();
    assertThatCode(() -> Resume.checkContextMatches(OUT, at(1, 6, 8, 16), at(2, 0, 8, 16))).doesNotThrowAnyException();
  }

  @Test
  void aContextBehindTheOutputIsRefused() {
    assertThatThrownBy(() -> Resume.checkContextMatches(OUT, at(2, 0, 8, 16), at(1, 6, 8, 16)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot resume /data/table: the context table is at epoch 1, 6 partitions done, behind the output at"
            + " epoch 2, 0 partitions done (a checkpoint commits the context table first, so this pair was not written by one run)");
  }

  @Test
  void aContextFromAnotherTrainingIsRefused() {
    assertThatThrownBy(() -> Resume.checkContextMatches(OUT, at(1, 4, 8, 16), at(1, 4, 6, 16)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot resume /data/table: /data/table/_context is not this training's context table"
            + " (partitions 6 against 8, dim 16 against 16)");
    assertThatThrownBy(() -> Resume.checkContextMatches(OUT, at(1, 4, 8, 16), at(1, 4, 8, 32)))
        .hasMessageContaining("dim 32 against 16");
    TableManifest bare = table(16).build();
    assertThatThrownBy(() -> Resume.checkContextMatches(OUT, at(1, 4, 8, 16), bare))
        .hasMessageContaining("is not this training's context table (partitions null against 8");
  }

  @Test
  void aResumeMustRebuildTheSamePartitions() {
    String fp = "1000 tokens in 8 partitions, crc32 1a2b3c";
    TableManifest cp = table(16).properties(Map.of(TrainJob.P_CORPUS, fp)).build();
    assertThatCode(() -> Resume.checkCorpusMatches(OUT, cp, fp)).doesNotThrowAnyException();
    assertThatThrownBy(() -> Resume.checkCorpusMatches(OUT, cp, "1000 tokens in 8 partitions, crc32 ffff"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot resume /data/table: the corpus now reads as 1000 tokens in 8 partitions, crc32 ffff,"
            + " the checkpoint was trained on 1000 tokens in 8 partitions, crc32 1a2b3c (resume with the same --input"
            + " files, corpus options and Spark parallelism: Spark splits large inputs by spark.default.parallelism,"
            + " and a sentence's partition follows its split)");
    // checkpoints written before the fingerprint was recorded resume unchecked
    assertThatCode(() -> Resume.checkCorpusMatches(OUT, table(16).build(), fp)).doesNotThrowAnyException();
  }
}
