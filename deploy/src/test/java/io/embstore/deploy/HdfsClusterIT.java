package io.embstore.deploy;

import static io.embstore.deploy.ClusterEndToEndIT.jobJar;
import static io.embstore.deploy.ClusterEndToEndIT.readIfExists;
import static io.embstore.deploy.ClusterEndToEndIT.smallCorpus;
import static io.embstore.deploy.ClusterEndToEndIT.sparkEnv;
import static io.embstore.deploy.ClusterEndToEndIT.startCluster;
import static io.embstore.deploy.ClusterEndToEndIT.stopCluster;
import static io.embstore.deploy.ClusterEndToEndIT.submitCommand;
import static io.embstore.deploy.ClusterEndToEndIT.tail;
import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.shard.EmbeddingClient;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Tables on HDFS with every part a separate process: a single-node HDFS ({@code
 * deploy/local-cluster/hdfs.sh}), a standalone Spark cluster (Master + 2 Workers), the shaded job
 * jar through SparkSubmit. The job trains from a corpus on HDFS into {@code --output hdfs://...}
 * (its executors' shard servers write the checkpoint shard files there), is killed (SIGKILL of the
 * driver) after its first checkpoint, and is resumed with another {@code --shards}; two {@code
 * embstore serve --table hdfs://...} processes then serve the result, and every row looked up
 * through the routing client equals, bit for bit, the row in the table files on HDFS.
 */
class HdfsClusterIT {
  @TempDir Path tmp;
  private Path clusterDir;
  private Path hdfsDir;
  private final List<Process> processes = new ArrayList<>();
  private BufferAllocator allocator;

  @BeforeEach
  void setUp() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void stopAll() throws Exception {
    ClusterEndToEndIT.stop(processes);
    if (clusterDir != null) {
      stopCluster(tmp, clusterDir);
    }
    if (hdfsDir != null) {
      hdfs(tmp, "stop", hdfsDir);
    }
    allocator.close();
  }

  /** {@code hdfs.sh start|stop --dir DIR}; for start, returns the URI it printed (its last line). */
  static String hdfs(Path tmp, String action, Path dir) throws Exception {
    Processes.Result r = Processes.run(tmp, Map.of("START_TIMEOUT", "180"), Duration.ofMinutes(4),
        List.of(ClusterEndToEndIT.script("local-cluster/hdfs.sh").toString(), action, "--dir", dir.toString()));
    assertThat(r.exit()).as("hdfs.sh %s: %s", action, r).isZero();
    String[] lines = r.out().strip().split("\n");
    return lines[lines.length - 1];
  }

  @Test
  void trainIntoHdfsKillResumeOntoAnotherShardCountAndServeFromHdfs() throws Exception {
    hdfsDir = tmp.resolve("hdfs");
    String hdfs = hdfs(tmp, "start", hdfsDir);
    assertThat(hdfs).matches("hdfs://127\\.0\\.0\\.1:[0-9]+");
    Path corpus = smallCorpus(tmp.resolve("corpus.txt"), 120);
    try (FileSystem fs = FileSystem.newInstance(URI.create(hdfs), new Configuration())) {
      fs.copyFromLocalFile(new org.apache.hadoop.fs.Path(corpus.toUri()), new org.apache.hadoop.fs.Path("/corpus/kjv.txt"));
    }
    String input = hdfs + "/corpus/kjv.txt";
    String table = hdfs + "/tables/kjv";
    TableLocation out = TableLocation.of(table);
    TableLocation ctx = out.resolve("_context");

    clusterDir = tmp.resolve("cluster");
    String master = startCluster(tmp, clusterDir, 2);
    Path jobJar = jobJar();
    String[] train = {"--input", input, "--output", table, "--dim", "32", "--epochs", "4", "--min-count", "3",
        "--checkpoint-minutes", "0", "--progress-seconds", "10"};

    // 1. Train with 4 shards; SIGKILL the driver once the first checkpoint (both tables) is on HDFS.
    List<String> first = submitCommand(master, jobJar, concat(train, "--shards", "4"));
    ProcessBuilder pb = new ProcessBuilder(first).directory(tmp.toFile())
        .redirectOutput(tmp.resolve("driver-1.out").toFile()).redirectError(tmp.resolve("driver-1.err").toFile());
    pb.environment().putAll(sparkEnv());
    Process driver = pb.start();
    processes.add(driver);
    TableManifest cut = null;
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(12);
    while (driver.isAlive() && System.nanoTime() < deadline) {
      if (out.hasManifest() && ctx.hasManifest()) {
        cut = Table.open(out).manifest();
        break;
      }
      Thread.sleep(200);
    }
    assertThat(cut).as("a first checkpoint on HDFS before the driver ended; driver log: %s",
        readIfExists(tmp.resolve("driver-1.err"))).isNotNull();
    driver.descendants().forEach(ProcessHandle::destroyForcibly);
    driver.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
    assertThat(cut.numShards()).isEqualTo(4);
    assertThat(cut.properties()).containsEntry("train.complete", "false");
    System.out.printf("driver killed after the checkpoint of table version %d (epoch %s)%n", cut.tableVersion(),
        cut.properties().get("train.epoch"));

    // 2. Resume onto 3 shards: the executors' servers re-partition the checkpoint as they load it.
    Processes.Result resumed = Processes.run(tmp, sparkEnv(), Duration.ofMinutes(15),
        submitCommand(master, jobJar, concat(train, "--shards", "3", "--resume")));
    assertThat(resumed.exit()).as("resume: %s", tail(resumed)).isZero();
    Table t = Table.open(out);
    TableManifest m = t.manifest();
    assertThat(m.numShards()).isEqualTo(3);
    assertThat(m.properties()).containsEntry("train.complete", "true").containsEntry("train.epoch", "4");
    assertThat(m.tableVersion()).isGreaterThan(cut.tableVersion());
    assertThat(t.verify(allocator)).hasSize(1 + 3 + 1).allMatch(l -> l.contains(": ok"));
    Table context = Table.open(ctx);
    assertThat(context.manifest().numShards()).isEqualTo(3);
    assertThat(context.verify(allocator)).hasSize(1 + 3).allMatch(l -> l.contains(": ok"));
    assertThat(out.list()).filteredOn(n -> n.startsWith("shard-")).hasSize(3);

    // 3. Serve from HDFS with two processes; every row through the routing client equals the files.
    String ep1 = ClusterEndToEndIT.serve(tmp, processes, table, "0,2", tmp.resolve("serve-1.log"));
    String ep2 = ClusterEndToEndIT.serve(tmp, processes, table, "1", tmp.resolve("serve-2.log"));
    int dim = m.dim();
    float[] fromFiles = new float[Math.toIntExact(m.rows() * dim)];
    t.forEachRowInIdOrder(allocator, true, (firstId, n, buf, off) -> {
      for (int i = 0; i < n * dim; i++) {
        fromFiles[Math.toIntExact(firstId * dim) + i] = buf.getFloat(off + 4L * i);
      }
    });
    try (EmbeddingClient client = EmbeddingClient.builder().table(out).endpoints(List.of(ep1, ep2))
        .allocator(allocator).deadline(Duration.ofSeconds(60)).build()) {
      long[] ids = new long[Math.toIntExact(m.rows())];
      for (int i = 0; i < ids.length; i++) {
        ids[i] = ids.length - 1 - i;
      }
      float[] served = new float[ids.length * dim];
      client.lookup(ids, served);
      for (int i = 0; i < ids.length; i++) {
        int id = (int) ids[i];
        for (int c = 0; c < dim; c++) {
          if (Float.floatToRawIntBits(served[i * dim + c]) != Float.floatToRawIntBits(fromFiles[id * dim + c])) {
            throw new AssertionError("row " + id + " column " + c + ": served " + served[i * dim + c] + ", file " + fromFiles[id * dim + c]);
          }
        }
      }
      assertThat(client.lookupTokens("god")).hasSize(dim);
    }
    System.out.printf("%d rows of %s served from HDFS by two processes, bit for bit the table files%n", m.rows(), table);
  }

  static String[] concat(String[] a, String... b) {
    String[] all = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, all, a.length, b.length);
    return all;
  }
}
