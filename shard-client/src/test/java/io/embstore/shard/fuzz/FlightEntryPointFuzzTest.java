package io.embstore.shard.fuzz;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.embstore.format.TestMatrices;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.ShardServer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.Criteria;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.Result;
import org.apache.arrow.flight.SyncPutListener;
import org.apache.arrow.flight.Ticket;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
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
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Seeded, bounded fuzzing of every Flight entry point of a shard server through a raw {@link
 * FlightClient} (not the EmbeddingClient, which would refuse to send most of this): random and
 * mutated tickets, descriptors, commands, action types and bodies, exchange batches with the wrong
 * schema, the wrong C, negative or too large ids, NaN and infinite gradients, bad learning rates,
 * empty and over-limit requests. For every request: an explicit status (never UNKNOWN or INTERNAL),
 * the server still answers {@code health}, and when the request was rejected no row changed
 * (checksum of every row before and after).
 */
class FlightEntryPointFuzzTest {
  static final long ROWS = 500;
  static final int DIM = 8;
  static final int SHARDS = 2;
  static final int MAX_IDS = 1000;
  static final int ITERATIONS = 2000;

  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardServer server;
  FlightClient client;
  EmbeddingClient checker;
  org.apache.arrow.flight.CallOption timeout = CallOptions.timeout(20, TimeUnit.SECONDS);

  @BeforeEach
  void setUp() throws Exception {
    allocator = new RootAllocator();
    Path dir = tmp.resolve("t");
    TestMatrices.write(dir, TestMatrices.random(ROWS, DIM, 3), ROWS, DIM, SHARDS, "modulo", allocator);
    server = ShardServer.builder().table(dir).allocator(allocator).maxIdsPerRequest(MAX_IDS).maxMessageBytes(1 << 20).start();
    client = FlightClient.builder(allocator, new Location(server.endpoint())).build();
    checker = EmbeddingClient.builder().table(dir).endpoints(List.of(server.endpoint())).allocator(allocator).build();
  }

  @AfterEach
  void tearDown() throws Exception {
    try {
      checker.close();
      client.close();
      server.close();
    } finally {
      allocator.close();
    }
  }

  /** What happened to one request. */
  record Outcome(FlightStatusCode code, String message) {
    boolean ok() {
      return code == FlightStatusCode.OK;
    }
  }

  @Test
  void everyEntryPointAnswersFuzzedRequestsWithAnExplicitStatusAndKeepsServing() {
    assertTimeoutPreemptively(Duration.ofMinutes(8), this::fuzz);
  }

