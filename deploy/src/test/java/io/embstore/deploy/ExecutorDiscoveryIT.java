package io.embstore.deploy;

import static io.embstore.deploy.ClusterEndToEndIT.HOSTS;
import static io.embstore.deploy.ClusterEndToEndIT.jobJar;
import static io.embstore.deploy.ClusterEndToEndIT.readIfExists;
import static io.embstore.deploy.ClusterEndToEndIT.smallCorpus;
import static io.embstore.deploy.ClusterEndToEndIT.startCluster;
import static io.embstore.deploy.ClusterEndToEndIT.submitCommand;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.shard.EmbeddingClient;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.Location;
import org.junit.jupiter.api.Test;

/**
 * Executor discovery and the job's secret on a standalone cluster of separate JVMs (Master + 2
 * Workers of one core each, the ClusterEndToEndIT harness), the job submitted from its shaded jar
 * with {@code --total-executor-cores 2} and no {@code spark.executor.instances}: with {@code
 * --min-executors 2} it waits for both executors to register and places shards on both; while it
 * trains, a Flight call from this process (outside the job) to an executor's shard server without
 * the job's secret is refused; and {@code --min-executors 3} on two executors fails after {@code
 * --executor-wait} with a message naming the executors found.
 */
class ExecutorDiscoveryIT extends ClusterJobTestBase {
  @Test
  void theJobWaitsForMinExecutorsPlacesShardsOnThemAndItsServersRefuseCallsWithoutTheSecret() throws Exception {
    Path corpus = smallCorpus(tmp.resolve("corpus.txt"), 240);
    Path table = tmp.resolve("table");
    clusterDir = tmp.resolve("cluster");
    String master = startCluster(tmp, clusterDir, 2);

    List<String> cmd = submitCommand(master, jobJar(),
        "--input", corpus.toString(), "--output", table.toString(), "--dim", "16", "--epochs", "3", "--min-count", "3",
        "--shards", "4", "--min-executors", "2", "--executor-wait", "120", "--progress-seconds", "5");
    assertThat(String.join(" ", cmd)).contains("--total-executor-cores 2").doesNotContain("spark.executor.instances");
    Path log = tmp.resolve("driver.log");
    driver = submit(log, cmd);

    // The first hosting line: an executor's servers are up; call one from here, without the secret.
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(10);
    Matcher m = HOSTS.matcher("");
    while (driver.isAlive() && System.nanoTime() < deadline && !(m = HOSTS.matcher(readIfExists(log))).find()) {
      Thread.sleep(100);
    }
    assertThat(m.find(0)).as("a hosting line in the driver log: %s", tail(log)).isTrue();
    String endpoint = m.group(3);
    try (FlightClient raw = FlightClient.builder(allocator, new Location(endpoint)).build()) {
      Throwable t = catchThrowable(() -> raw.doAction(new Action("health"), CallOptions.timeout(30, TimeUnit.SECONDS))
          .forEachRemaining(r -> { }));
      assertThat(t).as("health without the job's secret").isInstanceOf(FlightRuntimeException.class);
      assertThat(((FlightRuntimeException) t).status().code()).as("%s", t).isEqualTo(FlightStatusCode.UNAUTHENTICATED);
    }
    Throwable client = catchThrowable(() -> EmbeddingClient.builder()
        .manifest(TableManifest.builder().rows(4).dim(16).partitioner("modulo")
            .addShard(new TableManifest.ShardEntry(0, "x", 4, 0, 3, 0, 0)).build())
        .endpoints(List.of(endpoint)).token("not-the-secret").allocator(allocator).deadline(Duration.ofSeconds(30)).build());
    assertThat(client).as("a routing client with another token").isInstanceOf(IOException.class).hasMessageContaining("UNAUTHENTICATED");
    assertThat(driver.isAlive()).as("the job still ran when it was called (else the call proves nothing): %s", tail(log)).isTrue();

    assertThat(driver.waitFor(15, TimeUnit.MINUTES)).as("the job ends: %s", tail(log)).isTrue();
    assertThat(driver.exitValue()).as("SparkSubmit exit: %s", tail(log)).isZero();
    String out = Files.readString(log);
    Map<String, String> shardsByExecutor = new TreeMap<>();
    Matcher hosts = HOSTS.matcher(out);
    while (hosts.find()) {
      shardsByExecutor.put(hosts.group(1), hosts.group(2));
    }
    assertThat(shardsByExecutor).as("shards on both registered executors").hasSize(2).doesNotContainKey("driver");
    Table t = Table.open(table);
    assertThat(t.verify(allocator)).allMatch(l -> l.contains(": ok"));
    assertThat(t.manifest().properties()).containsEntry("train.complete", "true");

    // Three executors wanted, two registered: refused after --executor-wait, naming both.
    Path log2 = tmp.resolve("driver-2.log");
    driver = submit(log2, submitCommand(master, jobJar(), "--input", corpus.toString(), "--output",
        tmp.resolve("table-2").toString(), "--dim", "16", "--min-count", "3", "--min-executors", "3", "--executor-wait", "5"));
    assertThat(driver.waitFor(10, TimeUnit.MINUTES)).as("the second job ends: %s", tail(log2)).isTrue();
    assertThat(driver.exitValue()).isNotZero();
    assertThat(Files.readString(log2)).containsPattern("Cannot host the shards: 2 of --min-executors 3 executors registered"
        + " within --executor-wait 5.0 s \\(executor \\d+ on \\S+, executor \\d+ on \\S+\\); check that the cluster has free"
        + " cores and memory for them, or lower --min-executors");
    assertThat(tmp.resolve("table-2").resolve("manifest.json")).doesNotExist();
  }

  private static String tail(Path log) {
    String s = readIfExists(log);
    return s.substring(Math.max(0, s.length() - 6000));
  }
}
