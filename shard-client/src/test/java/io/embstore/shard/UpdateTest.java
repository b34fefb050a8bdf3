package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
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

  /**
   * One stream, batches whose app metadata gives the learning rate: repeated, changed, back again
   * (the server parses a repeated rate once, so a change must still take effect), then one that is
   * not a number, which fails the stream after the good batches were applied.
   */
  @Test
  void eachBatchIsAppliedWithTheLearningRateOfItsOwnMetadata() throws Exception {
    int dim = 4;
    fx = new ShardFixture(tmp.resolve("t"), 40, dim, 1, "modulo", allocator);
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).optimizer(Optimizer.sgd(0.3)).allocator(allocator));
    String[] metadata = {"{\"lr\":0.1}", "{\"lr\":0.1}", "{\"lr\":0.5}", null, "{\"lr\":0.1}", "{\"lr\":\"fast\"}"};
    double[] applied = {0.1, 0.1, 0.5, 0.3, 0.1};
    float[] g = {1, -2, 0.25f, 4};
    try (FlightClient raw = FlightClient.builder(allocator, Location.forGrpcInsecure("127.0.0.1", s.port())).build();
        VectorSchemaRoot req = VectorSchemaRoot.create(Protocol.updateRequest(dim), allocator);
        FlightClient.ExchangeReaderWriter rw = raw.doExchange(Messages.Command.update(0).descriptor())) {
      rw.getWriter().start(req);
      for (int b = 0; b < metadata.length; b++) {
        BigIntVector ids = (BigIntVector) req.getVector(0);
        ids.allocateNew(1);
        ids.set(0, b);
        ids.setValueCount(1);
        ArrowBuf data = Vectors.allocateRows((FixedSizeListVector) req.getVector(1), 1);
        for (int c = 0; c < dim; c++) {
          data.setFloat(4L * c, g[c]);
        }
        req.setRowCount(1);
        if (metadata[b] == null) {
          rw.getWriter().putNext();
        } else {
          byte[] bytes = metadata[b].getBytes(StandardCharsets.UTF_8);
          ArrowBuf meta = allocator.buffer(bytes.length);
          meta.setBytes(0, bytes);
          meta.writerIndex(bytes.length);
          rw.getWriter().putNext(meta);
        }
      }
      rw.getWriter().completed();
      assertThatThrownBy(() -> {
        while (rw.getReader().next()) {
          // one reply per applied batch
        }
      }).isInstanceOf(FlightRuntimeException.class)
          .hasMessageContaining("Cannot update: lr \"fast\" in app metadata is not a number")
          .satisfies(e -> assertThat(((FlightRuntimeException) e).status().code()).isEqualTo(FlightStatusCode.INVALID_ARGUMENT));
    }
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      for (int id = 0; id < 6; id++) {
        float[] row = new float[dim];
        client.lookup(new long[] {id}, row);
        for (int c = 0; c < dim; c++) {
          double expected = fx.matrix[id * dim + c] - (id < applied.length ? applied[id] * g[c] : 0);
          assertThat((double) row[c]).as("id %d col %d", id, c).isCloseTo(expected, within(1e-6));
        }
      }
    }
  }
}
