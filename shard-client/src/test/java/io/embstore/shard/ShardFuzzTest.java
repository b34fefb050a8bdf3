package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.embstore.format.TestMatrices;
import io.embstore.format.fault.TableFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.LongStream;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.memory.util.MemoryUtil;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Coverage-guided fuzz targets (Jazzer) for the shard server's decoding of every Flight request:
 * the exchange command (the DoExchange descriptor), the {@code snapshot} action body with its
 * directory check, the learning rate in an update batch's app metadata, whole request batches sent
 * to a running server (op, shard, schema, widths, row counts, ids, values and null bits all drawn
 * from the input), raw messages to the fast lookup and update methods, and the write-ahead log's segment reader (the one file a server reads back that
 * it wrote itself). A request must be answered with an explicit status, never UNKNOWN or INTERNAL,
 * with a message starting {@code Cannot}, and a refused request changes no row; a damaged log
 * segment must be refused with an IOException, without a leak.
 *
 * <p>By default (the test run) each target runs on the empty input and on every file under {@code
 * src/test/resources/io/embstore/shard/ShardFuzzTestInputs/<target>/} (seeds and findings, each a
 * regression test); {@code JAZZER_FUZZ=1} fuzzes one target ({@code bench/fuzz.sh}).
 */
class ShardFuzzTest {
  static final long ROWS = 200;
  static final int DIM = 4;
  /** The table version and shard file a fuzzed log segment claims to follow (the seeds were written for it). */
  static final ShardLog.Origin SEED_ORIGIN = new ShardLog.Origin(1, "shard-00000-v000001.arrow", 1000, 0x1234abcd);

  static Path work;
  static BufferAllocator allocator;
  static ShardServer server;
  static FlightClient client;
  static EmbeddingClient checker;
  static long rows;
  static long counter;
  /** The fuzzed fast-lookup streams' channel (opened by the first). */
  static io.grpc.ManagedChannel lookupChannel;

  @BeforeAll
  static void setUp() throws IOException {
    work = Files.createTempDirectory("embstore-shard-fuzz");
    allocator = new RootAllocator();
    Path table = work.resolve("t");
    TestMatrices.write(table, TestMatrices.random(ROWS, DIM, 5), ROWS, DIM, 2, "modulo", allocator);
    server = ShardServer.builder().table(table).optimizer(Optimizer.adam(0.01, 0.9, 0.999, 1e-8)).wal(work.resolve("wal"))
        .walSync("none").maxIdsPerRequest(64).maxMessageBytes(1 << 20).allocator(allocator).start();
    client = FlightClient.builder(allocator, Location.forGrpcInsecure("127.0.0.1", server.port())).build();
    checker = EmbeddingClient.builder().table(table).endpoints(List.of(server.endpoint())).allocator(allocator).build();
    rows = rowsChecksum();
  }

  @AfterAll
  static void tearDown() throws Exception {
    if (lookupChannel != null) {
      lookupChannel.shutdownNow().awaitTermination(5, java.util.concurrent.TimeUnit.SECONDS);
    }
    checker.close();
    client.close();
    server.close();
    allocator.close();
    TableFiles.deleteTree(work);
  }



  static long rowsChecksum() throws IOException {
    long[] ids = LongStream.range(0, ROWS).toArray();
    float[] out = new float[ids.length * DIM];
    checker.lookup(ids, out);
    long h = 1125899906842597L;
    for (float f : out) {
      h = 31 * h + Float.floatToRawIntBits(f);
    }
    return h;
  }

  /** A refusal must name its reason with an explicit status. */
  static void assertExplicit(FlightRuntimeException e) {
    assertThat(e.status().code()).as("status of %s", e.getMessage()).isNotIn(FlightStatusCode.UNKNOWN, FlightStatusCode.INTERNAL);
    assertThat(String.valueOf(e.status().description())).as("message of %s", e.status().code()).startsWith("Cannot");
  }

  @FuzzTest(maxDuration = "10s")
  void exchangeCommand(byte[] data) {
    try {
      Messages.Command.parse(FlightDescriptor.command(data));
    } catch (FlightRuntimeException e) {
      assertThat(e.status().code()).isEqualTo(FlightStatusCode.INVALID_ARGUMENT);
      assertExplicit(e);
    }
  }

  @FuzzTest(maxDuration = "10s")
  void snapshotBody(byte[] data) {
    try {
      Messages.SnapshotRequest r = Messages.SnapshotRequest.parse(data);
      server.confine(r.dir());
    } catch (FlightRuntimeException e) {
      assertThat(e.status().code()).isIn(FlightStatusCode.INVALID_ARGUMENT, FlightStatusCode.UNAUTHORIZED);
      assertExplicit(e);
    }
  }

