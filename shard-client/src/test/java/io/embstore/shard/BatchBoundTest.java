package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.List;
import java.util.stream.LongStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A call far larger than {@link EmbeddingClient.MAX_BATCH_BYTES} per shard goes as several pipelined
 * request batches: every row is right, and the server's transient memory (its allocator's peak above
 * the hosted rows) stays a few batches per stream instead of growing with the call.
 */
class BatchBoundTest {
  static final long V = 16384;
  static final int C = 2048; // 8 KiB rows: 64 MiB matrix, 32 MiB per shard and call
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

  @Test
  void largeLookupsAndUpdatesGoInBoundedBatches() throws Exception {
    long callBytesPerShard = V * C * 4L / 2;
    assertThat(callBytesPerShard).isGreaterThanOrEqualTo(8 * EmbeddingClient.MAX_BATCH_BYTES);
    try (BufferAllocator serverMemory = allocator.newChildAllocator("server", 0, Long.MAX_VALUE)) {
      ShardServer server = fx.start(ShardServer.builder().table(fx.dir).allocator(serverMemory));
      BufferAllocator flight = find(serverMemory, "flight");
      long lookupPeak;
      try (EmbeddingClient client =
          EmbeddingClient.builder().manifest(fx.manifest).endpoints(List.of(server.endpoint())).allocator(allocator).build()) {
        long[] ids = LongStream.range(0, V).toArray();
        float[] out = new float[(int) (V * C)];
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
      // ahead; an update stream the batch being applied and the five Flight reads ahead. One batch
      // per shard and call would be callBytesPerShard each.
      long batch = EmbeddingClient.MAX_BATCH_BYTES;
      assertThat(lookupPeak).as("Flight buffers in lookups").isLessThanOrEqualTo(2 * (ShardProducer.MAX_UNWRITTEN_REPLY_BYTES + 2 * batch) + batch);
      assertThat(updatePeak).as("Flight buffers with updates").isLessThanOrEqualTo(2 * 10 * batch);
    }
  }
}
