package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.stream.LongStream;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Many requests in flight share a few long-lived streams per shard (pipelined: several request
 * batches on the wire, replies in order), and each still gets exactly its own answer.
 */
class PipelineTest {
  static final long V = 3000;
  static final int C = 8;
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

  /**
   * Eight threads, each with blocking and async lookups of mixed sizes in flight at once: every call
   * gets its own rows, and the client opens at most {@link FlightTransport.STREAMS_PER_SHARD}
   * streams per shard instead of one per concurrent request.
   */
  @Test
  void concurrentCallersShareAFewStreamsAndEachGetsItsOwnRows() throws Exception {
    fx.start(allocator, 0, 1);
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      List<CompletableFuture<Void>> workers = new ArrayList<>();
      java.util.concurrent.ExecutorService threads = java.util.concurrent.Executors.newFixedThreadPool(8);
      for (int t = 0; t < 8; t++) {
        int seed = t;
        workers.add(CompletableFuture.runAsync(() -> {
          SplittableRandom r = new SplittableRandom(seed);
          try {
            for (int round = 0; round < 40; round++) {
              long[] asyncIds = r.longs(1 + r.nextInt(20), 0, V).toArray();
              float[] asyncOut = new float[asyncIds.length * C];
              CompletableFuture<Void> pending = client.lookupAsync(asyncIds, asyncOut);
              long[] ids = r.longs(1 + r.nextInt(300), 0, V).toArray();
              float[] out = new float[ids.length * C];
              client.lookup(ids, out);
              assertRows(ids, out, fx.matrix);
              pending.join();
              assertRows(asyncIds, asyncOut, fx.matrix);
            }
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }, threads));
      }
      try {
        CompletableFuture.allOf(workers.toArray(new CompletableFuture[0])).join();
      } finally {
        threads.shutdown();
      }
      for (int s = 0; s < 2; s++) {
        assertThat(client.streamCounts(s)[0]).as("lookup streams opened for shard %d", s).isLessThanOrEqualTo(FlightTransport.STREAMS_PER_SHARD);
      }
    }
  }