  private void fuzz() throws Exception {
    SplittableRandom random = new SplittableRandom(0xE5B5702EL);
    Map<FlightStatusCode, Integer> codes = new EnumMap<>(FlightStatusCode.class);
    Map<String, String> findings = new LinkedHashMap<>();
    long before = rowsChecksum();
    int updatesApplied = 0;
    for (int i = 0; i < ITERATIONS; i++) {
      int kind = random.nextInt(10);
      String what;
      Outcome o;
      switch (kind) {
        case 0 -> {
          String type = randomActionType(random);
          byte[] body = randomBody(random);
          what = "doAction " + printable(type) + " body " + printable(new String(body, StandardCharsets.UTF_8));
          o = action(type, body);
        }
        case 1 -> {
          byte[] t = randomBytes(random, 64);
          what = "doGet ticket of " + t.length + " bytes";
          o = call(() -> drain(client.getStream(new Ticket(t), timeout)));
        }
        case 2 -> {
          FlightDescriptor d = randomDescriptor(random);
          what = (random.nextBoolean() ? "getFlightInfo " : "getSchema ") + d;
          o = random.nextBoolean() ? call(() -> client.getInfo(d, timeout)) : call(() -> client.getSchema(d, timeout));
        }
        case 3 -> {
          what = "listFlights / listActions";
          o = random.nextBoolean()
              ? call(() -> client.listFlights(new Criteria(randomBytes(random, 16)), timeout).forEach(f -> {}))
              : call(() -> client.listActions(timeout).forEach(a -> {}));
        }
        case 4 -> {
          FlightDescriptor d = randomDescriptor(random);
          Batch b = randomBatch(random);
          what = "doPut " + d + " with " + b;
          o = put(d, b);
        }
        default -> {
          // Exchanges are the data path: most of the budget goes here.
          Cmd c = randomCommand(random);
          Batch b = c.op.equals("update") ? updateBatch(random) : c.op.equals("nearest") ? nearestBatch(random) : lookupBatch(random);
          if (random.nextInt(8) == 0) {
            b = randomBatch(random);
          }
          what = "doExchange " + c.json + " with " + b;
          o = exchange(c, b, random.nextInt(6) == 0 ? randomBytes(random, 24) : null);
        }
      }
      codes.merge(o.code(), 1, Integer::sum);
      if (o.code() == FlightStatusCode.UNKNOWN || o.code() == FlightStatusCode.INTERNAL) {
        findings.putIfAbsent(o.code() + ": " + o.message().lines().findFirst().orElse(""), what);
      }
      Outcome health = action("health", new byte[0]);
      assertThat(health.ok()).as("server health after request %d (%s): %s", i, what, health).isTrue();
      long after = rowsChecksum();
      if (after != before) {
        if (o.ok() && what.startsWith("doExchange {\"op\":\"update\"")) {
          updatesApplied++;
        } else {
          findings.putIfAbsent("rows changed by a " + (o.ok() ? "successful non-update" : "rejected (" + o.code() + ")") + " request", what);
        }
        before = after;
      }
    }
    System.out.printf("flight fuzz: %d requests, status codes %s, %d accepted updates changed rows%n", ITERATIONS, codes, updatesApplied);
    findings.forEach((k, v) -> System.out.println("  finding: " + k + " -- e.g. " + v));
    assertThat(findings).as("requests answered UNKNOWN/INTERNAL, or rows changed by a rejected request").isEmpty();
    assertThat(codes).as("the fuzzer reached rejections of several kinds").containsKeys(
        FlightStatusCode.INVALID_ARGUMENT, FlightStatusCode.NOT_FOUND, FlightStatusCode.RESOURCE_EXHAUSTED, FlightStatusCode.UNIMPLEMENTED);
  }

