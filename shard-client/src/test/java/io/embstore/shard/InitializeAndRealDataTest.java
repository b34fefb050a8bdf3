package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import io.embstore.format.Vocabulary;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.GZIPInputStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class InitializeAndRealDataTest {
  @TempDir Path tmp;
  BufferAllocator allocator;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    allocator.close();
  }

  static void init(long id, float[] row) {
    for (int c = 0; c < row.length; c++) {
      row[c] = (float) Math.sin(id * 31 + c);
    }
  }

  @Test
  void shardsInitializedInMemoryServeTheInitializerRowsAndSnapshotAsANewTable() throws Exception {
    TableManifest shape = TableManifest.builder().rows(100).dim(3).partitioner("range")
        .shards(placeholders(100, 3)).build();
    try (ShardServer a = ShardServer.builder().initialize(shape, InitializeAndRealDataTest::init).shards(0, 2)
            .optimizer(Optimizer.adagrad(0.1, 1e-8)).allocator(allocator).start();
        ShardServer b = ShardServer.builder().initialize(shape, InitializeAndRealDataTest::init).shards(1)
            .optimizer(Optimizer.adagrad(0.1, 1e-8)).allocator(allocator).start();
        EmbeddingClient client = EmbeddingClient.builder().manifest(shape)
            .endpoints(List.of(a.endpoint(), b.endpoint())).allocator(allocator).build()) {
      long[] ids = java.util.stream.LongStream.range(0, 100).toArray();
      float[] out = new float[300];
      client.lookup(ids, out);
      float[] row = new float[3];
      for (int id = 0; id < 100; id++) {
        init(id, row);
        for (int c = 0; c < 3; c++) {
          assertThat(out[id * 3 + c]).isEqualTo(row[c]);
        }
      }
      assertThat(a.manifest().optimizer().name()).isEqualTo("adagrad");
      TableManifest snap = TableSnapshot.write(client, tmp.resolve("new"));
      assertThat(snap.tableVersion()).isEqualTo(2);
      assertThat(snap.stateColumns()).containsExactly(new TableManifest.StateColumn("adagrad_sum", 3));
      Table t = Table.open(tmp.resolve("new"));
      assertThat(t.verify(allocator)).hasSize(4);
      float[] disk = new float[300];
      t.forEachRowInIdOrder(allocator, true, (first, n, buf, off) -> {
        for (int i = 0; i < n * 3; i++) {
          disk[(int) first * 3 + i] = buf.getFloat(off + 4L * i);
        }
      });
      assertThat(disk).isEqualTo(out);
    }
  }

  static List<TableManifest.ShardEntry> placeholders(long rows, int shards) {
    io.embstore.format.Partitioner p = io.embstore.format.Partitioner.range(rows, shards);
    List<TableManifest.ShardEntry> list = new java.util.ArrayList<>();
    for (int s = 0; s < shards; s++) {
      list.add(new TableManifest.ShardEntry(s, "placeholder", p.shardRows(s), p.minId(s), p.maxId(s), 0, 0));
    }
    return list;
  }

  /** The MiniLM token-embedding matrix from ../shared, served by two servers: king is near queen. */
  @Test
  void nearestNeighboursOfKingInTheMiniLmMatrixIncludeQueen() throws Exception {
    Path shared = Path.of(System.getProperty("embstore.shared.dir", "../shared"));
    Path npy = shared.resolve("data/embeddings/minilm-l6-wte-30522x384-f32.npy.gz");
    Path vocab = shared.resolve("data/embeddings/minilm-l6-vocab-30522.txt");
    Assumptions.assumeTrue(Files.exists(npy) && Files.exists(vocab), "MiniLM data not found under " + shared + " (../shared)");
    int rows = 30522;
    int dim = 384;
    ByteBuffer data = readNpy(npy, (long) rows * dim * 4);
    Path table = tmp.resolve("minilm");
    try (TableWriter w = TableWriter.create(table, rows, dim, 4, "modulo", allocator)) {
      w.vocabulary(Vocabulary.readTokenFile(vocab)).createdBy("test").appendInIdOrder(data.duplicate().order(ByteOrder.LITTLE_ENDIAN), rows);
      w.commit();
    }
    try (ShardServer a = ShardServer.builder().table(table).shards(0, 1).allocator(allocator).start();
        ShardServer b = ShardServer.builder().table(table).shards(2, 3).allocator(allocator).start();
        EmbeddingClient client = EmbeddingClient.builder().table(table)
            .endpoints(List.of(a.endpoint(), b.endpoint())).allocator(allocator).build()) {
      long king = client.tokenIds("king")[0];
      long queen = client.tokenIds("queen")[0];
      List<Neighbor> near = client.nearest(king, 10);
      assertThat(near).extracting(Neighbor::id).contains(queen).doesNotContain(king);
      float sim = near.stream().filter(n -> n.id() == queen).findFirst().orElseThrow().similarity();
      assertThat((double) sim).isCloseTo(0.63, within(0.05));
      float[] hello = client.lookupTokens("hello");
      assertThat(client.tokenIds("hello")[0]).isEqualTo(7592);
      for (int c = 0; c < dim; c++) {
        assertThat(hello[c]).isEqualTo(data.getFloat((7592 * dim + c) * 4));
      }
    }
  }

  /** Reads a little-endian float32 NumPy .npy.gz, checking the header's dtype. */
  static ByteBuffer readNpy(Path file, long expectedBytes) throws IOException {
    try (InputStream in = new GZIPInputStream(Files.newInputStream(file), 1 << 16);
        DataInputStream d = new DataInputStream(in)) {
      byte[] magic = new byte[6];
      d.readFully(magic);
      int major = d.readUnsignedByte();
      d.readUnsignedByte();
      int headerLen = major == 1
          ? Short.toUnsignedInt(Short.reverseBytes(d.readShort()))
          : Integer.reverseBytes(d.readInt());
      byte[] header = new byte[headerLen];
      d.readFully(header);
      String h = new String(header, StandardCharsets.US_ASCII);
      assertThat(h).contains("'descr': '<f4'").contains("'fortran_order': False");
      byte[] bytes = new byte[Math.toIntExact(expectedBytes)];
      d.readFully(bytes);
      return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    }
  }
}
