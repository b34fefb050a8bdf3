package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.embstore.format.Table;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.ShardException;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the job guards: its shard servers answer only calls that carry the job's secret (which the
 * job's own clients carry, in process too) and write snapshots only below the output table; Spark
 * settings it cannot work with are refused by name; executors are counted, not assumed; the
 * Huffman tree of hierarchical softmax is refused where it would not fit; and the vocabulary build
 * reports its progress.
 */
class JobGuardsTest extends SparkTestBase {
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

  @Test
  void theShardServersRefuseCallsWithoutTheJobsSecretAndSnapshotsOutsideTheOutput() throws Exception {
    Path out = dir.resolve("out");
    TrainOptions o = TrainOptions.parse(new SparkConf(false), "--input", "unused", "--output", out.toString(), "--dim", "4");
    String secret = TrainJob.secret();
    assertThat(TrainJob.secret()).as("a new secret per job").isNotEqualTo(secret).hasSize(43);
    List<String> logged;
    Hosting hosting;
    try (LogLines hostingLog = LogLines.of(ShardHosting.class.getName()); LogLines jobLog = LogLines.of(TrainJob.class.getName())) {
      hosting = ShardHosting.start(spark, o, 100, 2, null, null, 1, io.embstore.format.TableLocation.of(out), secret);
      logged = new ArrayList<>(hostingLog.lines);
      logged.addAll(jobLog.lines);
    }
    try {
      Hosting.Opener opener = hosting.opener();
      assertThat(opener.toString()).doesNotContain(secret);
      assertThat(String.join("\n", logged)).as("hosting log").contains("hosts shards").doesNotContain(secret);
      List<String> endpoints = ((ShardHosting.RemoteOpener) opener).inEndpoints();

      // From outside the job: no token, a wrong one, raw Flight or the routing client: UNAUTHENTICATED.
      try (FlightClient raw = FlightClient.builder(allocator, new Location(endpoints.get(0))).build()) {
        Throwable t = catchThrowable(() -> raw.doAction(new Action("health"), CallOptions.timeout(10, java.util.concurrent.TimeUnit.SECONDS))
            .forEachRemaining(r -> { }));
        assertThat(t).isInstanceOf(FlightRuntimeException.class);
        assertThat(((FlightRuntimeException) t).status().code()).isEqualTo(FlightStatusCode.UNAUTHENTICATED);
      }
      for (String token : new String[] {null, secret.substring(1)}) {
        assertThatThrownBy(() -> EmbeddingClient.builder().manifest(ShardHosting.shape(100, 4, 2, null)).endpoints(endpoints)
                .token(token).allocator(allocator).deadline(Duration.ofSeconds(10)).build())
            .isInstanceOf(IOException.class)
            .hasMessageContaining("UNAUTHENTICATED");
      }
      // The job's own stores carry the secret and reach the shards in process (local mode).
      try (RowStore in = opener.input()) {
        float[] rows = new float[2 * 4];
        in.pull(new long[] {0, 1}, 2, rows);
        float[] expected = new float[4];
        SkipGram.initInputRow(o.seed, 1, expected);
        assertThat(java.util.Arrays.copyOfRange(rows, 4, 8)).containsExactly(expected);
      }
      assertThat(ExecutorHost.memory().keySet()).anyMatch(k -> k.contains("shard-server"));
      // With the secret, a snapshot outside the output is refused; below it, it is written.
      try (EmbeddingClient c = EmbeddingClient.builder().manifest(ShardHosting.shape(100, 4, 2, null)).endpoints(endpoints)
          .token(secret).allocator(allocator).deadline(Duration.ofSeconds(30)).build()) {
        Path elsewhere = dir.resolve("elsewhere");
        assertThatThrownBy(() -> io.embstore.shard.TableSnapshot.write(c, elsewhere))
            .isInstanceOf(ShardException.class)
            .hasMessageContaining("Cannot snapshot to " + elsewhere + ": outside " + out + " (this server writes snapshots only below it)")
            .satisfies(e -> assertThat(((ShardException) e).code()).isEqualTo(FlightStatusCode.UNAUTHORIZED));
        assertThat(elsewhere.resolve("manifest.json")).doesNotExist();
      }
      hosting.checkpoint(io.embstore.format.TableLocation.of(out), io.embstore.format.TableLocation.of(out.resolve(TrainJob.CONTEXT_DIR)), null, java.util.Map.of("k", "v"));
      assertThat(Table.open(out).verify(allocator)).allMatch(l -> l.contains(": ok"));
      assertThat(hosting.lost()).as("every server answers the job's own health check").isEmpty();
    } finally {
      hosting.close();
    }
  }