  @Test
  void targetedBadRequestsGetTheirStatusCodeAndChangeNothing() throws Exception {
    long before = rowsChecksum();
    Object[][] cases = {
      {new Cmd("lookup", "{\"op\":\"lookup\",\"shard\":0}"), idBatch(new long[] {-2}), FlightStatusCode.INVALID_ARGUMENT},
      {new Cmd("lookup", "{\"op\":\"lookup\",\"shard\":0}"), idBatch(new long[] {ROWS + 10}), FlightStatusCode.INVALID_ARGUMENT},
      {new Cmd("lookup", "{\"op\":\"lookup\",\"shard\":0}"), idBatch(new long[] {1}), FlightStatusCode.INVALID_ARGUMENT}, // id 1 is shard 1's
      {new Cmd("lookup", "{\"op\":\"lookup\",\"shard\":7}"), idBatch(new long[] {0}), FlightStatusCode.NOT_FOUND},
      {new Cmd("lookup", "{\"op\":\"lookup\",\"shard\":0}"), idBatch(new long[MAX_IDS + 1]), FlightStatusCode.RESOURCE_EXHAUSTED},
      {new Cmd("update", "{\"op\":\"update\",\"shard\":0}"), gradBatch(new long[] {0, 2}, DIM, Float.NaN), FlightStatusCode.INVALID_ARGUMENT},
      {new Cmd("update", "{\"op\":\"update\",\"shard\":0}"), gradBatch(new long[] {0, 2}, DIM, Float.POSITIVE_INFINITY), FlightStatusCode.INVALID_ARGUMENT},
      {new Cmd("update", "{\"op\":\"update\",\"shard\":0}"), gradBatch(new long[] {0, 2}, DIM + 1, 0.5f), FlightStatusCode.INVALID_ARGUMENT},
      {new Cmd("update", "{\"op\":\"update\",\"shard\":0,\"lr\":-1}"), gradBatch(new long[] {0}, DIM, 0.5f), FlightStatusCode.INVALID_ARGUMENT},
      {new Cmd("update", "{\"op\":\"update\",\"shard\":0}"), gradBatch(new long[] {0, -4}, DIM, 0.5f), FlightStatusCode.INVALID_ARGUMENT},
      {new Cmd("nearest", "{\"op\":\"nearest\",\"shard\":0,\"k\":0}"), queryBatch(DIM, 1f), FlightStatusCode.INVALID_ARGUMENT},
      {new Cmd("nearest", "{\"op\":\"nearest\",\"shard\":0}"), queryBatch(DIM, 0f), FlightStatusCode.INVALID_ARGUMENT},
      {new Cmd("lookup", "{\"op\":\"drop\",\"shard\":0}"), idBatch(new long[] {0}), FlightStatusCode.INVALID_ARGUMENT},
      {new Cmd("lookup", "not json"), idBatch(new long[] {0}), FlightStatusCode.INVALID_ARGUMENT},
    };
    for (Object[] c : cases) {
      Outcome o = exchange((Cmd) c[0], (Batch) c[1], null);
      assertThat(o.code()).as("%s with %s: %s", ((Cmd) c[0]).json, c[1], o.message()).isEqualTo(c[2]);
      assertThat(o.message()).as("message of %s", ((Cmd) c[0]).json).startsWith("Cannot");
      assertThat(rowsChecksum()).as("rows after %s with %s", ((Cmd) c[0]).json, c[1]).isEqualTo(before);
    }
    // A request larger than the server's message limit (1 MiB here): refused, server fine.
    Outcome big = exchange(new Cmd("lookup", "{\"op\":\"lookup\",\"shard\":0}"), idBatch(new long[300_000]), null);
    // gRPC rejects it server-side with RESOURCE_EXHAUSTED ("gRPC message exceeds maximum size") and
    // resets the stream, so the client sees CANCELLED: explicit, but not the limit's own code.
    assertThat(big.code()).as(big.message()).isIn(FlightStatusCode.RESOURCE_EXHAUSTED, FlightStatusCode.CANCELLED);
    assertThat(action("health", new byte[0]).ok()).isTrue();
    assertThat(rowsChecksum()).isEqualTo(before);
  }

  // ------------------------------------------------------------------ requests

  interface Call {
    void run() throws Exception;
  }

  private Outcome call(Call c) {
    try {
      c.run();
      return new Outcome(FlightStatusCode.OK, "");
    } catch (FlightRuntimeException e) {
      return new Outcome(e.status().code(), String.valueOf(e.status().description()));
    } catch (Exception e) {
      return new Outcome(FlightStatusCode.UNKNOWN, "client-side " + e);
    }
  }

  private Outcome action(String type, byte[] body) {
    return call(() -> {
      var it = client.doAction(new Action(type, body), timeout);
      while (it.hasNext()) {
        Result r = it.next();
        r.getBody();
      }
    });
  }

  private static void drain(FlightStream s) throws Exception {
    try (s) {
      while (s.next()) {
        // read everything
      }
    }
  }

  private Outcome put(FlightDescriptor d, Batch b) {
    return call(() -> {
      try (VectorSchemaRoot root = b.build(allocator)) {
        SyncPutListener l = new SyncPutListener();
        FlightClient.ClientStreamListener w = client.startPut(d, root, l, timeout);
        w.putNext();
        w.completed();
        w.getResult();
        l.close();
      }
    });
  }

