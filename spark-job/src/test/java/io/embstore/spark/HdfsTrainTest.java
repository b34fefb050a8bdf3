package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.storage.MiniHdfs;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.zip.GZIPInputStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Training with its corpus and its table on a real HDFS (MiniDFSCluster in this JVM, Spark in
 * local mode): checkpoints written there by the shard servers, a run cut after its first epoch's
 * checkpoint resumed onto another {@code --shards} (the servers re-partition the checkpoint as
 * they load it), and {@code --input} paths that do not exist or cannot be reached refused in one
 * line before any Spark job runs.
 */
class HdfsTrainTest extends SparkTestBase {
  static MiniHdfs hdfs;
  BufferAllocator allocator;

  @BeforeAll
  static void startHdfs() throws Exception {
    hdfs = MiniHdfs.shared();
  }

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    allocator.close();
  }

  /** The first {@code lines} lines (1,000 tokens each) of the quickstart corpus, written to HDFS. */
  static String corpusOnHdfs(String path, int lines) throws Exception {
    Path kjv = Paths.get(System.getProperty("embstore.repo.dir", ".."), "deploy/quickstart/kjv.txt.gz");
    if (!Files.exists(kjv)) {
      kjv = Paths.get("../deploy/quickstart/kjv.txt.gz");
    }
    try (BufferedReader r = new BufferedReader(new InputStreamReader(new GZIPInputStream(Files.newInputStream(kjv)), StandardCharsets.UTF_8));
        OutputStream o = hdfs.fileSystem().create(new org.apache.hadoop.fs.Path(path))) {
      String line;
      for (int i = 0; i < lines && (line = r.readLine()) != null; i++) {
        o.write((line + "\n").getBytes(StandardCharsets.UTF_8));
      }
    }
    return hdfs.uri(path);
  }

  @Test
  void trainsIntoHdfsAndResumesOntoAnotherShardCount() throws Exception {
    String corpus = corpusOnHdfs("/train/corpus.txt", 40);
    String out = hdfs.uri("/train/table");
    String[] common = {"--input", corpus, "--output", out, "--epochs", "2", "--dim", "16", "--min-count", "3",
        "--partitions", "4", "--checkpoint-minutes", "0", "--progress-seconds", "10"};
    // Epoch 1 ends with a checkpoint on HDFS; the first task of epoch 2 fails the run.
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
            concat(common, "--shards", "2", "--fail-at-task", "4"))))
        .hasMessageContaining("injected failure");
    TableManifest cut = Table.open(out).manifest();
    assertThat(cut.numShards()).isEqualTo(2);
    assertThat(cut.properties()).containsEntry(TrainJob.P_EPOCH, "1").containsEntry(TrainJob.P_COMPLETE, "false");
    TableLocation ctx = TableLocation.of(out).resolve(TrainJob.CONTEXT_DIR);
    assertThat(Table.open(ctx).manifest().numShards()).isEqualTo(2);

    TrainJob.Result r = TrainJob.run(spark, TrainOptions.parse(new SparkConf(false), concat(common, "--shards", "3", "--resume")));
    TableManifest done = r.output();
    assertThat(done.numShards()).isEqualTo(3);
    assertThat(done.tableVersion()).isGreaterThan(cut.tableVersion());
    assertThat(done.properties()).containsEntry(TrainJob.P_EPOCH, "2").containsEntry(TrainJob.P_COMPLETE, "true");
    Table t = Table.open(out);
    assertThat(t.manifest()).isEqualTo(done);
    assertThat(t.verify(allocator)).hasSize(1 + 3 + 1).allMatch(l -> l.contains(": ok"));
    Table context = Table.open(ctx);
    assertThat(context.manifest().numShards()).isEqualTo(3);
    assertThat(context.verify(allocator)).hasSize(1 + 3).allMatch(l -> l.contains(": ok"));
    // Only the files of the committed versions are left: the P=2 files were deleted after the commits.
    assertThat(TableLocation.of(out).list()).filteredOn(n -> n.startsWith("shard-")).hasSize(3);
    assertThat(ctx.list()).filteredOn(n -> n.startsWith("shard-")).hasSize(3);
    assertThat(t.vocabulary(allocator).size()).isEqualTo((int) done.rows());
  }

  @Test
  void aMissingOrUnreachableInputIsRefusedBeforeTraining() throws Exception {
    String missing = hdfs.uri("/no/such/corpus.txt");
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
            "--input", missing, "--output", hdfs.uri("/never"), "--epochs", "1")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot read --input " + missing + ": no such file or directory");
    String unreachable = "hdfs://127.0.0.1:1/corpus.txt";
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
            "--input", unreachable, "--output", hdfs.uri("/never"), "--epochs", "1")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("Cannot read --input " + unreachable + ": ")
        .hasMessageContaining("Connection refused");
    assertThat(TableLocation.of(hdfs.uri("/never")).list()).isEmpty();
  }

  static String[] concat(String[] a, String... b) {
    String[] all = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, all, a.length, b.length);
    return all;
  }
}
