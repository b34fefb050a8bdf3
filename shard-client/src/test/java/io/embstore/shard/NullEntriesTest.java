package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Null entries in a request, sent by a raw Flight client with nullable columns: a null id (whose
 * slot holds another valid id underneath), a null gradient row or value, a null query are
 * INVALID_ARGUMENT naming the request row, and nothing is applied; the same columns without nulls
 * are served (nullability itself is not checked).
 */
class NullEntriesTest {
  static final int DIM = 4;
  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardFixture fx;
  FlightClient client;

  @BeforeEach
  void setUp() throws Exception {
    allocator = new RootAllocator();
    fx = new ShardFixture(tmp.resolve("t"), 100, DIM, 2, "modulo", allocator);
    ShardServer s = fx.start(allocator, 0, 1);
    client = FlightClient.builder(allocator, Location.forGrpcInsecure("127.0.0.1", s.port())).build();
  }

  @AfterEach
  void tearDown() throws Exception {
    client.close();
    fx.close();
    allocator.close();
  }

  static Field nullableInt64(String name) {
    return new Field(name, FieldType.nullable(new ArrowType.Int(64, true)), null);
  }

  static Field nullableFloats(String name) {
    Field item = new Field("item", FieldType.nullable(new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE)), null);
    return new Field(name, FieldType.nullable(new ArrowType.FixedSizeList(DIM)), List.of(item));
  }

  /** Sends one batch on an exchange and reads the replies: the number of reply rows. */
  private long exchange(String command, Schema schema, int rows, Consumer<VectorSchemaRoot> fill) throws Exception {
    FlightDescriptor d = FlightDescriptor.command(command.getBytes(StandardCharsets.UTF_8));
    long replyRows = 0;
    try (VectorSchemaRoot root = VectorSchemaRoot.create(schema, allocator);
        FlightClient.ExchangeReaderWriter rw = client.doExchange(d)) {
      root.allocateNew();
      fill.accept(root);
      root.setRowCount(rows);
      rw.getWriter().start(root);
      rw.getWriter().putNext();
      rw.getWriter().completed();
      FlightStream r = rw.getReader();
      while (r.next()) {
        replyRows += r.getRoot().getRowCount();
      }
      rw.getWriter().getResult();
    }
    return replyRows;
  }

  private static void ids(VectorSchemaRoot root, long... ids) {
    BigIntVector v = (BigIntVector) root.getVector(0);
    for (int i = 0; i < ids.length; i++) {
      v.setSafe(i, ids[i]);
    }
    v.setValueCount(ids.length);
  }

  private static void grads(VectorSchemaRoot root, int column, int rows) {
    FixedSizeListVector list = (FixedSizeListVector) root.getVector(column);
    Float4Vector data = (Float4Vector) list.getDataVector();
    for (int i = 0; i < rows; i++) {
      list.setNotNull(i);
      for (int c = 0; c < DIM; c++) {
        data.setSafe(i * DIM + c, 0.5f);
      }
    }
    data.setValueCount(rows * DIM);
    list.setValueCount(rows);
  }

  private void assertInvalid(String message, ThrowingCall call) {
    assertThatThrownBy(call::run)
        .isInstanceOf(FlightRuntimeException.class)
        .hasMessage(message)
        .satisfies(e -> assertThat(((FlightRuntimeException) e).status().code()).isEqualTo(FlightStatusCode.INVALID_ARGUMENT));
  }

  interface ThrowingCall {
    void run() throws Exception;
  }

  private float[] rows(long... ids) throws Exception {
    try (EmbeddingClient c = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      float[] out = new float[ids.length * DIM];
      c.lookup(ids, out);
      return out;
    }
  }

  @Test
  void aNullIdIsRefusedEvenWhenItsSlotHoldsAValidId() throws Exception {
    Schema lookup = new Schema(List.of(nullableInt64("id")));
    // without nulls, nullable columns are served
    assertThat(exchange("{\"op\":\"lookup\",\"shard\":0}", lookup, 2, r -> ids(r, 2, 4))).isEqualTo(2);
    // row 1's slot holds id 4 (shard 0's) under its null bit: not an id to answer
    assertInvalid("Cannot look up ids: the id of request row 1 is null (ids must not be null)",
        () -> exchange("{\"op\":\"lookup\",\"shard\":0}", lookup, 2, r -> {
          ids(r, 2, 4);
          ((BigIntVector) r.getVector(0)).setNull(1);
        }));
  }

  @Test
  void nullIdsAndGradientsInAnUpdateAreRefusedAndNothingIsApplied() throws Exception {
    float[] before = rows(0, 2, 4);
    Schema update = new Schema(List.of(nullableInt64("id"), nullableFloats("grad")));
    String cmd = "{\"op\":\"update\",\"shard\":0}";
    assertInvalid("Cannot update: the id of request row 2 is null (ids must not be null; nothing was applied)",
        () -> exchange(cmd, update, 3, r -> {
          ids(r, 0, 2, 4);
          grads(r, 1, 3);
          ((BigIntVector) r.getVector(0)).setNull(2);
        }));
    assertInvalid("Cannot update id 2: the gradient of request row 1 is null (gradients must not be null; nothing was applied)",
        () -> exchange(cmd, update, 3, r -> {
          ids(r, 0, 2, 4);
          grads(r, 1, 3);
          ((FixedSizeListVector) r.getVector(1)).setNull(1);
        }));
    assertInvalid("Cannot update id 4: gradient value 3 of request row 2 is null (gradients must not be null; nothing was applied)",
        () -> exchange(cmd, update, 3, r -> {
          ids(r, 0, 2, 4);
          grads(r, 1, 3);
          ((Float4Vector) ((FixedSizeListVector) r.getVector(1)).getDataVector()).setNull(2 * DIM + 3);
        }));
    assertThat(rows(0, 2, 4)).as("nothing applied").isEqualTo(before);
    // the same batch without nulls is applied
    assertThat(exchange(cmd, update, 3, r -> {
      ids(r, 0, 2, 4);
      grads(r, 1, 3);
    })).isEqualTo(1);
    assertThat(rows(0, 2, 4)).isNotEqualTo(before);
  }

  @Test
  void aNullQueryIsRefused() throws Exception {
    Schema nearest = new Schema(List.of(nullableFloats("query")));
    String cmd = "{\"op\":\"nearest\",\"shard\":0,\"k\":3}";
    assertThat(exchange(cmd, nearest, 1, r -> grads(r, 0, 1))).isEqualTo(3);
    assertInvalid("Cannot search: the query of request row 0 is null (queries must not be null)",
        () -> exchange(cmd, nearest, 1, r -> {
          grads(r, 0, 1);
          ((FixedSizeListVector) r.getVector(0)).setNull(0);
        }));
    assertInvalid("Cannot search: query value 1 of request row 0 is null (queries must not be null)",
        () -> exchange(cmd, nearest, 1, r -> {
          grads(r, 0, 1);
          ((Float4Vector) ((FixedSizeListVector) r.getVector(0)).getDataVector()).setNull(1);
        }));
  }
}
