package io.embstore.spark.fault;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Table;
import io.embstore.format.fault.ChildJvm;
import io.embstore.spark.SparkTestBase;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Crashes during training, with real processes.
 *
 * <ul>
 *   <li>Driver killed: {@code TrainJob} runs in a child JVM ({@code --master local[2]}, so the
 *       executor and its shard servers die with it) and is killed with SIGKILL 0-200 ms after its
 *       first checkpoint is committed, while it still trains (the test fails if the child was not
 *       alive or did not die of the signal). The output must open and verify as an incomplete
 *       checkpoint, and a re-run with {@code --resume} must finish with a complete table that
 *       verifies.
 *   <li>Executor lost: in {@code deploy}'s {@code ExecutorLossIT} (a standalone cluster of separate
 *       JVMs running the shaded job jar), and in-process in {@code TrainJobTest} (the shard servers
 *       of the JVM stopped by a task).
 * </ul>
 */
class TrainingCrashTest {
  @TempDir Path tmp;
  BufferAllocator allocator;
  final List<ChildJvm> children = new ArrayList<>();

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() throws Exception {
    try {
      for (ChildJvm c : children) {
        c.close();
      }
    } finally {
      allocator.close();
    }
  }

  @Test
  void driverKilledAfterACheckpointResumesToAVerifiedTable() throws Exception {
    Path corpus = SparkTestBase.proseSlice(tmp, 200_000);
    Path out = tmp.resolve("table");
    List<String> args = new ArrayList<>(List.of(
        "--master", "local[2]", "--input", corpus.toString(), "--output", out.toString(), "--epochs", "3", "--dim", "20",
        "--partitions", "4", "--checkpoint-minutes", "0.00001", "--progress-seconds", "1"));
    ChildJvm first = start(args, "first");
    // The kill point: the first checkpoint fully committed. It commits the output before _context
    // (later checkpoints the other way round), so _context's manifest marks its end; then the job
    // has 5 of its 6 rounds (3 epochs x 4 partitions, 2 per round) still to train. Killing within
    // 200 ms of it lands in the second round or its checkpoint even on a fast machine.
    Path ctxManifest = out.resolve("_context").resolve("manifest.json");
    long deadline = System.nanoTime() + 10 * 60 * 1_000_000_000L;
    while (!Files.exists(ctxManifest) && first.process().isAlive() && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertThat(Files.exists(ctxManifest)).as("the first checkpoint was committed; child stderr tail: %s", tail(first)).isTrue();
    long delay = new SplittableRandom(4).nextLong(200);
    Thread.sleep(delay);
    assertThat(first.process().isAlive())
        .as("the child still trains %d ms after its first checkpoint (else this test kills nothing); stderr tail: %s", delay, tail(first))
        .isTrue();
    first.kill();
    // 128 + 9: the JVM died of SIGKILL. A run that finished (0) or failed (1) in the meantime is not a kill mid-training.
    assertThat(first.process().exitValue()).as("exit status of the killed child; stderr tail: %s", tail(first)).isEqualTo(137);
    Table afterKill = Table.open(out);
    assertThat(afterKill.verify(allocator)).allMatch(l -> l.contains(": ok"));
    assertThat(Table.open(out.resolve("_context")).verify(allocator)).allMatch(l -> l.contains(": ok"));
    Map<String, String> props = afterKill.manifest().properties();
    int epoch = Integer.parseInt(props.get("train.epoch"));
    int done = Integer.parseInt(props.get("train.partitionsDone"));
    int partitions = Integer.parseInt(props.get("train.partitions"));
    System.out.printf("driver kill -9 %d ms after the first checkpoint: table v%d verifies, epoch %d, partitions done %d of %d%n",
        delay, afterKill.manifest().tableVersion(), epoch, done, partitions);
    assertThat(props).as("the checkpoint left by the kill").containsEntry("train.complete", "false");
    assertThat(epoch * partitions + done).as("partitions trained by the checkpoint left by the kill").isLessThan(3 * partitions);

    List<String> resume = new ArrayList<>(args);
    resume.add("--resume");
    ChildJvm second = start(resume, "resume");
    int rc = second.waitFor(15 * 60 * 1000L);
    assertThat(rc).as("resumed run exit code; stderr tail: %s", tail(second)).isZero();
    Table t = Table.open(out);
    assertThat(t.verify(allocator)).allMatch(l -> l.contains(": ok"));
    assertThat(t.manifest().properties()).containsEntry("train.complete", "true").containsEntry("train.epoch", "3");
    assertThat(t.manifest().tableVersion()).isGreaterThanOrEqualTo(afterKill.manifest().tableVersion());
    assertThat(Table.open(out.resolve("_context")).verify(allocator)).allMatch(l -> l.contains(": ok"));
  }

  private ChildJvm start(List<String> args, String name) throws IOException {
    List<String> jvm = new ArrayList<>();
    jvm.add("-Xmx1g");
    jvm.add("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn");
    // The flags Spark needs on Java 17, as surefire passed them to this JVM.
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (a.startsWith("--add-opens") || a.startsWith("--add-modules") || a.startsWith("-XX:+IgnoreUnrecognizedVMOptions") || a.startsWith("-Dio.netty")) {
        jvm.add(a);
      }
    }
    ChildJvm c = ChildJvm.start(io.embstore.spark.TrainJob.class, jvm, Files.createTempFile(tmp, name, ".err"), args.toArray(new String[0]));
    children.add(c);
    return c;
  }

  private static String tail(ChildJvm c) {
    String s = c.stderrText();
    return s.length() > 3000 ? s.substring(s.length() - 3000) : s;
  }
}