  @FuzzTest(maxDuration = "10s")
  void updateMetadata(byte[] data) {
    try {
      Messages.learningRate(data, Double.NaN);
    } catch (FlightRuntimeException e) {
      assertThat(e.status().code()).isEqualTo(FlightStatusCode.INVALID_ARGUMENT);
      assertExplicit(e);
    }
  }

  // ------------------------------------------------------------------ request batches through a server

  static Field int64(String name, boolean nullable) {
    return new Field(name, new FieldType(nullable, new ArrowType.Int(64, true), null), null);
  }

  static Field floats(String name, int width, boolean nullable) {
    Field item = new Field("item", new FieldType(nullable, new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE), null), null);
    return new Field(name, new FieldType(nullable, new ArrowType.FixedSizeList(width), null), List.of(item));
  }

  /** Fills a column from the input: int64 ids near the table's range, float32 values of any kind, the odd null. */
  static void fill(FieldVector v, int n, FuzzedDataProvider d) {
    if (v instanceof BigIntVector ids) {
      ids.allocateNew(Math.max(1, n));
      for (int i = 0; i < n; i++) {
        ids.set(i, d.consumeBoolean() ? d.consumeLong(-2, ROWS + 2) : d.consumeLong());
        if (d.consumeInt(0, 40) == 0) {
          ids.setNull(i);
        }
      }
    } else if (v instanceof IntVector ints) {
      ints.allocateNew(Math.max(1, n));
      for (int i = 0; i < n; i++) {
        ints.set(i, d.consumeInt());
      }
    } else if (v instanceof FixedSizeListVector list) {
      int width = list.getListSize();
      list.setInitialCapacity(Math.max(1, n));
      list.allocateNew();
      Float4Vector values = (Float4Vector) list.getDataVector();
      for (int i = 0; i < n; i++) {
        list.setNotNull(i);
        if (d.consumeInt(0, 40) == 0) {
          list.setNull(i);
        }
        for (int c = 0; c < width; c++) {
          values.setSafe(i * width + c, d.consumeBoolean() ? d.consumeFloat() : d.consumeInt(-4, 4) * 0.25f);
          if (d.consumeInt(0, 80) == 0) {
            values.setNull(i * width + c);
          }
        }
      }
      values.setValueCount(n * width);
    }
    v.setValueCount(n);
  }

  @FuzzTest(maxDuration = "10s")
  void requestBatch(FuzzedDataProvider d) throws Exception {
    String op = d.pickValue(new String[] {"lookup", "update", "nearest"});
    String command;
    if (d.consumeInt(0, 10) == 0) {
      command = d.consumeString(60);
    } else {
      StringBuilder c = new StringBuilder("{\"op\":\"" + op + "\",\"shard\":" + d.consumeInt(-1, 2));
      if (d.consumeBoolean()) {
        c.append(",\"lr\":").append(d.pickValue(new String[] {"0.01", "-1", "0", "1e39", "\"x\"", "null"}));
      }
      if (op.equals("nearest") && d.consumeBoolean()) {
        c.append(",\"k\":").append(d.consumeInt(-2, 300)).append(",\"exclude\":").append(d.consumeLong(-2, ROWS));
      }
      command = c.append('}').toString();
    }
    int width = d.pickValue(new int[] {DIM, DIM, DIM, 1, DIM + 1});
    boolean nullable = d.consumeBoolean();
    String idName = d.consumeInt(0, 20) == 0 ? "ids" : "id";
    Field idField = d.consumeInt(0, 20) == 0 ? new Field(idName, FieldType.nullable(new ArrowType.Int(32, true)), null) : int64(idName, nullable);
    List<Field> fields = new ArrayList<>();
    switch (op) {
      case "lookup" -> fields.add(idField);
      case "update" -> {
        fields.add(idField);
        fields.add(floats("grad", width, nullable));
      }
      default -> fields.add(floats("query", width, nullable));
    }
    int n = d.consumeInt(0, 80);
    byte[] metadata = op.equals("update") && d.consumeBoolean() ? d.consumeBytes(30) : null;
    FlightStatusCode code = FlightStatusCode.OK;
    try (VectorSchemaRoot root = VectorSchemaRoot.create(new Schema(fields), allocator)) {
      for (FieldVector v : root.getFieldVectors()) {
        fill(v, n, d);
      }
      root.setRowCount(n);
      try (FlightClient.ExchangeReaderWriter rw = client.doExchange(FlightDescriptor.command(command.getBytes(StandardCharsets.UTF_8)),
          CallOptions.timeout(20, java.util.concurrent.TimeUnit.SECONDS))) {
        rw.getWriter().start(root);
        if (metadata != null) {
          ArrowBuf meta = allocator.buffer(Math.max(1, metadata.length));
          meta.setBytes(0, metadata);
          meta.writerIndex(metadata.length);
          rw.getWriter().putNext(meta);
        } else {
          rw.getWriter().putNext();
        }
        rw.getWriter().completed();
        FlightStream r = rw.getReader();
        while (r.next()) {
          // replies
        }
        rw.getWriter().getResult();
      }
    } catch (FlightRuntimeException e) {
      code = e.status().code();
      if (code != FlightStatusCode.CANCELLED) { // a message over the gRPC limit: reset by gRPC itself
        assertExplicit(e);
      }
    }
    long after = rowsChecksum();
    if (code == FlightStatusCode.OK && op.equals("update")) {
      rows = after;
    } else {
      assertThat(after).as("rows after a %s request answered %s", op, code).isEqualTo(rows);
    }
  }

  /**
   * Raw messages to the fast lookup method ({@code embstore.Shard/Lookup}): up to four requests of
   * fuzzed bytes on one stream, often with a well-formed header. The stream ends OK or with an
   * explicit status whose message starts with "Cannot"; the rows never change and the server
   * answers the next stream.
   */
  @FuzzTest(maxDuration = "10s")
  void fastLookup(FuzzedDataProvider d) throws Exception {
    int messages = d.consumeInt(1, 4);
    List<byte[]> requests = new ArrayList<>();
    for (int i = 0; i < messages; i++) {
      if (d.consumeBoolean()) {
        int n = d.consumeInt(-2, 80);
        int ids = Math.max(0, Math.min(n, d.remainingBytes() / 8));
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + 8 * ids).order(java.nio.ByteOrder.LITTLE_ENDIAN)
            .putInt(d.consumeInt(-1, 2)).putInt(n);
        for (int k = 0; k < ids; k++) {
          b.putLong(d.consumeLong(-2, ROWS + 1));
        }
        requests.add(b.array());
      } else {
        requests.add(d.consumeBytes(d.consumeInt(0, 200)));
      }
    }
    if (lookupChannel == null) {
      lookupChannel = io.grpc.netty.NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    }
    io.grpc.ClientCall<byte[], byte[]> call = lookupChannel.newCall(
        LookupMethod.descriptor(LookupMethod.NAME, FastLookupTest.BYTES, FastLookupTest.BYTES), io.grpc.CallOptions.DEFAULT);
    java.util.concurrent.CompletableFuture<io.grpc.Status> closed = new java.util.concurrent.CompletableFuture<>();
    call.start(new io.grpc.ClientCall.Listener<>() {
      @Override
      public void onClose(io.grpc.Status status, io.grpc.Metadata trailers) {
        closed.complete(status);
      }
    }, new io.grpc.Metadata());
    call.request(Integer.MAX_VALUE);
    for (byte[] r : requests) {
      call.sendMessage(r);
    }
    call.halfClose();
    io.grpc.Status status = closed.get(20, java.util.concurrent.TimeUnit.SECONDS);
    if (!status.isOk()) {
      assertThat(status.getCode()).as("status of %s", status).isNotIn(io.grpc.Status.Code.UNKNOWN, io.grpc.Status.Code.INTERNAL);
      assertThat(String.valueOf(status.getDescription())).as("message of %s", status.getCode()).startsWith("Cannot");
    }
    assertThat(rowsChecksum()).as("rows after a fast lookup stream answered %s", status.getCode()).isEqualTo(rows);
  }

  /**
   * Raw messages to the fast update method ({@code embstore.Shard/Update}): up to four requests of
   * fuzzed bytes on one stream, often with a well-formed header (shard, count, learning rate,
   * reserved word) and ids and gradients of the right or a wrong width. The stream ends OK or with
   * an explicit status whose message starts with "Cannot"; the rows change only when the server
   * answered a request, and the server answers the next stream.
   */
  @FuzzTest(maxDuration = "10s")
  void fastUpdate(FuzzedDataProvider d) throws Exception {
    int messages = d.consumeInt(1, 4);
    List<byte[]> requests = new ArrayList<>();
    for (int i = 0; i < messages; i++) {
      if (d.consumeBoolean()) {
        int n = d.consumeInt(-2, 40);
        int ids = Math.max(0, Math.min(n, d.remainingBytes() / 8));
        int values = d.consumeBoolean() ? ids * DIM : d.consumeInt(0, 200);
        float lr = d.pickValue(new Float[] {0.1f, Float.NaN, 0f, -1f, Float.POSITIVE_INFINITY, 1e30f});
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(16 + 8 * ids + 4 * values).order(java.nio.ByteOrder.LITTLE_ENDIAN)
            .putInt(d.consumeInt(-1, 2)).putInt(n).putFloat(lr).putInt(d.consumeBoolean() ? 0 : d.consumeInt());
        for (int k = 0; k < ids; k++) {
          b.putLong(d.consumeLong(-2, ROWS + 1));
        }
        for (int k = 0; k < values; k++) {
          b.putFloat(d.consumeBoolean() ? d.consumeInt(-8, 8) / 8f : d.consumeFloat());
        }
        requests.add(b.array());
      } else {
        requests.add(d.consumeBytes(d.consumeInt(0, 200)));
      }
    }
    if (lookupChannel == null) {
      lookupChannel = io.grpc.netty.NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    }
    io.grpc.ClientCall<byte[], byte[]> call = lookupChannel.newCall(
        LookupMethod.descriptor(UpdateMethod.NAME, FastLookupTest.BYTES, FastLookupTest.BYTES), io.grpc.CallOptions.DEFAULT);
    java.util.concurrent.CompletableFuture<io.grpc.Status> closed = new java.util.concurrent.CompletableFuture<>();
    java.util.concurrent.atomic.AtomicInteger answered = new java.util.concurrent.atomic.AtomicInteger();
    call.start(new io.grpc.ClientCall.Listener<>() {
      @Override
      public void onMessage(byte[] reply) {
        answered.incrementAndGet();
      }

      @Override
      public void onClose(io.grpc.Status status, io.grpc.Metadata trailers) {
        closed.complete(status);
      }
    }, new io.grpc.Metadata());
    call.request(Integer.MAX_VALUE);
    for (byte[] r : requests) {
      call.sendMessage(r);
    }
    call.halfClose();
    io.grpc.Status status = closed.get(20, java.util.concurrent.TimeUnit.SECONDS);
    if (!status.isOk()) {
      assertThat(status.getCode()).as("status of %s", status).isNotIn(io.grpc.Status.Code.UNKNOWN, io.grpc.Status.Code.INTERNAL);
      assertThat(String.valueOf(status.getDescription())).as("message of %s", status.getCode()).startsWith("Cannot");
    }
    long after = rowsChecksum();
    if (answered.get() == 0) {
      assertThat(after).as("rows after a fast update stream answered %s with no reply", status.getCode()).isEqualTo(rows);
    }
    rows = after;
  }

  @FuzzTest(maxDuration = "10s")
  void action(FuzzedDataProvider d) {
    String type = d.pickValue(new String[] {"health", "describe", "stats", "snapshot", "drop"});
    byte[] body = d.consumeRemainingAsBytes();
    try {
      var it = client.doAction(new Action(type, body));
      while (it.hasNext()) {
        it.next().getBody();
      }
    } catch (FlightRuntimeException e) {
      assertExplicit(e);
    }
  }

  // ------------------------------------------------------------------ the write-ahead log's reader

  @FuzzTest(maxDuration = "10s")
  void walSegment(byte[] data) throws IOException {
    Path dir = work.resolve("wal-fuzz-" + (counter++));
    Path shardDir = Files.createDirectories(ShardLog.shardDir(dir, 0));
    Files.write(shardDir.resolve("wal-00000000000000000000.log"), data);
    try (BufferAllocator a = new RootAllocator()) {
      try (ShardLog log = ShardLog.open(dir, 0, 100, DIM, Optimizer.sgd(0.1), SEED_ORIGIN, ShardLog.Sync.NONE, io.embstore.format.TableStorage.defaults(), a,
          (seq, ids, grads, n, lr, base) -> {
            for (int i = 0; i < n; i++) {
              long id = MemoryUtil.getLong(ids + 8L * i);
              if (id < 0 || id >= 100) {
                throw new IOException("update " + seq + " names id " + id);
              }
              base.reflects(id, seq);
              MemoryUtil.getInt(grads + 4L * (i * DIM + DIM - 1));
            }
          })) {
        log.nextSeq();
      } catch (IOException expected) {
        // refused naming the file
      }
    } finally {
      TableFiles.deleteTree(dir);
    }
  }
}