  record Cmd(String op, String json) {}

  private Outcome exchange(Cmd c, Batch b, byte[] appMetadata) {
    return call(() -> {
      FlightDescriptor d = FlightDescriptor.command(c.json.getBytes(StandardCharsets.UTF_8));
      try (VectorSchemaRoot root = b.build(allocator);
          FlightClient.ExchangeReaderWriter rw = client.doExchange(d, timeout)) {
        rw.getWriter().start(root);
        if (appMetadata != null) {
          ArrowBuf meta = allocator.buffer(appMetadata.length);
          meta.setBytes(0, appMetadata);
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
    });
  }

  // ------------------------------------------------------------------ checksums

  private long rowsChecksum() throws Exception {
    long[] ids = new long[(int) ROWS];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = i;
    }
    float[] out = new float[ids.length * DIM];
    checker.lookup(ids, out);
    long h = 1125899906842597L;
    for (float f : out) {
      h = 31 * h + Float.floatToRawIntBits(f);
    }
    return h;
  }

  // ------------------------------------------------------------------ generators

  /** A record batch to send, built on demand (so it is closed after each request). */
  interface Batch {
    VectorSchemaRoot build(BufferAllocator allocator);
  }

  static Batch idBatch(long[] ids) {
    return named("ids" + abbreviate(ids), a -> {
      VectorSchemaRoot r = VectorSchemaRoot.create(new Schema(List.of(int64("id"))), a);
      BigIntVector v = (BigIntVector) r.getVector(0);
      v.allocateNew(Math.max(1, ids.length));
      for (int i = 0; i < ids.length; i++) {
        v.set(i, ids[i]);
      }
      r.setRowCount(ids.length);
      return r;
    });
  }

  static Batch gradBatch(long[] ids, int width, float value) {
    return named("grads C=" + width + " value " + value + " ids" + abbreviate(ids), a -> {
      VectorSchemaRoot r = VectorSchemaRoot.create(new Schema(List.of(int64("id"), floatList("grad", width))), a);
      BigIntVector v = (BigIntVector) r.getVector(0);
      v.allocateNew(Math.max(1, ids.length));
      FixedSizeListVector list = (FixedSizeListVector) r.getVector(1);
      list.setInitialCapacity(Math.max(1, ids.length));
      list.allocateNew();
      Float4Vector data = (Float4Vector) list.getDataVector();
      for (int i = 0; i < ids.length; i++) {
        v.set(i, ids[i]);
        list.setNotNull(i);
        for (int c = 0; c < width; c++) {
          data.setSafe(i * width + c, c == width - 1 ? value : 0.01f);
        }
      }
      data.setValueCount(ids.length * width);
      r.setRowCount(ids.length);
      return r;
    });
  }

  static Batch queryBatch(int width, float value) {
    return named("query C=" + width + " value " + value, a -> {
      VectorSchemaRoot r = VectorSchemaRoot.create(new Schema(List.of(floatList("query", width))), a);
      FixedSizeListVector list = (FixedSizeListVector) r.getVector(0);
      list.setInitialCapacity(1);
      list.allocateNew();
      list.setNotNull(0);
      Float4Vector data = (Float4Vector) list.getDataVector();
      for (int c = 0; c < width; c++) {
        data.setSafe(c, value);
      }
      data.setValueCount(width);
      r.setRowCount(1);
      return r;
    });
  }

  private Batch lookupBatch(SplittableRandom random) {
    return idBatch(randomIds(random));
  }

  private Batch updateBatch(SplittableRandom random) {
    float[] values = {0.01f, -0.5f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 1e30f, Float.MIN_VALUE, 0f};
    int width = random.nextInt(6) == 0 ? DIM + random.nextInt(-DIM + 1, DIM) : DIM;
    return gradBatch(randomIds(random), Math.max(1, width), values[random.nextInt(values.length)]);
  }

  private Batch nearestBatch(SplittableRandom random) {
    float[] values = {1f, 0f, Float.NaN, -2f, Float.POSITIVE_INFINITY};
    int width = random.nextInt(5) == 0 ? 1 + random.nextInt(2 * DIM) : DIM;
    return queryBatch(width, values[random.nextInt(values.length)]);
  }

  private long[] randomIds(SplittableRandom random) {
    int n;
    switch (random.nextInt(8)) {
      case 0 -> n = 0;
      case 1 -> n = MAX_IDS + 1 + random.nextInt(2000);
      default -> n = 1 + random.nextInt(40);
    }
    long[] ids = new long[n];
    int style = random.nextInt(6);
    for (int i = 0; i < n; i++) {
      long id = random.nextLong(ROWS);
      if (style == 0 && i == n - 1) {
        long[] bad = {-1, Long.MIN_VALUE, ROWS, ROWS + 1, Long.MAX_VALUE, -ROWS};
        id = bad[random.nextInt(bad.length)];
      }
      ids[i] = id;
    }
    return ids;
  }

  private Batch randomBatch(SplittableRandom random) {
    int shape = random.nextInt(6);
    return switch (shape) {
      case 0 -> named("no columns", a -> {
        VectorSchemaRoot r = VectorSchemaRoot.create(new Schema(List.of()), a);
        r.setRowCount(0);
        return r;
      });
      case 1 -> named("ids as int32", a -> {
        VectorSchemaRoot r = VectorSchemaRoot.create(new Schema(List.of(new Field("id", FieldType.notNullable(new ArrowType.Int(32, true)), null))), a);
        IntVector v = (IntVector) r.getVector(0);
        v.allocateNew(3);
        v.set(0, 1);
        v.set(1, -1);
        v.set(2, 7);
        r.setRowCount(3);
        return r;
      });
      case 2 -> named("ids named 'x'", a -> {
        VectorSchemaRoot r = VectorSchemaRoot.create(new Schema(List.of(int64("x"))), a);
        ((BigIntVector) r.getVector(0)).allocateNew(1);
        ((BigIntVector) r.getVector(0)).set(0, 0);
        r.setRowCount(1);
        return r;
      });
      case 3 -> named("ids and an extra float column", a -> {
        VectorSchemaRoot r = VectorSchemaRoot.create(
            new Schema(List.of(int64("id"), new Field("extra", FieldType.nullable(new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE)), null))), a);
        ((BigIntVector) r.getVector(0)).allocateNew(1);
        ((BigIntVector) r.getVector(0)).set(0, 0);
        for (FieldVector v : r.getFieldVectors()) {
          v.setValueCount(1);
        }
        r.setRowCount(1);
        return r;
      });
      case 4 -> gradBatch(new long[] {0, 2, 4}, 1 + random.nextInt(3 * DIM), Float.NaN);
      default -> queryBatch(1 + random.nextInt(3 * DIM), 1f);
    };
  }

