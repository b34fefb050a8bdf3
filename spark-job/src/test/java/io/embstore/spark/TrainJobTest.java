package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.ShardReader;
import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.Vocabulary;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.SparkConf;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerStageSubmitted;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainJobTest extends SparkTestBase {
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

  static float[] row(Table t, Vocabulary v, String token, BufferAllocator a) throws Exception {
    float[] r = new float[t.manifest().dim()];
    t.readRow(v.requireId(token), r, a);
    return r;
  }

  static double cos(float[] a, float[] b) {
    double d = 0;
    double na = 0;
    double nb = 0;
    for (int i = 0; i < a.length; i++) {
      d += a[i] * b[i];
      na += a[i] * a[i];
      nb += b[i] * b[i];
    }
    return d / Math.sqrt(na * nb);
  }

  @Test
  void trainsProseIntoAVerifiedTableWhereRelatedWordsAreClose() throws Exception {
    Path corpus = proseSlice(dir, 1_000_000);
    Path out = dir.resolve("table");
    TrainOptions o = TrainOptions.parse(new SparkConf(false),
        "--input", corpus.toString(), "--output", out.toString(), "--epochs", "3", "--dim", "50",
        "--checkpoint-minutes", "0", "--progress-seconds", "1");
    List<String> stages = new CopyOnWriteArrayList<>();
    SparkListener stageNames = new SparkListener() {
      @Override
      public void onStageSubmitted(SparkListenerStageSubmitted submitted) {
        stages.add(submitted.stageInfo().name());
      }
    };
    spark.sparkContext().addSparkListener(stageNames);
    TrainJob.Result r;
    List<String> progress;
    List<String> hosting;
    try (LogLines log = LogLines.of("io.embstore.spark.train"); LogLines hostingLog = LogLines.of(ShardHosting.class.getName())) {
      r = TrainJob.run(spark, o);
      progress = List.copyOf(log.lines);
      hosting = List.copyOf(hostingLog.lines);
    } finally {
      spark.sparkContext().removeSparkListener(stageNames);
    }
    // local mode: every shard is hosted by this JVM, so every pull and push is in process (--local-shards)
    assertThat(hosting).filteredOn(l -> l.startsWith("routing client")).hasSize(2)
        .allMatch(l -> l.endsWith("; through Arrow Flight shards []"));
    System.out.println(r.summary());
    assertProgressAndStageNames(progress, r, stages);
    assertRowsByPath(r, 0.0);
    Table t = Table.open(out);
    assertThat(t.verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
    assertThat(Table.open(out.resolve(TrainJob.CONTEXT_DIR)).verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
    assertThat(t.manifest().properties()).containsEntry(TrainJob.P_COMPLETE, "true").containsEntry(TrainJob.P_SHUFFLE, "true");
    assertThat(t.vocabulary(allocator).token(0)).isEqualTo("the");
    assertRelatedWordsAreClose(t, "negative sampling");
  }

  /**
   * Progress lines every few seconds (epoch, percent done rising to 100, tokens/s, running loss,
   * rows pulled and pushed per second), the final summary, and Spark stages named after what runs.
   */
  private static void assertProgressAndStageNames(List<String> progress, TrainJob.Result r, List<String> stages) {
    Pattern line = Pattern.compile("epoch (\\d)/3 +(\\d+\\.\\d)% done +([\\d,]+) tokens/s +loss (\\d\\.\\d{4}|NaN) +"
        + "pulled ([\\d,]+) rows/s +pushed ([\\d,]+) rows/s");
    List<Matcher> lines = progress.stream().map(line::matcher).filter(Matcher::matches).toList();
    assertThat(lines).as("progress lines in %s", progress).hasSizeGreaterThanOrEqualTo(2);
    double lastDone = 0;
    int lastEpoch = 1;
    boolean moving = false;
    for (Matcher m : lines) {
      int epoch = Integer.parseInt(m.group(1));
      double done = Double.parseDouble(m.group(2));
      assertThat(epoch).isBetween(lastEpoch, 3);
      assertThat(done).isBetween(lastDone, 100.0);
      moving |= Long.parseLong(m.group(3).replace(",", "")) > 0 && Long.parseLong(m.group(5).replace(",", "")) > 0
          && Long.parseLong(m.group(6).replace(",", "")) > 0 && !m.group(4).equals("NaN");
      lastEpoch = epoch;
      lastDone = done;
    }
    assertThat(moving).as("a line with tokens, a loss, pulls and pushes: %s", progress).isTrue();
    Matcher summary = Pattern.compile("trained ([\\d,]+) tokens in [\\d.]+ s \\([\\d,]+ tokens/s\\), [\\d,]+ pairs, "
        + "mean loss (\\d\\.\\d{4}), [\\d,]+ batches, ([\\d,]+) rows pulled, ([\\d,]+) rows pushed").matcher(r.summary());
    assertThat(summary.find()).as(r.summary()).isTrue();
    assertThat(Long.parseLong(summary.group(1).replace(",", ""))).isEqualTo(3 * r.tokensPerEpoch());
    assertThat(Double.parseDouble(summary.group(2))).isBetween(0.01, 5.0);
    assertThat(stages).as("stage names").isNotEmpty().allMatch(n -> n.startsWith("embstore train: "));
    assertThat(stages).anyMatch(n -> n.startsWith("embstore train: count tokens and build the vocabulary"))
        .anyMatch(n -> n.startsWith("embstore train: host the shards of both matrices"))
        .anyMatch(n -> n.matches("embstore train: epoch 1/3, corpus partitions 0\\.\\.\\d+ of \\d+"));
    // With checkpoints at epoch ends only, an epoch is one Spark job: its tasks never wait at a
    // barrier between rounds (local[2]: 8 partitions).
    assertThat(stages.stream().filter(n -> n.startsWith("embstore train: epoch")).distinct()).containsExactly(
        "embstore train: epoch 1/3, corpus partitions 0..7 of 8", "embstore train: epoch 2/3, corpus partitions 0..7 of 8",
        "embstore train: epoch 3/3, corpus partitions 0..7 of 8");
  }

  /**
   * The summary's rows by path: every row pulled and pushed (the trainer's counts) went in process
   * or over Flight, {@code percentOverFlight} of them over Flight; then the whole job's seconds.
   */
  private static void assertRowsByPath(TrainJob.Result r, double percentOverFlight) {
    Matcher m = Pattern.compile("([\\d,]+) rows pulled, ([\\d,]+) rows pushed; rows pulled\\+pushed: ([\\d,]+) in process, "
        + "([\\d,]+) over Flight \\((\\d+\\.\\d) % over Flight\\); job (\\d+\\.\\d) s in all").matcher(r.summary());
    assertThat(m.find()).as(r.summary()).isTrue();
    long[] n = IntStream.rangeClosed(1, 4).mapToLong(i -> Long.parseLong(m.group(i).replace(",", ""))).toArray();
    assertThat(n[0]).isPositive();
    assertThat(n[2] + n[3]).as(r.summary()).isEqualTo(n[0] + n[1]);
    assertThat(Double.parseDouble(m.group(5))).as(r.summary()).isEqualTo(percentOverFlight);
    assertThat(percentOverFlight == 0 ? n[3] : n[2]).as(r.summary()).isZero();
    assertThat(Double.parseDouble(m.group(6))).as(r.summary()).isCloseTo(r.seconds(), org.assertj.core.data.Offset.offset(0.051));
  }

  @Test
  void aTrainingJobRunsTheRoundsThatEndBeforeTheNextCheckpointIsDue() {
    // no measurement yet: one round
    assertThat(TrainJob.roundsPerJob(10, 0, 0)).isEqualTo(1);
    // 600 s between checkpoints, 100 s gone, rounds of 45 s: 11 rounds end before it is due
    assertThat(TrainJob.roundsPerJob(10, 100, 45)).isEqualTo(11);
    // less than a round left, or overdue: one round, after which the checkpoint is written
    assertThat(TrainJob.roundsPerJob(10, 590, 45)).isEqualTo(1);
    assertThat(TrainJob.roundsPerJob(10, 700, 45)).isEqualTo(1);
    // checkpoints at epoch ends only: the rest of the epoch (the caller caps it there)
    assertThat(TrainJob.roundsPerJob(0, 100, 45)).isEqualTo(Integer.MAX_VALUE);
  }

  /** king~queen and army~navy closer than king~water, by a margin. */
  private void assertRelatedWordsAreClose(Table t, String objective) throws Exception {
    Vocabulary v = t.vocabulary(allocator);
    double related = cos(row(t, v, "king", allocator), row(t, v, "queen", allocator));
    double man = cos(row(t, v, "army", allocator), row(t, v, "navy", allocator));
    double unrelated = cos(row(t, v, "king", allocator), row(t, v, "water", allocator));
    System.out.printf("%s: cos(king,queen)=%.3f cos(army,navy)=%.3f cos(king,water)=%.3f%n", objective, related, man, unrelated);
    assertThat(related).as(objective).isGreaterThan(unrelated + 0.1);
    assertThat(man).as(objective).isGreaterThan(unrelated + 0.1);
  }

  @Test
  void hierarchicalSoftmaxBesideNegativeSamplingTrainsRelatedWordsCloseAndResumesOnlyAsSuch() throws Exception {
    Path corpus = proseSlice(dir, 1_000_000);
    Path out = dir.resolve("hs");
    TrainJob.Result r;
    // every pull and push through Arrow Flight, as for another executor's shards on a cluster; the
    // partitions read in corpus order
    try (LogLines hostingLog = LogLines.of(ShardHosting.class.getName())) {
      r = TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
          "--input", corpus.toString(), "--output", out.toString(), "--epochs", "3", "--dim", "50",
          "--hs", "--checkpoint-minutes", "0", "--progress-seconds", "2", "--no-local-shards", "--no-shuffle"));
      assertThat(hostingLog.lines).filteredOn(l -> l.startsWith("routing client")).hasSize(2)
          .allMatch(l -> l.contains(": in process shards [];"));
    }
    System.out.println(r.summary());
    assertRowsByPath(r, 100.0);
    Table t = Table.open(out);
    assertThat(t.verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
    assertThat(t.manifest().properties()).containsEntry(TrainJob.P_OBJECTIVE, "hierarchical-softmax+negative-sampling")
        .containsEntry(TrainJob.P_COMPLETE, "true").containsEntry(TrainJob.P_SHUFFLE, "false");
    // Context rows: V output vectors, then the tree's V - 1 inner nodes.
    Table context = Table.open(out.resolve(TrainJob.CONTEXT_DIR));
    assertThat(context.verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
    assertThat(context.manifest().rows()).isEqualTo(2 * t.manifest().rows() - 1);
    float[] root = new float[50];
    context.readRow(2 * t.manifest().rows() - 2, root, allocator);
    assertThat(root).as("the root node trained").isNotEqualTo(new float[50]);
    assertRelatedWordsAreClose(t, "hierarchical softmax + negative sampling");
    // The context matrix holds Huffman inner nodes here: resuming as negative sampling alone is refused.
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
            "--input", corpus.toString(), "--output", out.toString(), "--epochs", "3", "--dim", "50", "--resume")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot resume " + out + ": the checkpoint trained hierarchical-softmax+negative-sampling but these "
            + "options train negative-sampling (--hs and --negatives must stay as they were)");
  }

  /** State column 0 of every row, by id (width 1: row-wise Adagrad's accumulator). */
  static float[] rowState(Table t, BufferAllocator a) throws Exception {
    float[] state = new float[(int) t.manifest().rows()];
    for (int s = 0; s < t.manifest().numShards(); s++) {
      try (ShardReader r = t.openShard(s, a, true)) {
        while (r.loadNextBatch()) {
          for (int i = 0; i < r.batchRows(); i++) {
            state[(int) t.manifest().partitioner().idAt(s, r.batchStart() + i)] = r.state(0).getFloat(i * 4L);
          }
        }
      }
    }
    return state;
  }

  /** Every row of {@code t}, by id. */
  static float[][] rows(Table t, BufferAllocator a) throws Exception {
    int dim = t.manifest().dim();
    float[][] rows = new float[(int) t.manifest().rows()][dim];
    t.forEachRowInIdOrder(a, false, (first, n, buf, offset) -> {
      for (int r = 0; r < n; r++) {
        for (int c = 0; c < dim; c++) {
          rows[(int) first + r][c] = buf.getFloat(offset + ((long) r * dim + c) * 4);
        }
      }
    });
    return rows;
  }

  /** How many other ids are closer (cosine) to {@code token} than {@code other} is. */
  static long closer(float[][] rows, Vocabulary v, String token, String other) {
    int a = v.requireId(token);
    double target = cos(rows[a], rows[v.requireId(other)]);
    return IntStream.range(0, rows.length).filter(j -> j != a && cos(rows[a], rows[j]) > target).count();
  }

  @Test
  void rowwiseAdagradTrainsRelatedWordsCloseKeepsItsAccumulatorsAndResumesOnlyWithIt() throws Exception {
    Path corpus = proseSlice(dir, 1_000_000);
    Path out = dir.resolve("adagrad");
    TrainJob.Result r = TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
        "--input", corpus.toString(), "--output", out.toString(), "--epochs", "3", "--dim", "50",
        "--optimizer", "rowwise-adagrad", "--alpha", "0.1", "--checkpoint-minutes", "0", "--progress-seconds", "2"));
    System.out.println(r.summary());
    Table t = Table.open(out);
    Table context = Table.open(out.resolve(TrainJob.CONTEXT_DIR));
    assertThat(t.manifest().properties()).containsEntry(TrainJob.P_OPTIMIZER, "rowwise-adagrad")
        .containsEntry(TrainJob.P_COMPLETE, "true");
    for (Table m : List.of(t, context)) {
      assertThat(m.verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
      assertThat(m.manifest().optimizer().name()).isEqualTo("rowwise-adagrad");
      assertThat(m.manifest().stateColumns()).containsExactly(new TableManifest.StateColumn("adagrad_row_sum", 1));
    }
    // The accumulators are the servers' real state: summed squared gradients, largest for the
    // most frequent ids (ids are by descending count).
    float[] state = rowState(t, allocator);
    double frequent = 0;
    double rare = 0;
    for (int i = 0; i < 100; i++) {
      frequent += state[i];
      rare += state[state.length - 1 - i];
    }
    System.out.printf("adagrad accumulators: mean of the 100 most frequent ids %.4g, of the 100 rarest %.4g, zero rows %d%n",
        frequent / 100, rare / 100, IntStream.range(0, state.length).filter(i -> state[i] == 0).count());
    assertThat(IntStream.range(0, state.length).filter(i -> !(Float.isFinite(state[i]) && state[i] >= 0))).isEmpty();
    assertThat(IntStream.range(0, state.length).filter(i -> state[i] > 0).count()).isGreaterThan(state.length * 99L / 100);
    assertThat(frequent).isGreaterThan(10 * rare);
    // Ranks rather than a cosine margin: with row-wise Adagrad all vectors are close to each other
    // (cos(king,water) 0.61-0.70 against cos(king,queen) 0.74-0.81 in three runs), so a margin is
    // fragile; the ranks vary between runs too (Hogwild-style concurrent updates).
    Vocabulary v = t.vocabulary(allocator);
    float[][] rows = rows(t, allocator);
    long queen = closer(rows, v, "king", "queen");
    long navy = closer(rows, v, "army", "navy");
    long water = closer(rows, v, "king", "water");
    System.out.printf("row-wise adagrad, ids closer than the pair's second word: king~queen %d, army~navy %d, king~water %d of %d%n",
        queen, navy, water, rows.length - 1);
    // Top 5 % (observed: queen 34-213th, navy 0-2nd of 7,833; a random word would be ~3,900th).
    assertThat(queen).isLessThan(rows.length / 20);
    assertThat(navy).isLessThan(rows.length / 20);
    assertThat(water).isGreaterThan(rows.length / 10);
    // The checkpoint's accumulators would be dropped by SGD: resuming with another optimizer is refused.
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
            "--input", corpus.toString(), "--output", out.toString(), "--epochs", "3", "--dim", "50", "--resume")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot resume " + out + ": the checkpoint trained with --optimizer rowwise-adagrad but these options "
            + "use --optimizer sgd (the optimizer must stay as it was)");
  }

  @Test
  void resumeAfterAnInjectedTaskFailureFinishesWithAValidTable() throws Exception {
    Path corpus = proseSlice(dir, 200_000);
    Path out = dir.resolve("resumed");
    String[] base = {"--input", corpus.toString(), "--output", out.toString(), "--epochs", "2", "--dim", "20",
        "--partitions", "4", "--checkpoint-minutes", "0.00001", "--progress-seconds", "2"};
    // Task ordinal 5 = epoch 2, partition 1: its round fails after the epoch-1 checkpoint.
    String[] failing = java.util.stream.Stream.concat(java.util.Arrays.stream(base), java.util.stream.Stream.of("--fail-at-task", "5"))
        .toArray(String[]::new);
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), failing)))
        .isInstanceOf(org.apache.spark.SparkException.class)
        .hasMessageContaining("injected failure in epoch 2, partition 1");
    Table partial = Table.open(out);
    assertThat(partial.verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
    assertThat(partial.manifest().properties()).containsEntry(TrainJob.P_EPOCH, "1").containsEntry(TrainJob.P_COMPLETE, "false");

    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), base)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("Cannot train into " + out + ": it already holds a table (use --resume");

    String[] adagrad = java.util.stream.Stream.concat(java.util.Arrays.stream(base),
        java.util.stream.Stream.of("--resume", "--optimizer", "rowwise-adagrad")).toArray(String[]::new);
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), adagrad)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot resume " + out + ": the checkpoint trained with --optimizer sgd but these options "
            + "use --optimizer rowwise-adagrad (the optimizer must stay as it was)");
    assertThat(Table.open(out).manifest()).isEqualTo(partial.manifest());

    String[] resume = java.util.stream.Stream.concat(java.util.Arrays.stream(base), java.util.stream.Stream.of("--resume"))
        .toArray(String[]::new);
    TrainJob.Result r = TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), resume));
    Table t = Table.open(out);
    assertThat(t.verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
    assertThat(t.manifest().tableVersion()).isGreaterThan(partial.manifest().tableVersion());
    assertThat(t.manifest().properties()).containsEntry(TrainJob.P_COMPLETE, "true").containsEntry(TrainJob.P_EPOCH, "2");
    assertThat(t.vocabulary(allocator)).isEqualTo(partial.vocabulary(allocator));
    assertThat(Table.open(out.resolve(TrainJob.CONTEXT_DIR)).verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
    assertThat(r.summary()).contains("trained");
  }

  /**
   * The shard servers of the JVM are stopped by a task (as when an executor dies with its
   * servers): the driver finds them lost, restarts every shard from the last checkpoint and the
   * job finishes by itself. Once after a checkpoint, once before any checkpoint (back to the
   * initial rows), and with recovery switched off the job fails.
   */
  @Test
  void lostShardServersAreRestartedFromTheLastCheckpointAndTheJobFinishes() throws Exception {
    Path corpus = proseSlice(dir, 200_000);
    java.util.Set<String> before = ExecutorHost.keys();
    for (String[] c : new String[][] {{"after-checkpoint", "5", "0.00001"}, {"before-checkpoint", "1", "0"}}) {
      Path out = dir.resolve(c[0]);
      // ordinal 5 = epoch 2, partition 1 (after the epoch-1 checkpoint); ordinal 1 = epoch 1, partition 1
      // with checkpoints only at epoch ends, so no checkpoint exists yet.
      TrainJob.Result r = TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
          "--input", corpus.toString(), "--output", out.toString(), "--epochs", "2", "--dim", "20",
          "--partitions", "4", "--checkpoint-minutes", c[2], "--progress-seconds", "2", "--lose-shards-at-task", c[1]));
      assertThat(r.summary()).as(c[0]).contains("1 recoveries from lost shard servers");
      // the lost hosting's state and the recovery's are both gone from this JVM's host
      assertThat(ExecutorHost.keys()).as(c[0]).isEqualTo(before);
      Table t = Table.open(out);
      assertThat(t.verify(allocator)).as(c[0]).isNotEmpty().allMatch(l -> l.contains(": ok"));
      assertThat(t.manifest().properties()).containsEntry(TrainJob.P_COMPLETE, "true").containsEntry(TrainJob.P_EPOCH, "2");
      assertThat(t.vocabulary(allocator).token(0)).isEqualTo("the");
      assertThat(Table.open(out.resolve(TrainJob.CONTEXT_DIR)).verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
    }
    Path out = dir.resolve("no-recovery");
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
            "--input", corpus.toString(), "--output", out.toString(), "--epochs", "1", "--dim", "20",
            "--partitions", "4", "--checkpoint-minutes", "0", "--max-recoveries", "0", "--lose-shards-at-task", "0")))
        .isInstanceOf(org.apache.spark.SparkException.class)
        // Spark reports whichever task failed first: the one that stopped the servers, or the
        // other one, whose servers were stopped under it.
        .hasMessageStartingWith("Job aborted due to stage failure");
    assertThat(out.resolve("manifest.json")).doesNotExist();
    assertThat(ExecutorHost.keys()).as("after the failed job").isEqualTo(before);
  }

  /**
   * Jobs that follow each other in one JVM (here the driver, the executor of local mode) each leave
   * nothing behind in the per-executor host: its servers, clients, heap matrices and derived tables
   * go when the job's hosting closes, so the next job builds its own under a new key.
   */
  @Test
  void eachJobsExecutorStateEndsWithItsHostingSoTheNextJobStartsFresh() throws Exception {
    Path corpus = proseSlice(dir, 100_000);
    java.util.Set<String> before = ExecutorHost.keys();
    List<String> keys = new java.util.ArrayList<>();
    for (String hosting : new String[] {"shards", "memory", "shards"}) {
      Path out = dir.resolve("job-" + keys.size());
      List<String> routing;
      try (LogLines hostingLog = LogLines.of(ShardHosting.class.getName())) {
        TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), "--input", corpus.toString(), "--output", out.toString(),
            "--epochs", "1", "--dim", "8", "--partitions", "2", "--checkpoint-minutes", "0", "--hosting", hosting));
        routing = hostingLog.lines.stream().filter(l -> l.startsWith("routing client")).toList();
      }
      assertThat(ExecutorHost.keys()).as(hosting + " job " + keys.size()).isEqualTo(before);
      assertThat(Table.open(out).verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
      if (hosting.equals("shards")) {
        // "routing client KEY/in: ...": this job's clients, one per matrix, under its own key
        assertThat(routing).hasSize(2);
        keys.add(routing.get(0).substring("routing client ".length(), routing.get(0).indexOf('/')));
      } else {
        keys.add("memory");
      }
    }
    assertThat(keys.get(2)).isNotEqualTo(keys.get(0));
  }
}
