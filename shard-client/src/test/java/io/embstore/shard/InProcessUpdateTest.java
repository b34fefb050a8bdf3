package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Partitioner;
import io.embstore.format.TableManifest;
import io.embstore.format.ValueType;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.LongStream;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * In-process lookups into a float array and updates of shards without a write-ahead log copy
 * nothing through Arrow buffers (issue 20): for every optimizer and trainable value type their rows
 * are bit for bit those of the staged path they replace (kept as {@link
 * InProcessTransport#lookupStaged} / {@link InProcessTransport#updateStaged}) and of Flight, over
 * calls of one batch and of several, with repeated ids; the counters move as before; bad ids fail
 * with the same message.
 */
class InProcessUpdateTest {
  /** Odd and not a multiple of four: the tail of row-wise Adagrad's sum of squares is exercised. */
  static final int DIM = 257;
  /** Two shards of 3000 rows: a whole-shard call is two in-process batches of 2040 rows (2 MiB). */
  static final long ROWS = 6000;

  BufferAllocator allocator;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    allocator.close();
  }

  static List<Arguments> cases() {
    List<Arguments> list = new ArrayList<>();
    for (ValueType type : List.of(ValueType.FLOAT32, ValueType.FLOAT16, ValueType.BFLOAT16)) {
      list.add(Arguments.of(Optimizer.sgd(0.05), type));
      list.add(Arguments.of(Optimizer.adagrad(0.05, 1e-8), type));
      list.add(Arguments.of(Optimizer.rowwiseAdagrad(0.05, 1e-8), type));
      list.add(Arguments.of(Optimizer.adam(0.01, 0.9, 0.999, 1e-8), type));
    }
    return list;
  }

  static void init(long id, float[] row) {
    for (int c = 0; c < row.length; c++) {
      row[c] = (float) Math.sin(id * 31 + c);
    }
  }

  private ShardServer server(ValueType type, Optimizer optimizer) throws java.io.IOException {
    Partitioner p = Partitioner.modulo(ROWS, 2);
    List<TableManifest.ShardEntry> shards = new ArrayList<>();
    for (int s = 0; s < 2; s++) {
      shards.add(new TableManifest.ShardEntry(s, "placeholder", p.shardRows(s), p.minId(s), p.maxId(s), 0, 0));
    }
    TableManifest shape = TableManifest.builder().rows(ROWS).dim(DIM).valueType(type).partitioner("modulo").shards(shards).build();
    return ShardServer.builder().initialize(shape, InProcessUpdateTest::init).shards(0, 1).optimizer(optimizer).allocator(allocator).start();
  }

  private EmbeddingClient client(ShardServer server, boolean inProcess) throws Exception {
    return EmbeddingClient.builder().manifest(server.manifest()).endpoints(List.of(server.endpoint()))
        .inProcess(inProcess ? List.of(server) : List.of()).allocator(allocator).build();
  }

  /** The old in-process path: every shard part staged in Arrow buffers. */
  private void updateStaged(ShardServer server, long[] ids, float[] grads, float lr) {
    RequestPlan plan = new RequestPlan(ids, server.manifest().partitioner(), "update");
    float[] sums = plan.sumGradients(grads, DIM);
    InProcessTransport t = new InProcessTransport(server, allocator);
    for (int s : plan.shards) {
      assertThat(t.updateStaged(plan, sums, s, lr).await()).isNull();
    }
  }

  private float[] lookupStaged(ShardServer server, long[] ids) {
    RequestPlan plan = new RequestPlan(ids, server.manifest().partitioner(), "look up");
    float[] out = new float[ids.length * DIM];
    RequestPlan.ArrayScatter into = new RequestPlan.ArrayScatter(out, DIM);
    InProcessTransport t = new InProcessTransport(server, allocator);
    for (int s : plan.shards) {
      assertThat(t.lookupStaged(plan, s, into).await()).isNull();
    }
    return out;
  }

  private static long[] stats(ShardServer server) {
    Messages.Stats st = server.stats();
    return new long[] {st.lookupRows(), st.lookupRequests(), st.updateRows(), st.updateRequests(), st.inProcessRequests()};
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("cases")
  void updatesAndLookupsInPlaceGiveTheStagedPathsAndFlightsRowsBitForBit(Optimizer optimizer, ValueType type) throws Exception {
    try (ShardServer viaFlight = server(type, optimizer);
        ShardServer staged = server(type, optimizer);
        ShardServer direct = server(type, optimizer);
        EmbeddingClient flight = client(viaFlight, false);
        EmbeddingClient local = client(direct, true)) {
      SplittableRandom r = new SplittableRandom(7);
      long[] all = LongStream.range(0, ROWS).toArray();
      for (int round = 0; round < 8; round++) {
        // small calls (one batch everywhere) with repeated ids, and whole-table calls (two batches
        // a shard in process; Flight then batches otherwise, so it is left out of those rounds)
        boolean whole = round % 4 == 3;
        long[] ids = whole ? all : new long[500];
        if (!whole) {
          for (int i = 0; i < ids.length; i++) {
            ids[i] = i % 7 == 0 ? ids[0] : r.nextLong(ROWS);
          }
        }
        float[] grads = new float[ids.length * DIM];
        for (int i = 0; i < grads.length; i++) {
          grads[i] = (float) (r.nextDouble() - 0.5) * (round + 1);
        }
        float lr = round % 2 == 0 ? 0.1f : Float.NaN; // NaN: the servers' own rate
        if (!whole) {
          if (Float.isNaN(lr)) {
            flight.update(ids, grads);
          } else {
            flight.update(ids, grads, lr);
          }
        }
        updateStaged(staged, ids, grads, lr);
        if (Float.isNaN(lr)) {
          local.update(ids, grads);
        } else {
          local.update(ids, grads, lr);
        }
        float[] expected = lookupStaged(staged, all);
        float[] actual = new float[all.length * DIM];
        local.lookup(all, actual);
        assertSameBits(actual, expected, "round " + round + ", in place vs staged");
        assertSameBits(lookupStaged(direct, all), actual, "round " + round + ", lookups staged vs in place");
        if (round < 3) {
          float[] overFlight = new float[all.length * DIM];
          flight.lookup(all, overFlight);
          assertSameBits(actual, overFlight, "round " + round + ", in place vs Flight");
        }
      }
      // the same batches, rows and requests counted either way (direct was also read by lookupStaged)
      long[] s = stats(staged);
      assertThat(stats(direct)).containsExactly(2 * s[0], 2 * s[1], s[2], s[3], s[3] + 2 * s[1]);
      assertThat(s[3]).as("update batches").isEqualTo(6 * 2 + 2 * 2 * 2);
    }
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("cases")
  void repeatedIdsOfALookupGetTheirRowAtEveryPosition(Optimizer optimizer, ValueType type) throws Exception {
    try (ShardServer server = server(type, optimizer); EmbeddingClient local = client(server, true)) {
      long[] ids = {5, 4001, 5, 2, 5, 4001};
      float[] out = new float[ids.length * DIM];
      local.lookup(ids, out);
      float[] row = new float[DIM];
      for (int i = 0; i < ids.length; i++) {
        init(ids[i], row);
        for (int c = 0; c < DIM; c++) {
          float want = switch (type) {
            case FLOAT16 -> io.embstore.format.HalfFloats.float16ToFloat(io.embstore.format.HalfFloats.toFloat16(row[c]));
            case BFLOAT16 -> io.embstore.format.HalfFloats.bfloat16ToFloat(io.embstore.format.HalfFloats.toBfloat16(row[c]));
            default -> row[c];
          };
          assertThat(out[i * DIM + c]).as("position %d value %d", i, c).isEqualTo(want);
        }
      }
      Messages.Stats st = server.stats();
      assertThat(st.lookupRows()).isEqualTo(3);
      assertThat(st.lookupRequests()).isEqualTo(2);
      assertThat(st.inProcessRequests()).isEqualTo(2);
    }
  }

  /** A plan made with another table's partitioner names an id the shard does not own: the shard's own check refuses it. */
  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("cases")
  void idsTheShardDoesNotOwnFailWithTheStagedPathsMessage(Optimizer optimizer, ValueType type) throws Exception {
    try (ShardServer server = server(type, optimizer)) {
      InProcessTransport t = new InProcessTransport(server, allocator);
      // range-partitioned plan: id 1 goes to shard 0, which (modulo) owns only even ids
      RequestPlan plan = new RequestPlan(new long[] {0, 1}, Partitioner.range(ROWS, 2), "look up");
      Throwable lookup = t.lookup(plan, 0, new RequestPlan.ArrayScatter(new float[2 * DIM], DIM), 0, 0, false).await();
      Throwable lookupStaged = t.lookupStaged(plan, 0, new RequestPlan.ArrayScatter(new float[2 * DIM], DIM)).await();
      assertThat(lookup).isInstanceOf(FlightRuntimeException.class).hasMessage(lookupStaged.getMessage());
      assertThat(((FlightRuntimeException) lookup).status().code()).isEqualTo(FlightStatusCode.INVALID_ARGUMENT);
      assertThat(lookup.getMessage()).contains("Cannot look up id 1: not owned by").contains("request row 1");
      RequestPlan update = new RequestPlan(new long[] {0, 1}, Partitioner.range(ROWS, 2), "update");
      float[] sums = new float[2 * DIM];
      Throwable direct = t.update(update, sums, 0, 0.1f, 0).await();
      Throwable old = t.updateStaged(update, sums, 0, 0.1f).await();
      assertThat(direct).isInstanceOf(FlightRuntimeException.class).hasMessage(old.getMessage());
      assertThat(direct.getMessage()).contains("Cannot update id 1: not owned by").contains("request row 1");
      // nothing was applied, nothing counted but the calls
      assertThat(server.stats().updateRows()).isZero();
      assertThat(server.stats().updateRequests()).isZero();
      assertThat(server.stats().lookupRows()).isZero();
      assertThat(server.stats().inProcessRequests()).isEqualTo(4);
    }
  }

  /** A plan made for a larger table names an id past the shard's table: the same message as the staged path's. */
  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("cases")
  void idsOutsideTheTableFailWithTheStagedPathsMessage(Optimizer optimizer, ValueType type) throws Exception {
    try (ShardServer server = server(type, optimizer)) {
      InProcessTransport t = new InProcessTransport(server, allocator);
      RequestPlan plan = new RequestPlan(new long[] {2, 7000}, Partitioner.modulo(2 * ROWS, 2), "look up");
      Throwable lookup = t.lookup(plan, 0, new RequestPlan.ArrayScatter(new float[2 * DIM], DIM), 0, 0, false).await();
      Throwable lookupStaged = t.lookupStaged(plan, 0, new RequestPlan.ArrayScatter(new float[2 * DIM], DIM)).await();
      assertThat(lookup).isInstanceOf(FlightRuntimeException.class).hasMessage(lookupStaged.getMessage())
          .hasMessageContaining("Cannot look up id 7000: outside [0, 6000) (request row 1");
      Throwable update = t.update(plan, new float[2 * DIM], 0, 0.1f, 0).await();
      Throwable updateStaged = t.updateStaged(plan, new float[2 * DIM], 0, 0.1f).await();
      assertThat(update).isInstanceOf(FlightRuntimeException.class).hasMessage(updateStaged.getMessage())
          .hasMessageContaining("Cannot update id 7000: outside [0, 6000) (request row 1");
      assertThat(((FlightRuntimeException) update).status().code()).isEqualTo(FlightStatusCode.INVALID_ARGUMENT);
      assertThat(server.stats().updateRows()).isZero();
    }
  }

  /** int8 rows are decoded straight into the caller's array, as the staged path decodes them; updates are refused alike. */
  @org.junit.jupiter.api.Test
  void int8RowsDecodeIntoTheArrayAsStagedAndUpdatesAreRefusedAlike() throws Exception {
    try (ShardServer server = server(ValueType.INT8, Optimizer.sgd(0.1)); EmbeddingClient local = client(server, true)) {
      long[] all = LongStream.range(0, ROWS).toArray();
      float[] direct = new float[all.length * DIM];
      local.lookup(all, direct);
      assertSameBits(direct, lookupStaged(server, all), "int8 lookups");
      float[] row = new float[DIM];
      init(17, row);
      assertThat(direct[17 * DIM + 3]).isCloseTo(row[3], org.assertj.core.data.Offset.offset(0.01f));
      InProcessTransport t = new InProcessTransport(server, allocator);
      RequestPlan plan = new RequestPlan(new long[] {0, 2}, server.manifest().partitioner(), "update");
      Throwable e = t.update(plan, new float[2 * DIM], 0, 0.1f, 0).await();
      Throwable old = t.updateStaged(plan, new float[2 * DIM], 0, 0.1f).await();
      assertThat(e).isInstanceOf(FlightRuntimeException.class).hasMessage(old.getMessage())
          .hasMessageContaining("Cannot update shard 0: its rows are int8");
      assertThat(((FlightRuntimeException) e).status().code()).isEqualTo(FlightStatusCode.INVALID_ARGUMENT);
    }
  }

  /** A closed server fails an in-process call with UNAVAILABLE, on the direct paths too. */
  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("cases")
  void aClosedServerFailsDirectCallsUnavailable(Optimizer optimizer, ValueType type) throws Exception {
    ShardServer server = server(type, optimizer);
    InProcessTransport t = new InProcessTransport(server, allocator);
    server.close();
    RequestPlan plan = new RequestPlan(new long[] {0}, server.manifest().partitioner(), "look up");
    Throwable lookup = t.lookup(plan, 0, new RequestPlan.ArrayScatter(new float[DIM], DIM), 0, 0, false).await();
    Throwable update = t.update(plan, new float[DIM], 0, 0.1f, 0).await();
    for (Throwable e : List.of(lookup, update)) {
      assertThat(e).isInstanceOf(FlightRuntimeException.class).hasMessageContaining("in process: ");
      assertThat(((FlightRuntimeException) e).status().code()).isEqualTo(FlightStatusCode.UNAVAILABLE);
    }
  }

  /** Fails naming the first value (id, column) whose bits differ. */
  private static void assertSameBits(float[] actual, float[] expected, String what) {
    int at = java.util.Arrays.mismatch(bits(actual), bits(expected));
    assertThat(at).as("%s: first difference at id %d value %d: %s vs %s", what, at / DIM, at % DIM,
        at < 0 ? "" : actual[at], at < 0 ? "" : expected[at]).isEqualTo(-1);
  }

  private static int[] bits(float[] values) {
    int[] b = new int[values.length];
    for (int i = 0; i < values.length; i++) {
      b[i] = Float.floatToRawIntBits(values[i]);
    }
    return b;
  }
}
