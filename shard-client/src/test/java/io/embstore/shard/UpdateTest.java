package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.io.IOException;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class UpdateTest {
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

  @Test
  void sgdUpdateSumsDuplicatesAndTouchesOnlyTheGivenRows() throws IOException {
    int dim = 4;
    fx = new ShardFixture(tmp.resolve("t"), 200, dim, 4, "modulo", allocator);
    fx.start(allocator, 0, 2);
    fx.start(allocator, 1, 3);
    try (EmbeddingClient client =
        EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      long[] ids = {5, 6, 5, 199};
      float[] grads = {1, 2, 3, 4, 0.5f, 0.5f, 0.5f, 0.5f, 1, 1, 1, 1, -1, -2, -3, -4};
      client.update(ids, grads, 0.1f);
      long[] all = new long[200];
      for (int i = 0; i < all.length; i++) {
        all[i] = i;
      }
      float[] out = new float[200 * dim];
      client.lookup(all, out);
      for (int id = 0; id < 200; id++) {
        for (int c = 0; c < dim; c++) {
          double expected = fx.matrix[id * dim + c];
          if (id == 5) {
            expected -= 0.1 * (grads[c] + grads[8 + c]);
          } else if (id == 6) {
            expected -= 0.1 * grads[4 + c];
          } else if (id == 199) {
            expected -= 0.1 * grads[12 + c];
          }
          if (id == 5 || id == 6 || id == 199) {
            assertThat((double) out[id * dim + c]).isCloseTo(expected, within(1e-6));
          } else {
            assertThat(out[id * dim + c]).isEqualTo(fx.matrix[id * dim + c]);
          }
        }
      }
    }
  }
}
