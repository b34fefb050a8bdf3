package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The client keeps its streams open between requests: requests of any size share them, and a
 * restarted server is picked up. Each test runs with updates on the fast update method and on the
 * Flight update exchange ({@code updateExchange}: the exchange pool's own path).
 */
class ExchangePoolTest {
  static final long V = 1000;
  static final int C = 4;
  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardFixture fx;

  @BeforeEach
  void open() throws Exception {
    allocator = new RootAllocator();
    fx = new ShardFixture(tmp.resolve("t"), V, C, 2, "modulo", allocator);
  }

  @AfterEach
  void close() {
    fx.close();
    allocator.close();
  }

  private void assertRows(long[] ids, float[] out, float[] matrix) {
    for (int i = 0; i < ids.length; i++) {
      for (int c = 0; c < C; c++) {
        assertThat(out[i * C + c]).as("id %d col %d", ids[i], c).isEqualTo(matrix[(int) (ids[i] * C + c)]);
      }
    }
  }

  @ParameterizedTest(name = "updateExchange={0}")
  @ValueSource(booleans = {false, true})
  void requestsOfGrowingAndShrinkingSizeShareStreamsAndStayExact(boolean updateExchange) throws Exception {
    fx.start(allocator, 0, 1);
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).updateExchange(updateExchange).allocator(allocator).build()) {
      SplittableRandom r = new SplittableRandom(5);
      for (int n : new int[] {1, 3, 700, 2, 1000, 1, 64}) {
        long[] ids = r.longs(n, 0, V).toArray();
        float[] out = new float[n * C];
        client.lookup(ids, out);
        assertRows(ids, out, fx.matrix);
      }
      for (int i = 0; i < 200; i++) {
        client.lookup(new long[] {i}, new float[C]);
        client.update(new long[] {i}, new float[C], 0.1f);
      }
      // sequential requests reuse their streams instead of opening one each
      long[] counts = client.streamCounts(0);
      assertThat(counts[0]).as("lookup streams opened for %d lookups", 207).isLessThan(10);
      assertThat(counts[2]).as("update streams opened for %d updates", 200).isLessThan(10);
      List<CompletableFuture<Void>> futures = new ArrayList<>();
      List<long[]> idss = new ArrayList<>();
      List<float[]> outs = new ArrayList<>();
      for (int i = 0; i < 500; i++) {
        long[] ids = r.longs(1 + i % 7, 0, V).toArray();
        float[] out = new float[ids.length * C];
        idss.add(ids);
        outs.add(out);
        futures.add(client.lookupAsync(ids, out));
      }
      CompletableFuture.allOf(futures.toArray(new CompletableFuture[0])).join();
      for (int i = 0; i < idss.size(); i++) {
        assertRows(idss.get(i), outs.get(i), fx.matrix);
      }
    }
  }

  /** The learning rate of each request travels with its batch, so requests on one stream can differ. */
  @ParameterizedTest(name = "updateExchange={0}")
  @ValueSource(booleans = {false, true})
  void eachUpdateOnAReusedStreamUsesItsOwnLearningRate(boolean updateExchange) throws Exception {
    fx.start(ShardServer.builder().table(fx.dir).optimizer(Optimizer.sgd(0.5)).allocator(allocator));
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).updateExchange(updateExchange).allocator(allocator).build()) {
      float[] g = {1, 2, 3, 4};
      client.update(new long[] {6}, g, 0.25f);
      client.update(new long[] {6}, g, 0.125f);
      client.update(new long[] {6}, g); // the server's rate, 0.5
      float[] row = new float[C];
      client.lookup(new long[] {6}, row);
      for (int c = 0; c < C; c++) {
        float w = fx.matrix[6 * C + c];
        w -= 0.25f * g[c];
        w -= 0.125f * g[c];
        w -= 0.5f * g[c];
        assertThat(row[c]).isEqualTo(w);
      }
    }
  }

  /**
   * A server restart leaves the client's pooled streams dead; the same client's next lookup and
   * update succeed on new streams, and the update is applied exactly once.
   */
  @ParameterizedTest(name = "updateExchange={0}")
  @ValueSource(booleans = {false, true})
  void aClientRecoversFromAServerRestartOnTheSamePort(boolean updateExchange) throws Exception {
    ShardServer first = fx.start(allocator, 0, 1);
    int port = first.port();
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).updateExchange(updateExchange).allocator(allocator).build()) {
      long[] ids = {1, 2, 3, 998};
      float[] out = new float[ids.length * C];
      client.lookup(ids, out);
      client.update(new long[] {5}, new float[] {1, 1, 1, 1}, 0.5f);
      String endpoint = first.endpoint();
      first.close();
      fx.servers.remove(first);
      // while it is down, lookups (blocking and micro-batched async) fail naming shard and endpoint
      assertThatThrownBy(() -> client.lookup(new long[] {3}, new float[C]))
          .isInstanceOf(ShardException.class)
          .hasMessageStartingWith("Cannot look up 1 ids on shard 1 at " + endpoint + ": UNAVAILABLE");
      assertThatThrownBy(() -> client.lookupAsync(new long[] {2, 4}, new float[2 * C]).join())
          .isInstanceOf(CompletionException.class)
          .cause()
          .isInstanceOf(ShardException.class)
          .hasMessageStartingWith("Cannot look up 2 ids on shard 0 at " + endpoint + ": UNAVAILABLE");
      fx.start(ShardServer.builder().table(fx.dir).port(port).allocator(allocator));
      client.lookup(ids, out);
      assertRows(ids, out, fx.matrix); // the new server loaded the table as written
      client.update(new long[] {5}, new float[] {1, 1, 1, 1}, 0.5f);
      float[] row = new float[C];
      client.lookup(new long[] {5}, row);
      for (int c = 0; c < C; c++) {
        assertThat(row[c]).isEqualTo(fx.matrix[5 * C + c] - 0.5f);
      }
    }
  }
}