  @Test
  void sparkSettingsTheJobCannotWorkWithAreRefusedByName() {
    assertThatThrownBy(() -> TrainJob.checkConf(new SparkConf(false).set("spark.dynamicAllocation.enabled", "true")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot train with spark.dynamicAllocation.enabled=true: the executors host the shards for the whole job,"
            + " and dynamic allocation removes idle ones (set it to false; size the job with --total-executor-cores or"
            + " spark.executor.instances, and --min-executors)");
    assertThatThrownBy(() -> TrainJob.checkConf(new SparkConf(false).set("spark.speculation", "true")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot train with spark.speculation=true: a speculative copy of a training task would push the updates"
            + " of its corpus partition a second time, at once (set it to false)");
    TrainJob.checkConf(new SparkConf(false).set("spark.dynamicAllocation.enabled", "false").set("spark.speculation", "false"));
  }

  @Test
  void moreExecutorsThanLocalModeHasAreRefusedBeforeTheCorpusIsRead() throws Exception {
    Path corpus = proseSlice(dir, 10_000);
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
            "--input", corpus.toString(), "--output", dir.resolve("t").toString(), "--min-executors", "2")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot host the shards on --min-executors 2 executors: Spark runs in local[2], one executor (the driver)");
    assertThat(dir.resolve("t")).doesNotExist();
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), "--input", "x", "--output", "y", "--min-executors", "0"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot use --min-executors: 0 (must be at least 1)");
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), "--input", "x", "--output", "y", "--executor-wait", "-1"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot use --executor-wait: -1.0 (must be 0 or positive)");
    // The Spark-conf step of the precedence applies to them as to every option.
    TrainOptions fromConf = TrainOptions.parse(new SparkConf(false).set("spark.embstore.min-executors", "3")
        .set("spark.embstore.executor-wait", "7"), "--input", "x", "--output", "y");
    assertThat(fromConf.minExecutors).isEqualTo(3);
    assertThat(fromConf.executorWait).isEqualTo(7.0);
  }

  @Test
  void hierarchicalSoftmaxIsRefusedWhereItsTreeWouldNotFit() {
    TrainJob.checkHuffmanFits(1_000_000, 1L << 30);
    assertThatThrownBy(() -> TrainJob.checkHuffmanFits(20_000_000, 1L << 30))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot train with --hs: V = 20000000 ids needs 1,120,000,000 bytes of executor heap to build the Huffman"
            + " tree (56 per id), more than half of the executor heap of 1,073,741,824 bytes (raise spark.executor.memory,"
            + " or train with negative sampling, which keeps no per-id state)");
    assertThatThrownBy(() -> TrainJob.checkHuffmanFits((1L << 30) + 1, Long.MAX_VALUE))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot train with --hs: V = 1073741825 ids is above the Huffman tree's limit of 1073741824"
            + " (train with negative sampling, which keeps no per-id state)");
  }

  /** Lines while the vocabulary is built: the stages, counters, and the sizes at the end. */
  @Test
  void theVocabularyBuildReportsItsStagesAndFigures() throws Exception {
    Path corpus = proseSlice(dir, 300_000);
    List<String> lines;
    try (LogLines log = LogLines.of("io.embstore.spark.train")) {
      TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), "--input", corpus.toString(), "--output",
          dir.resolve("t").toString(), "--epochs", "1", "--dim", "8", "--checkpoint-minutes", "0", "--progress-seconds", "0.5",
          "--vocab-broadcast-max", "10"));
      lines = List.copyOf(log.lines);
    }
    System.out.println(String.join("\n", lines.stream().filter(l -> l.startsWith("vocabulary")).toList()));
    assertThat(lines).contains("vocabulary: count tokens", "vocabulary: number the vocabulary",
        "vocabulary: map tokens to ids (join)", "vocabulary: encode and partition the corpus (8 partitions)");
    assertThat(lines).anyMatch(l -> l.matches("vocabulary and sampler: V=[\\d,]+, [\\d,]+ tokens, [\\d,]+ runs of equal counts"
        + " \\([\\d,]+ bytes\\) in [\\d.]+ s"));
    assertThat(lines).filteredOn(l -> l.startsWith("vocabulary: ") && l.contains(" s): "))
        .allMatch(l -> l.matches("vocabulary: .* \\(\\d+ s\\): [\\d,]+ tokens counted(, [\\d,]+ distinct tokens so far)?(, [\\d,]+ sentences encoded)?"));
  }
}
