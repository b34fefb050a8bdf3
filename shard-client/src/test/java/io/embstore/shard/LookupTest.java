package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
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
