package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Partitioner;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TestMatrices;
import io.embstore.format.storage.MiniHdfs;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;

/**
 * Shard servers and a table on a real HDFS (MiniDFSCluster in this JVM): servers stream their
 * shards from {@code hdfs://}, a snapshot has every server write its own shard files there (the
 * client commits only the manifest), and servers load a table of another shard count, each getting
 * its rows and optimizer state of the new partitioning.
 */
class HdfsShardServerTest {
  static MiniHdfs hdfs;
  BufferAllocator allocator;
  final List<AutoCloseable> open = new ArrayList<>();
  String base;

  @BeforeAll
  static void startHdfs() throws Exception {
    hdfs = MiniHdfs.shared();
  }

  @BeforeEach
  void setUp(TestInfo info) {
    allocator = new RootAllocator();
    base = hdfs.uri("/shard-servers/" + info.getTestMethod().orElseThrow().getName());
  }

  @AfterEach
  void tearDown() throws Exception {
    for (int i = open.size() - 1; i >= 0; i--) {
      open.get(i).close();
    }
    allocator.close();
  }

  private ShardServer serve(ShardServer.Builder b) throws Exception {
    ShardServer s = b.allocator(allocator).start();
    open.add(s);
    return s;
  }

  private EmbeddingClient client(EmbeddingClient.Builder b, ShardServer... servers) throws Exception {
    List<String> endpoints = new ArrayList<>();
    for (ShardServer s : servers) {
      endpoints.add(s.endpoint());
    }
    EmbeddingClient c = b.endpoints(endpoints).allocator(allocator).build();
    open.add(c);
    return c;
  }

  private static void assertBits(float[] got, float[] expected, String what) {
    for (int i = 0; i < expected.length; i++) {
      if (Float.floatToRawIntBits(got[i]) != Float.floatToRawIntBits(expected[i])) {
        throw new AssertionError(what + ": value " + i + " is " + got[i] + ", expected " + expected[i]);
      }
    }
  }

