package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TestMatrices;
import io.embstore.format.ValueType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Shard servers of int8 tables: rows held in C + 8 bytes (codes, scale, bias), served as the
 * decoded float32 rows of the file (decoded on the server, or by the client from the stored bytes),
 * searched, and never updated.
 */
class Int8ServingTest {
  @TempDir Path tmp;
  BufferAllocator allocator;
  final List<ShardServer> servers = new java.util.ArrayList<>();

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    servers.forEach(ShardServer::close);
    allocator.close(); // fails the test on a leak
  }

  private List<String> serve(Path dir, int[]... shardsPerServer) throws IOException {
    List<String> endpoints = new java.util.ArrayList<>();
    for (int[] shards : shardsPerServer) {
      ShardServer s = ShardServer.builder().table(dir).shards(shards).allocator(allocator).start();
      servers.add(s);
      endpoints.add(s.endpoint());
    }
    return endpoints;
  }

  /** The table's rows as its reader decodes them, in id order. */
  private float[] fileRows(Path dir) throws IOException {
    int[] bits = TestMatrices.readBits(dir, allocator);
    float[] out = new float[bits.length];
    for (int i = 0; i < bits.length; i++) {
      out[i] = Float.intBitsToFloat(bits[i]);
    }
    return out;
  }

  @Test
  void int8ShardsHoldCPlusEightBytesARowAndServeTheDecodedFileRows() throws IOException {
    int rows = 1000;
    int dim = 24;
    float[] m = TestMatrices.random(rows, dim, 11);
    Path dir = tmp.resolve("t");
    TestMatrices.write(TableLocation.of(dir), m, rows, dim, 4, "modulo", ValueType.INT8, allocator);
    float[] expected = fileRows(dir);
    List<String> endpoints = serve(dir, new int[] {0, 2}, new int[] {1, 3});
    long held = 0;
    for (ShardServer s : servers) {
      held += s.stats().bytes();
    }
    // C + 8 bytes a row, up to the allocator's rounding of each shard's buffer (250 x 32 = 8,000 -> 8,192 bytes).
    assertThat(held).as("bytes the servers hold for %d rows x %d values", rows, dim)
        .isBetween((long) rows * (dim + 8), (long) (1.05 * rows * (dim + 8)));
    try (EmbeddingClient client = EmbeddingClient.builder().table(dir).endpoints(endpoints).allocator(allocator).build();
        EmbeddingClient stored = EmbeddingClient.builder().table(dir).endpoints(endpoints).storedRowsOnWire(true).allocator(allocator).build()) {
      long[] ids = new long[rows];
      for (int i = 0; i < rows; i++) {
        ids[i] = (i * 7L) % rows;
      }
      float[] out = new float[rows * dim];
      client.lookup(ids, out);
      for (int i = 0; i < rows; i++) {
        assertThat(TestMatrices.bits(Arrays.copyOfRange(out, i * dim, (i + 1) * dim)))
            .isEqualTo(TestMatrices.bits(Arrays.copyOfRange(expected, (int) ids[i] * dim, (int) (ids[i] + 1) * dim)));
      }
      // The stored bytes on the wire, decoded by the client: the same float32 bits.
      float[] viaStored = new float[rows * dim];
      stored.lookup(ids, viaStored);
      assertThat(TestMatrices.bits(viaStored)).isEqualTo(TestMatrices.bits(out));
      float[] async = new float[rows * dim];
      stored.lookupAsync(ids, async).join();
      assertThat(TestMatrices.bits(async)).isEqualTo(TestMatrices.bits(out));

      // nearest: the exact cosine top-5 over the decoded rows.
      float[] query = Arrays.copyOfRange(expected, 42 * dim, 43 * dim);
      List<Neighbor> hits = client.nearest(query, 5);
      assertThat(hits.stream().mapToLong(Neighbor::id).toArray()).isEqualTo(bruteForceTop(expected, rows, dim, query, 5));
      assertThat(hits.get(0).id()).isEqualTo(42);
    }
  }

  @Test
  void anUpdateOfAnInt8TableIsRefusedInOneLineAndTheServerKeepsServing() throws IOException {
    int rows = 40;
    int dim = 8;
    Path dir = tmp.resolve("t");
    TestMatrices.write(TableLocation.of(dir), TestMatrices.random(rows, dim, 3), rows, dim, 2, "modulo", ValueType.INT8, allocator);
    float[] expected = fileRows(dir);
    List<String> endpoints = serve(dir, new int[] {0, 1});
    try (EmbeddingClient client = EmbeddingClient.builder().table(dir).endpoints(endpoints).allocator(allocator).build()) {
      assertThatThrownBy(() -> client.update(new long[] {3}, new float[dim], 0.1f))
          .isInstanceOf(ShardException.class)
          .hasMessage("Cannot update 1 ids on shard 1 at " + endpoints.get(0) + ": INVALID_ARGUMENT: Cannot update shard 1: its rows are int8"
              + " (a quantized serving copy is read-only; update a float32, float16 or bfloat16 table and convert it again)")
          .satisfies(e -> assertThat(((ShardException) e).code()).isEqualTo(FlightStatusCode.INVALID_ARGUMENT));
      float[] row = new float[dim];
      client.lookup(new long[] {3}, row);
      assertThat(row).isEqualTo(Arrays.copyOfRange(expected, 3 * dim, 4 * dim));
    }
    // In process (a trainer's own shards): the same refusal.
    ShardServer s = servers.get(0);
    assertThatThrownBy(() -> s.hosted(0, "update").checkUpdatable())
        .hasMessageContaining("Cannot update shard 0: its rows are int8");
    // Nothing to snapshot, and no optimizer state held, whatever the optimizer.
    assertThatThrownBy(() -> s.writeShards(tmp.resolve("snap"), 2))
        .hasMessage("Cannot snapshot the shards of " + TableLocation.of(tmp.resolve("snap")) + ": their rows are int8"
            + " (a read-only serving copy never changes; its table is its snapshot)");
    ShardServer adagrad = ShardServer.builder().table(dir).optimizer(Optimizer.adagrad(0.05, 1e-8)).wal(tmp.resolve("wal"))
        .allocator(allocator).start();
    servers.add(adagrad);
    assertThat(adagrad.stats().bytes()).isEqualTo(s.stats().bytes());
    // With a write-ahead log too: an update is refused before anything is logged, and lookups go on.
    try (EmbeddingClient client = EmbeddingClient.builder().table(dir).endpoints(List.of(adagrad.endpoint())).allocator(allocator).build()) {
      assertThatThrownBy(() -> client.update(new long[] {4}, new float[dim], 0.1f))
          .isInstanceOf(ShardException.class)
          .hasMessageContaining("INVALID_ARGUMENT: Cannot update shard 0: its rows are int8");
      float[] row = new float[dim];
      client.lookup(new long[] {4}, row);
      assertThat(row).isEqualTo(Arrays.copyOfRange(expected, 4 * dim, 5 * dim));
    }
    assertThat(Table.open(dir).verify(allocator)).hasSize(3);
  }

  private static long[] bruteForceTop(float[] m, int rows, int dim, float[] q, int k) {
    Long[] order = new Long[rows];
    double[] sim = new double[rows];
    for (int r = 0; r < rows; r++) {
      double dot = 0;
      double rn = 0;
      double qn = 0;
      for (int c = 0; c < dim; c++) {
        dot += (double) m[r * dim + c] * q[c];
        rn += (double) m[r * dim + c] * m[r * dim + c];
        qn += (double) q[c] * q[c];
      }
      sim[r] = (float) (dot / (Math.sqrt(qn) * Math.sqrt(rn)));
      order[r] = (long) r;
    }
    Arrays.sort(order, (a, b) -> Double.compare(sim[(int) (long) b], sim[(int) (long) a]));
    long[] out = new long[k];
    for (int i = 0; i < k; i++) {
      out[i] = order[i];
    }
    return out;
  }
}
