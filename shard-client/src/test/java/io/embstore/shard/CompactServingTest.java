package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.HalfFloats;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TestMatrices;
import io.embstore.format.ValueType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Shard servers of float16 and bfloat16 tables: rows held in 2 bytes a value, served as float32,
 * searched, updated in float32 and stored back with stochastic rounding, snapshotted in their type.
 */
class CompactServingTest {
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

  private static float[] rounded(float[] m, ValueType type) {
    float[] out = new float[m.length];
    for (int i = 0; i < m.length; i++) {
      out[i] = type == ValueType.FLOAT16 ? HalfFloats.float16ToFloat(HalfFloats.toFloat16(m[i])) : HalfFloats.bfloat16ToFloat(HalfFloats.toBfloat16(m[i]));
    }
    return out;
  }

  @ParameterizedTest
  @EnumSource(value = ValueType.class, names = {"FLOAT16", "BFLOAT16"})
  void sixteenBitShardsHoldTwoBytesAValueAndServeFloat32RowsAndNeighbours(ValueType type) throws IOException {
    int rows = 1000;
    int dim = 16;
    float[] m = TestMatrices.random(rows, dim, 11);
    Path dir = tmp.resolve("t");
    TestMatrices.write(TableLocation.of(dir), m, rows, dim, 4, "modulo", type, allocator);
    float[] expected = rounded(m, type);
    List<String> endpoints = serve(dir, new int[] {0, 2}, new int[] {1, 3});
    long held = 0;
    for (ShardServer s : servers) {
      held += s.stats().bytes();
    }
    // C x 2 bytes a row, up to the allocator's rounding of each shard's buffer (8,000 -> 8,192 bytes).
    assertThat(held).as("bytes the servers hold for %d rows x %d values", rows, dim)
        .isBetween((long) rows * dim * 2, (long) (1.05 * rows * dim * 2));
    try (EmbeddingClient client = EmbeddingClient.builder().table(dir).endpoints(endpoints).allocator(allocator).build()) {
      long[] ids = new long[rows];
      for (int i = 0; i < rows; i++) {
        ids[i] = (i * 7L) % rows;
      }
      float[] out = new float[rows * dim];
      client.lookup(ids, out);
      for (int i = 0; i < rows; i++) {
        assertThat(Arrays.copyOfRange(out, i * dim, (i + 1) * dim))
            .isEqualTo(Arrays.copyOfRange(expected, (int) ids[i] * dim, (int) (ids[i] + 1) * dim));
      }
      // The same rows with the 16-bit values on the wire, widened by the client.
      try (EmbeddingClient compact = EmbeddingClient.builder().table(dir).endpoints(endpoints).storedRowsOnWire(true).allocator(allocator).build()) {
        float[] viaCompact = new float[rows * dim];
        compact.lookup(ids, viaCompact);
        assertThat(TestMatrices.bits(viaCompact)).isEqualTo(TestMatrices.bits(out));
        float[] async = new float[rows * dim];
        compact.lookupAsync(ids, async).join();
        assertThat(TestMatrices.bits(async)).isEqualTo(TestMatrices.bits(out));
      }
      // nearest: the exact cosine top-5 over the 16-bit rows.
      float[] query = Arrays.copyOfRange(expected, 42 * dim, 43 * dim);
      List<Neighbor> hits = client.nearest(query, 5);
      long[] brute = bruteForceTop(expected, rows, dim, query, 5);
      assertThat(hits.stream().mapToLong(Neighbor::id).toArray()).isEqualTo(brute);
      assertThat(brute[0]).isEqualTo(42);
    }
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

  /**
   * Every row starts at 1.0 and gets 400 SGD updates of +0.001: less than half a bfloat16 step at
   * 1.0 (2^-8 = 0.0039), so round to nearest would leave every value at 1.0. Stochastic rounding
   * moves each value by 0.001 in expectation: the mean over all values must be 1.4 within
   * statistical error, and the values must differ (random roundings, not one fixed rounding).
   * A snapshot then writes the rows as bfloat16, as the server holds them.
   */
  @Test
  void updatesOfABfloat16TableAreStoredWithUnbiasedStochasticRounding() throws IOException {
    int rows = 64;
    int dim = 16;
    float[] ones = new float[rows * dim];
    Arrays.fill(ones, 1.0f);
    Path dir = tmp.resolve("t");
    TestMatrices.write(TableLocation.of(dir), ones, rows, dim, 2, "modulo", ValueType.BFLOAT16, allocator);
    List<String> endpoints = serve(dir, new int[] {0, 1});
    int updates = 400;
    float step = 0.001f;
    try (EmbeddingClient client = EmbeddingClient.builder().table(dir).endpoints(endpoints).allocator(allocator).build()) {
      long[] ids = new long[rows];
      for (int i = 0; i < rows; i++) {
        ids[i] = i;
      }
      float[] grads = new float[rows * dim];
      Arrays.fill(grads, -step);
      for (int u = 0; u < updates; u++) {
        client.update(ids, grads, 1.0f);
      }
      float[] out = new float[rows * dim];
      client.lookup(ids, out);
      double sum = 0;
      double sumSquares = 0;
      java.util.Set<Float> distinct = new java.util.HashSet<>();
      for (float v : out) {
        sum += v;
        sumSquares += (double) v * v;
        distinct.add(v);
        assertThat(HalfFloats.bfloat16ToFloat(HalfFloats.toBfloat16(v))).as("a bfloat16 value").isEqualTo(v);
      }
      double mean = sum / out.length;
      double sd = Math.sqrt(sumSquares / out.length - mean * mean);
      double expected = 1.0 + updates * (double) step;
      assertThat(distinct.size()).as("distinct values (round to nearest would give one: 1.0)").isGreaterThan(3);
      assertThat(Math.abs(mean - expected)).as("mean %s, sd %s of %d values", mean, sd, out.length)
          .isLessThanOrEqualTo(5 * sd / Math.sqrt(out.length) + 1e-4);

      TableManifest snap = TableSnapshot.write(client, dir);
      assertThat(snap.valueType()).isEqualTo(ValueType.BFLOAT16);
      Table table = Table.open(dir);
      assertThat(table.verify(allocator)).hasSize(3);
      float[] row = new float[dim];
      for (int id = 0; id < rows; id++) {
        table.readRow(id, row, allocator);
        assertThat(row).isEqualTo(Arrays.copyOfRange(out, id * dim, (id + 1) * dim));
      }
    }
  }

  /**
   * The random bits of a row's rounding come from the update's log number and the row, so a server
   * restarted on its write-ahead log replays the updates into the very same 16-bit rows.
   */
  @ParameterizedTest
  @EnumSource(value = ValueType.class, names = {"FLOAT16", "BFLOAT16"})
  void aWriteAheadLogReplaysStochasticRoundingBitForBit(ValueType type) throws IOException {
    int rows = 50;
    int dim = 8;
    Path dir = tmp.resolve("t");
    Path wal = tmp.resolve("wal");
    TestMatrices.write(TableLocation.of(dir), TestMatrices.random(rows, dim, 3), rows, dim, 1, "modulo", type, allocator);
    long[] ids = new long[rows];
    for (int i = 0; i < rows; i++) {
      ids[i] = i;
    }
    float[] before = new float[rows * dim];
    ShardServer first = ShardServer.builder().table(dir).optimizer(Optimizer.adagrad(0.05, 1e-8)).wal(wal).allocator(allocator).start();
    try (EmbeddingClient client = EmbeddingClient.builder().table(dir).endpoints(List.of(first.endpoint())).allocator(allocator).build()) {
      float[] grads = TestMatrices.random(rows, dim, 5);
      for (int u = 0; u < 30; u++) {
        client.update(ids, grads);
      }
      client.lookup(ids, before);
    } finally {
      first.close();
    }
    ShardServer second = ShardServer.builder().table(dir).optimizer(Optimizer.adagrad(0.05, 1e-8)).wal(wal).allocator(allocator).start();
    servers.add(second);
    try (EmbeddingClient client = EmbeddingClient.builder().table(dir).endpoints(List.of(second.endpoint())).allocator(allocator).build()) {
      float[] after = new float[rows * dim];
      client.lookup(ids, after);
      assertThat(TestMatrices.bits(after)).isEqualTo(TestMatrices.bits(before));
      assertThat(TestMatrices.bits(after)).isNotEqualTo(TestMatrices.bits(rounded(TestMatrices.random(rows, dim, 3), type)));
    }
  }
}