  private static long[] allIds(long rows) {
    long[] ids = new long[(int) rows];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = rows - 1 - i;
    }
    return ids;
  }

  private static float[] inIdOrder(float[] m, long[] ids, int dim) {
    float[] out = new float[ids.length * dim];
    for (int i = 0; i < ids.length; i++) {
      System.arraycopy(m, (int) ids[i] * dim, out, i * dim, dim);
    }
    return out;
  }

  @Test
  void serversLoadFromHdfsAndSnapshotBackToIt() throws Exception {
    long rows = 4000;
    int dim = 16;
    TableLocation table = TableLocation.of(base + "/t");
    float[] m = TestMatrices.random(rows, dim, 3);
    TestMatrices.write(table, m, rows, dim, 3, "modulo", allocator);
    ShardServer a = serve(ShardServer.builder().table(table).shards(0, 2));
    ShardServer b = serve(ShardServer.builder().table(table).shards(1));
    EmbeddingClient c = client(EmbeddingClient.builder().table(table), a, b);
    long[] ids = allIds(rows);
    float[] got = new float[ids.length * dim];
    c.lookup(ids, got);
    assertBits(got, inIdOrder(m, ids, dim), "rows served from " + table);

    long[] some = {0, 1, 2, 3999};
    float[] grads = TestMatrices.random(some.length, dim, 4);
    c.update(some, grads, 0.5f);
    TableManifest snap = TableSnapshot.write(c, table);
    assertThat(snap.tableVersion()).isEqualTo(2);
    Table t = Table.open(table);
    assertThat(t.manifest()).isEqualTo(snap);
    assertThat(t.verify(allocator)).hasSize(3 + 1);
    assertThat(table.list()).containsExactlyInAnyOrder("manifest.json",
        "shard-00000-v000002.arrow", "shard-00001-v000002.arrow", "shard-00002-v000002.arrow");
    float[] served = new float[ids.length * dim];
    c.lookup(ids, served);
    float[] fromFiles = new float[(int) rows * dim];
    t.forEachRowInIdOrder(allocator, true, (first, n, buf, off) -> {
      for (int i = 0; i < n * dim; i++) {
        fromFiles[(int) (first * dim) + i] = buf.getFloat(off + 4L * i);
      }
    });
    assertBits(served, inIdOrder(fromFiles, ids, dim), "served rows against the snapshot on HDFS");
    assertThat(fromFiles[0]).isNotEqualTo(m[0]); // the update reached the snapshot
  }

  @Test
  void serversLoadACheckpointOfAnotherShardCountWithItsOptimizerState() throws Exception {
    long rows = 3001;
    int dim = 8;
    TableLocation table = TableLocation.of(base + "/t");
    float[] m = TestMatrices.random(rows, dim, 5);
    TestMatrices.write(table, m, rows, dim, 3, "modulo", allocator);
    Optimizer adagrad = Optimizer.rowwiseAdagrad(0.1, 1e-8);
    // Train a little with row-wise Adagrad (one accumulator per row) on P=3, then snapshot.
    ShardServer s3 = serve(ShardServer.builder().table(table).optimizer(adagrad));
    EmbeddingClient c3 = client(EmbeddingClient.builder().table(table), s3);
    SplittableRandom r = new SplittableRandom(9);
    long[] touched = new long[500];
    for (int i = 0; i < touched.length; i++) {
      touched[i] = r.nextLong(rows);
    }
    c3.update(touched, TestMatrices.random(touched.length, dim, 6), 0.1f);
    TableManifest p3 = TableSnapshot.write(c3, table);
    assertThat(p3.stateColumns()).hasSize(1);
    float[] acc3 = stateById(Table.open(table), rows);
    long trainedRows = 0;
    for (float v : acc3) {
      trainedRows += v > 0 ? 1 : 0;
    }
    assertThat(trainedRows).as("rows whose accumulator was trained").isPositive();
    long[] ids = allIds(rows);
    float[] before = new float[ids.length * dim];
    c3.lookup(ids, before);

    // Servers of P=5 load the P=3 checkpoint: each its rows of the new partitioning.
    Partitioner five = Partitioner.modulo(rows, 5);
    ShardServer x = serve(ShardServer.builder().table(table, five).optimizer(adagrad).shards(0, 1, 2));
    ShardServer y = serve(ShardServer.builder().table(table, five).optimizer(adagrad).shards(3, 4));
    assertThat(x.manifest().partitioner()).isEqualTo(five);
    EmbeddingClient c5 = client(EmbeddingClient.builder().manifest(Table.open(table).manifest().withPartitioning(five)), x, y);
    float[] after = new float[ids.length * dim];
    c5.lookup(ids, after);
    assertBits(after, before, "rows of the P=3 checkpoint served by P=5 servers");

    // Their snapshot is the same table in P=5, optimizer state included, row for row.
    TableManifest p5 = TableSnapshot.write(c5, table);
    assertThat(p5.numShards()).isEqualTo(5);
    assertThat(p5.tableVersion()).isEqualTo(p3.tableVersion() + 1);
    assertThat(table.list()).filteredOn(n -> n.startsWith("shard-")).hasSize(5);
    Table t5 = Table.open(table);
    t5.verify(allocator);
    assertThat(stateById(t5, rows)).isEqualTo(acc3);
  }

  /** The first state column of every row of table {@code t}, by id. */
  private float[] stateById(Table t, long rows) throws Exception {
    float[] out = new float[(int) rows];
    Partitioner p = t.manifest().partitioner();
    for (int s = 0; s < p.numShards(); s++) {
      try (var reader = t.openShard(s, allocator, true)) {
        while (reader.loadNextBatch()) {
          for (int i = 0; i < reader.batchRows(); i++) {
            out[(int) p.idAt(s, reader.batchStart() + i)] = reader.state(0).getFloat(i * 4L);
          }
        }
      }
    }
    return out;
  }
}