  /** Hundreds of async updates of one row in flight at once, each with its own rate: each is applied exactly once. */
  @Test
  void pipelinedUpdatesAreEachAppliedExactlyOnce() throws Exception {
    fx.start(ShardServer.builder().table(fx.dir).optimizer(Optimizer.sgd(0.5)).allocator(allocator));
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      float[] g = {1, 2, 3, 4, -1, -2, -3, -4};
      List<CompletableFuture<Void>> futures = new ArrayList<>();
      double lrSum = 0;
      for (int i = 0; i < 300; i++) {
        float lr = 0.001f * (1 + i % 7);
        lrSum += lr;
        futures.add(client.updateAsync(new long[] {7, 8}, concat(g, g), lr));
      }
      CompletableFuture.allOf(futures.toArray(new CompletableFuture[0])).join();
      float[] rows = new float[2 * C];
      client.lookup(new long[] {7, 8}, rows);
      for (int k = 0; k < 2; k++) {
        for (int c = 0; c < C; c++) {
          double expected = fx.matrix[(7 + k) * C + c] - lrSum * g[c];
          assertThat((double) rows[k * C + c]).as("id %d col %d", 7 + k, c).isCloseTo(expected, within(1e-3));
        }
      }
      assertThat(client.streamCounts(0)[2] + client.streamCounts(1)[2]).as("update streams opened").isLessThanOrEqualTo(2L * FlightTransport.STREAMS_PER_SHARD);
    }
  }

  private static float[] concat(float[] a, float[] b) {
    float[] r = new float[a.length + b.length];
    System.arraycopy(a, 0, r, 0, a.length);
    System.arraycopy(b, 0, r, a.length, b.length);
    return r;
  }

  /**
   * A shard that never answers: every request queued on its streams (blocking and async lookups, an
   * async update, on the fast update method or the update exchange) fails with TIMED_OUT naming the
   * shard and the endpoint; the update is not retried.
   */
  @org.junit.jupiter.params.ParameterizedTest(name = "updateExchange={0}")
  @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
  void everyRequestPipelinedToASlowShardFailsAtTheDeadline(boolean updateExchange) throws Exception {
    ShardServer real = fx.start(allocator, 0, 1);
    try (SlowShardServer slow = new SlowShardServer(real, allocator)) {
      String endpoint = slow.endpoint();
      try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(List.of(endpoint))
          .deadline(Duration.ofMillis(400)).updateExchange(updateExchange).allocator(allocator).build()) {
        List<CompletableFuture<Void>> lookups = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
          lookups.add(client.lookupAsync(new long[] {2 * i}, new float[C]));
        }
        CompletableFuture<Void> update = client.updateAsync(new long[] {4, 6}, new float[2 * C], 0.1f);
        assertThatThrownBy(() -> client.lookup(new long[] {10, 12, 14}, new float[3 * C]))
            .isInstanceOf(ShardException.class)
            .hasMessageStartingWith("Cannot look up 3 ids on shard 0 at " + endpoint + ": TIMED_OUT")
            .satisfies(e -> assertThat(((ShardException) e).code()).isEqualTo(FlightStatusCode.TIMED_OUT));
        for (CompletableFuture<Void> f : lookups) {
          assertThatThrownBy(f::join)
              .isInstanceOf(CompletionException.class)
              .cause()
              .isInstanceOf(ShardException.class)
              .hasMessageStartingWith("Cannot look up 1 ids on shard 0 at " + endpoint + ": TIMED_OUT");
        }
        assertThatThrownBy(update::join)
            .isInstanceOf(CompletionException.class)
            .cause()
            .isInstanceOf(ShardException.class)
            .hasMessageStartingWith("Cannot update 2 ids on shard 0 at " + endpoint + ": TIMED_OUT");
      }
    }
  }

  /** The allocator named {@code name} under {@code a}, depth first. */
  private static BufferAllocator find(BufferAllocator a, String name) {
    if (a.getName().equals(name)) {
      return a;
    }
    for (BufferAllocator child : a.getChildAllocators()) {
      BufferAllocator found = find(child, name);
      if (found != null) {
        return found;
      }
    }
    return null;
  }

  /**
   * A call far larger than {@link ShardTransport.MAX_BATCH_BYTES} per shard goes as several
   * pipelined request batches: every row is right, and the server's Flight buffers stay a few
   * batches per stream instead of growing with the call.
   */
  @Test
  void largeLookupsAndUpdatesGoInBoundedBatches() throws Exception {
    long rows = 16384;
    int dim = 2048; // 8 KiB rows: 128 MiB matrix, 64 MiB per shard and call
    try (ShardFixture big = new ShardFixture(tmp.resolve("big"), rows, dim, 2, "modulo", allocator)) {
      largeCalls(big, rows, dim);
    }
  }

  private void largeCalls(ShardFixture fx, long rows, int dim) throws Exception {
    long callBytesPerShard = rows * dim * 4L / 2;
    assertThat(callBytesPerShard).isGreaterThanOrEqualTo(8 * ShardTransport.MAX_BATCH_BYTES);
    try (BufferAllocator serverMemory = allocator.newChildAllocator("server", 0, Long.MAX_VALUE)) {
      ShardServer server = fx.start(ShardServer.builder().table(fx.dir).allocator(serverMemory));
      BufferAllocator flight = find(serverMemory, "flight");
      long lookupPeak;
      try (EmbeddingClient client =
          EmbeddingClient.builder().manifest(fx.manifest).endpoints(List.of(server.endpoint())).allocator(allocator).build()) {
        long[] ids = LongStream.range(0, rows).toArray();
        float[] out = new float[(int) (rows * dim)];
        client.lookup(ids, out);
        assertThat(out).isEqualTo(fx.matrix);
        lookupPeak = flight.getPeakMemoryAllocation();

        float[] grads = new float[out.length];
        for (int i = 0; i < grads.length; i++) {
          grads[i] = (i % 7) - 3;
        }
        client.update(ids, grads, 0.5f);
        client.lookup(ids, out);
        float[] expected = new float[out.length];
        for (int i = 0; i < out.length; i++) {
          expected[i] = fx.matrix[i] - 0.5f * grads[i];
        }
        assertThat(out).isEqualTo(expected);
      }
      long updatePeak = flight.getPeakMemoryAllocation();
      server.close();
      System.out.printf("server's Flight buffers peak: %.1f MiB in lookups, %.1f MiB with updates (calls of %d MiB per shard)%n",
          lookupPeak / 1048576.0, updatePeak / 1048576.0, callBytesPerShard >> 20);
      // Two shards, one lookup and one update stream each. A lookup stream holds the replies gRPC
      // has not yet written (a budget) and the one being gathered, plus the small id requests read
      // ahead; an update stream the batch being applied and the five Flight reads ahead (over the
      // update exchange) or its one request buffer (over the fast update method: 4.0 MiB in all on
      // 2026-12-02). One batch per shard and call would be callBytesPerShard each.
      long batch = ShardTransport.MAX_BATCH_BYTES;
      assertThat(lookupPeak).as("Flight buffers in lookups").isLessThanOrEqualTo(2 * (ShardProducer.MAX_UNWRITTEN_REPLY_BYTES + 2 * batch) + batch);
      assertThat(updatePeak).as("Flight buffers with updates").isLessThanOrEqualTo(2 * 10 * batch);
    }
  }
}
