package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Path;
import java.util.SplittableRandom;
import com.fasterxml.jackson.databind.JsonNode;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.Result;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class LookupTest {
  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardFixture fx;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    if (fx != null) {
      fx.close();
    }
    allocator.close();
  }

  @ParameterizedTest
  @CsvSource({"modulo,1000,8,4", "range,1001,5,4", "modulo,50,3,3"})
  void lookupsAcrossServersReturnTheTableRowsInRequestOrder(String partitioner, long rows, int dim, int shards)
      throws IOException {
    fx = new ShardFixture(tmp.resolve("t"), rows, dim, shards, partitioner, allocator);
    // P shards over 2 servers: even shards on one, odd on the other.
    fx.start(allocator, evens(shards));
    fx.start(allocator, odds(shards));
    try (EmbeddingClient client =
        EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      SplittableRandom r = new SplittableRandom(3);
      long[] ids = new long[700];
      for (int i = 0; i < ids.length; i++) {
        ids[i] = i % 10 == 0 ? ids[0] : r.nextLong(rows); // duplicates included
      }
      float[] out = new float[ids.length * dim];
      client.lookup(ids, out);
      for (int i = 0; i < ids.length; i++) {
        for (int c = 0; c < dim; c++) {
          assertThat(out[i * dim + c]).as("id %d col %d", ids[i], c).isEqualTo(fx.matrix[(int) (ids[i] * dim + c)]);
        }
      }
      float[] async = new float[ids.length * dim];
      client.lookupAsync(ids, async).join();
      assertThat(async).isEqualTo(out);
      try (ArrowBuf buf = allocator.buffer(16 + ids.length * dim * 4L)) {
        client.lookup(ids, buf, 16);
        for (int i = 0; i < ids.length * dim; i++) {
          assertThat(buf.getFloat(16 + 4L * i)).isEqualTo(out[i]);
        }
      }
      try (FixedSizeListVector vector = (FixedSizeListVector) Protocol.lookupReply(dim).getFields().get(0).createVector(allocator)) {
        client.lookup(ids, vector);
        assertThat(vector.getValueCount()).isEqualTo(ids.length);
        for (int i = 0; i < ids.length; i++) {
          assertThat(vector.isNull(i)).isFalse();
        }
        Float4Vector values = (Float4Vector) vector.getDataVector();
        for (int i = 0; i < ids.length * dim; i++) {
          assertThat(values.get(i)).isEqualTo(out[i]);
        }
        client.lookup(new long[] {ids[1]}, vector); // reused: reallocated for one row
        assertThat(vector.getValueCount()).isEqualTo(1);
        assertThat(values.get(dim - 1)).isEqualTo(out[2 * dim - 1]);
      }
      // Four lookups of the same ids: the client sends each distinct id once per call, so the
      // servers together served exactly 4 x (distinct ids) rows.
      long distinct = java.util.Arrays.stream(ids).distinct().count();
      assertThat(distinct).isLessThan(ids.length);
      long served = 0;
      for (ShardServer server : fx.servers) {
        JsonNode stats = stats(server);
        served += stats.path("lookupRows").asLong();
        assertThat(stats.path("lookupRequests").asLong()).isPositive();
        assertThat(stats.path("lookupRowsPerSecond").asDouble()).isPositive();
        assertThat(stats.path("rateWindowSeconds").asDouble()).isPositive().isLessThanOrEqualTo(RecentRates.WINDOW_SECONDS + 1.0);
      }
      assertThat(served).isEqualTo(4 * distinct + 1);
    }
  }

  @Test
  void aVectorOfAnotherShapeIsRefused() throws IOException {
    fx = new ShardFixture(tmp.resolve("t"), 100, 4, 2, "modulo", allocator);
    fx.start(allocator, 0, 1);
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build();
        FixedSizeListVector wrong = (FixedSizeListVector) Protocol.lookupReply(5).getFields().get(0).createVector(allocator)) {
      assertThatThrownBy(() -> client.lookup(new long[] {1, 2}, wrong))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("Cannot look up 2 ids: the vector is")
          .hasMessageContaining("expected FixedSizeList(4) of float32 (C=4)");
    }
  }

  @ParameterizedTest
  @CsvSource({"modulo,997,6,4", "range,500,3,3"})
  void nearestIsTheExactCosineTopKOverEveryShard(String partitioner, long rows, int dim, int shards) throws IOException {
    fx = new ShardFixture(tmp.resolve("t"), rows, dim, shards, partitioner, allocator);
    fx.start(allocator, evens(shards));
    fx.start(allocator, odds(shards));
    try (EmbeddingClient client =
        EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      SplittableRandom r = new SplittableRandom(11);
      for (int q = 0; q < 5; q++) {
        float[] query = new float[dim];
        for (int c = 0; c < dim; c++) {
          query[c] = (float) r.nextGaussian();
        }
        int k = 1 + r.nextInt(20);
        assertSameNeighbours(client.nearest(query, k), bruteForce(query, k, -1), "query %d", q);
        long id = r.nextLong(rows);
        assertSameNeighbours(client.nearest(id, k), bruteForce(fx.row(id), k, id), "id %d", id);
      }
      // k larger than the table: every other row, best first
      assertThat(client.nearest(3, (int) rows + 5)).hasSize((int) rows - 1);
    }
  }

  /** Cosine similarities of every row in doubles, best first, ties by smaller id. */
  private long[] bruteForce(float[] query, int k, long exclude) {
    double qn = 0;
    for (float v : query) {
      qn += (double) v * v;
    }
    double[] sim = new double[(int) fx.rows];
    Long[] order = new Long[(int) fx.rows];
    for (int i = 0; i < fx.rows; i++) {
      double dot = 0;
      double n = 0;
      for (int c = 0; c < fx.dim; c++) {
        double v = fx.matrix[i * fx.dim + c];
        dot += v * query[c];
        n += v * v;
      }
      sim[i] = dot / Math.sqrt(n * qn);
      order[i] = (long) i;
    }
    java.util.Arrays.sort(order, (a, b) -> Double.compare(sim[(int) (long) b], sim[(int) (long) a]));
    return java.util.Arrays.stream(order).mapToLong(Long::longValue).filter(i -> i != exclude).limit(k).toArray();
  }

  private void assertSameNeighbours(java.util.List<Neighbor> got, long[] expected, String what, Object arg) {
    assertThat(got).as(what, arg).hasSize(expected.length);
    for (int i = 1; i < got.size(); i++) {
      assertThat(got.get(i).similarity()).as(what, arg).isLessThanOrEqualTo(got.get(i - 1).similarity());
    }
    // float32 scores may swap neighbours whose cosines differ by less than float precision
    assertThat(got.stream().mapToLong(Neighbor::id).toArray()).as(what, arg).containsExactly(expected);
  }

  private static JsonNode stats(ShardServer server) throws IOException {
    try (BufferAllocator a = new RootAllocator();
        FlightClient raw = FlightClient.builder(a, Location.forGrpcInsecure("127.0.0.1", server.port())).build()) {
      java.util.Iterator<Result> results = raw.doAction(new Action("stats"));
      return Messages.JSON.readTree(results.next().getBody());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException(e);
    }
  }

  @Test
  void aShardThatNoEndpointHostsFailsTheBuild() throws IOException {
    fx = new ShardFixture(tmp.resolve("t"), 100, 4, 4, "modulo", allocator);
    fx.start(allocator, 0, 1, 3);
    assertThatThrownBy(() -> EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build())
        .isInstanceOf(IOException.class)
        .hasMessageContaining("Cannot build client: shard 2 (shard 2 of 4 (ids 2..98 with id mod 4 = 2)) is hosted by no endpoint");
  }

  @Test
  void aServerOnTheWildcardAddressNamesALoopbackEndpointThatAClientReaches() throws IOException {
    fx = new ShardFixture(tmp.resolve("t"), 100, 4, 2, "modulo", allocator);
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).host("0.0.0.0").allocator(allocator));
    assertThat(s.listensOnEveryAddress()).isTrue();
    assertThat(s.bindAddress()).isEqualTo("0.0.0.0");
    assertThat(s.endpoint()).isEqualTo("grpc+tcp://127.0.0.1:" + s.port());
    ShardServer plain = fx.start(allocator, 0);
    assertThat(plain.listensOnEveryAddress()).isFalse();
    assertThat(plain.endpoint()).isEqualTo("grpc+tcp://127.0.0.1:" + plain.port());
    plain.close();
    fx.servers.remove(plain);
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      float[] out = new float[8];
      client.lookup(new long[] {41, 98}, out);
      assertThat(out).containsExactly(concat(fx.row(41), fx.row(98)));
    }
  }

  private static float[] concat(float[] a, float[] b) {
    float[] r = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, r, a.length, b.length);
    return r;
  }

  @Test
  void callsOnAClosedClientFailNamingTheCall() throws IOException {
    fx = new ShardFixture(tmp.resolve("t"), 100, 4, 2, "modulo", allocator);
    fx.start(allocator, 0, 1);
    EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build();
    client.lookup(new long[] {1, 2}, new float[8]);
    client.close();
    assertThatThrownBy(() -> client.lookup(new long[] {1, 2}, new float[8]))
        .isInstanceOf(IllegalStateException.class).hasMessage("Cannot look up 2 ids: the client is closed");
    assertThat(client.lookupAsync(new long[] {1}, new float[4])).isCompletedExceptionally();
    assertThatThrownBy(() -> client.lookupAsync(new long[] {1}, new float[4]).join())
        .hasCauseInstanceOf(IllegalStateException.class).hasMessageContaining("Cannot look up 1 ids: the client is closed");
    assertThatThrownBy(() -> client.update(new long[] {3}, new float[4], 0.1f))
        .isInstanceOf(IllegalStateException.class).hasMessage("Cannot update 1 ids: the client is closed");
    assertThatThrownBy(() -> client.nearest(new float[4], 3))
        .isInstanceOf(IllegalStateException.class).hasMessage("Cannot search: the client is closed");
  }

  static int[] evens(int p) {
    return java.util.stream.IntStream.range(0, p).filter(s -> s % 2 == 0).toArray();
  }

  static int[] odds(int p) {
    return java.util.stream.IntStream.range(0, p).filter(s -> s % 2 == 1).toArray();
  }
}