  private Cmd randomCommand(SplittableRandom random) {
    String[] ops = {"lookup", "update", "nearest"};
    String op = ops[random.nextInt(ops.length)];
    StringBuilder json = new StringBuilder("{\"op\":\"").append(op).append("\",\"shard\":");
    String[] shards = {"0", "1", "-1", "2", "2147483647", "99999999999", "\"0\"", "0.5", "null"};
    json.append(random.nextInt(4) == 0 ? shards[random.nextInt(shards.length)] : Integer.toString(random.nextInt(SHARDS)));
    if (op.equals("update") && random.nextBoolean()) {
      String[] lrs = {"0.1", "-1", "0", "1e39", "\"x\"", "null", "1e-45"};
      json.append(",\"lr\":").append(lrs[random.nextInt(lrs.length)]);
    }
    if (op.equals("nearest") && random.nextBoolean()) {
      String[] ks = {"1", "5", "0", "-3", "2147483647", "1001", "\"k\""};
      json.append(",\"k\":").append(ks[random.nextInt(ks.length)]);
    }
    json.append('}');
    String text = json.toString();
    if (random.nextInt(5) == 0) {
      byte[] b = text.getBytes(StandardCharsets.UTF_8);
      b[random.nextInt(b.length)] = (byte) random.nextInt(256);
      text = new String(b, StandardCharsets.UTF_8);
    }
    return new Cmd(op, text);
  }

