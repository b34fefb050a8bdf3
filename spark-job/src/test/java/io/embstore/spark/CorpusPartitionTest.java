package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What {@code --resume} relies on: the same input read the same way rebuilds the same partitions
 * (the ones a checkpoint counts as done hold the same sentences), and an input that Spark splits
 * otherwise gives another {@link Corpus#partitionFingerprint()}, which the resume refuses.
 */
class CorpusPartitionTest extends SparkTestBase {
  @TempDir Path tmp;

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
    Path one = tmp.resolve("one.txt");
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
    Path three = Files.createDirectories(tmp.resolve("three"));
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
    return Corpus.load(spark, o, null, 4);
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
}
