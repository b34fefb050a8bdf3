package io.embstore.deploy;

import static io.embstore.deploy.ClusterEndToEndIT.jobJar;
import static io.embstore.deploy.ClusterEndToEndIT.readIfExists;
import static io.embstore.deploy.ClusterEndToEndIT.smallCorpus;
import static io.embstore.deploy.ClusterEndToEndIT.startCluster;
import static io.embstore.deploy.ClusterEndToEndIT.submitCommand;
import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * An executor is lost during training (issue 6): on a standalone cluster of separate JVMs (Master
 * + 2 Workers) the shaded job jar trains through SparkSubmit with a checkpoint after every round;
 * once the first checkpoint is committed, one executor JVM that hosts shards is killed with
 * SIGKILL. The job must notice the lost shard servers, restart every shard from the last
 * checkpoint on the executors it has (the Worker starts a replacement) and finish by itself with a
 * complete table that verifies. Every wait is bounded; the cluster is stopped in {@link #stopAll}.
 */
class ExecutorLossIT extends ClusterJobTestBase {
  static final Pattern HOSTS = Pattern.compile("executor (\\S+) on \\S+ hosts shards");

  @Test
  void anExecutorKilledDuringTrainingIsRecoveredFromTheLastCheckpoint() throws Exception {
    Path corpus = smallCorpus(tmp.resolve("corpus.txt"), 240);
    Path table = tmp.resolve("table");
    clusterDir = tmp.resolve("cluster");
    String master = startCluster(tmp, clusterDir, 2);

    List<String> submit = submitCommand(master, jobJar(),
        "--input", corpus.toString(), "--output", table.toString(),
        "--dim", "32", "--epochs", "3", "--min-count", "3", "--shards", "4", "--partitions", "8",
        "--checkpoint-minutes", "0.00001", "--progress-seconds", "5");
    Path log = tmp.resolve("driver.log");
    driver = submit(log, submit);

    // Wait (bounded) for the first committed checkpoint, then kill a hosting executor a little later.
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(10);
    while (!Files.exists(table.resolve("manifest.json")) && driver.isAlive() && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    assertThat(Files.exists(table.resolve("manifest.json")))
        .as("a checkpoint was committed; driver log: %s", tailOf(log)).isTrue();
    Matcher m = HOSTS.matcher(Files.readString(log));
    assertThat(m.find()).as("a hosting line in the driver log: %s", tailOf(log)).isTrue();
    String hostingExecutor = m.group(1);
    long delay = new SplittableRandom().nextLong(1500);
    Thread.sleep(delay);
    Optional<ProcessHandle> executor = executorJvm(hostingExecutor);
    assertThat(executor).as("the JVM of executor %s under a Worker", hostingExecutor).isPresent();
    assertThat(driver.isAlive()).as("training still runs when the executor is killed; log: %s", tailOf(log)).isTrue();
    TableManifest beforeKill = TableManifest.read(table);
    executor.get().destroyForcibly();
    assertThat(executor.get().onExit().get(30, TimeUnit.SECONDS).isAlive()).isFalse();

    assertThat(driver.waitFor(15, TimeUnit.MINUTES)).as("the job ends within 15 minutes; log: %s", tailOf(log)).isTrue();
    String out = Files.readString(log);
    assertThat(driver.exitValue()).as("SparkSubmit exit; log: %s", tailOf(log)).isZero();
    assertThat(out).contains("recovery 1/3: shard servers lost").contains("recoveries from lost shard servers");
    System.out.printf("executor %s killed %d ms after checkpoint v%d; the job recovered and finished:%n%s%n",
        hostingExecutor, delay, beforeKill.tableVersion(),
        out.lines().filter(l -> l.contains("recovery") || l.contains("hosts shards") || l.contains("trained ")).reduce("", (a, b) -> a + b + "\n"));

    Table t = Table.open(table);
    assertThat(t.verify(allocator)).hasSize(1 + 4 + t.manifest().vocabularyFiles().size()).allMatch(l -> l.contains(": ok"));
    assertThat(t.manifest().tableVersion()).isGreaterThan(beforeKill.tableVersion());
    assertThat(t.manifest().properties()).containsEntry("train.complete", "true").containsEntry("train.epoch", "3");
    assertThat(Table.open(table.resolve("_context")).verify(allocator)).allMatch(l -> l.contains(": ok"));
  }

  /** The CoarseGrainedExecutorBackend JVM of {@code executorId} under one of the cluster's Workers. */
  private Optional<ProcessHandle> executorJvm(String executorId) throws Exception {
    try (Stream<Path> pids = Files.list(clusterDir)) {
      return pids.filter(p -> p.getFileName().toString().matches("worker.*\\.pid"))
          .map(p -> ProcessHandle.of(Long.parseLong(readIfExists(p).trim())))
          .flatMap(Optional::stream)
          .flatMap(ProcessHandle::descendants)
          .filter(p -> {
            String cmd = p.info().commandLine().orElse("");
            return cmd.contains("CoarseGrainedExecutorBackend") && cmd.matches(".*--executor-id " + Pattern.quote(executorId) + "( .*|$)");
          })
          .findFirst();
    }
  }

  private static String tailOf(Path log) {
    String s = readIfExists(log);
    return s.substring(Math.max(0, s.length() - 6000));
  }
}