  private FlightDescriptor randomDescriptor(SplittableRandom random) {
    return switch (random.nextInt(3)) {
      case 0 -> FlightDescriptor.path("shard", Integer.toString(random.nextInt(-2, 5)));
      case 1 -> FlightDescriptor.command(randomBytes(random, 80));
      default -> FlightDescriptor.command(randomCommand(random).json.getBytes(StandardCharsets.UTF_8));
    };
  }

  private static String randomActionType(SplittableRandom random) {
    String[] known = {"health", "describe", "stats", "snapshot", "", "HEALTH", "snapshot ", "drop", "\u0000"};
    if (random.nextInt(4) == 0) {
      return new String(randomBytes(random, 12), StandardCharsets.UTF_8);
    }
    return known[random.nextInt(known.length)];
  }

  private byte[] randomBody(SplittableRandom random) {
    String snapDir = tmp.resolve("snap-" + random.nextInt(3)).toString();
    String[] bodies = {
      "", "{}", "null", "[]", "{\"dir\":\"" + snapDir + "\"}", "{\"dir\":\"" + snapDir + "\",\"version\":-1}",
      "{\"dir\":\"" + snapDir + "\",\"version\":\"2\"}", "{\"dir\":\"" + snapDir + "\",\"version\":2,\"shards\":[7,-1]}",
      "{\"dir\":\"" + snapDir + "\",\"version\":2,\"shards\":\"all\"}", "{\"dir\":\"/proc/1\",\"version\":2}",
    };
    byte[] b = (random.nextInt(4) == 0 ? new String(randomBytes(random, 40), StandardCharsets.ISO_8859_1) : bodies[random.nextInt(bodies.length)])
        .getBytes(StandardCharsets.UTF_8);
    if (b.length > 0 && random.nextInt(4) == 0) {
      b[random.nextInt(b.length)] ^= (byte) (1 << random.nextInt(8));
    }
    return b;
  }

  private static byte[] randomBytes(SplittableRandom random, int max) {
    byte[] b = new byte[random.nextInt(max + 1)];
    for (int i = 0; i < b.length; i++) {
      b[i] = (byte) random.nextInt(256);
    }
    return b;
  }

  static Field int64(String name) {
    return new Field(name, FieldType.notNullable(new ArrowType.Int(64, true)), null);
  }

  static Field floatList(String name, int width) {
    Field item = new Field("item", FieldType.notNullable(new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE)), null);
    return new Field(name, FieldType.notNullable(new ArrowType.FixedSizeList(width)), List.of(item));
  }

  static Batch named(String name, java.util.function.Function<BufferAllocator, VectorSchemaRoot> f) {
    return new Batch() {
      @Override
      public VectorSchemaRoot build(BufferAllocator allocator) {
        return f.apply(allocator);
      }

      @Override
      public String toString() {
        return name;
      }
    };
  }

  static String abbreviate(long[] ids) {
    return ids.length <= 6 ? Arrays.toString(ids) : "[" + ids.length + " ids, last " + ids[ids.length - 1] + "]";
  }

  static String printable(String s) {
    StringBuilder b = new StringBuilder("'");
    for (char c : s.toCharArray()) {
      b.append(c >= 32 && c < 127 ? String.valueOf(c) : String.format("\\u%04x", (int) c));
    }
    return b.append("'").toString();
  }

  @SuppressWarnings("unused")
  private static List<String> unused() {
    return new ArrayList<>();
  }
}
