package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.CallOption;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.auth2.BearerCredentialWriter;
import org.apache.arrow.flight.grpc.CredentialCallOption;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.types.pojo.Schema;
import org.assertj.core.api.ThrowableAssert;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every bad request gets its status code and a message naming the value, and changes no row: the
 * server is called with a plain Flight client (as a client in another language would), and the
 * whole table is read back afterwards.
 */
class BadInputTest {
  static final long V = 1000;
  static final int C = 4;
  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardFixture fx;
  FlightClient raw;

  @BeforeEach
  void open() throws IOException {
    allocator = new RootAllocator();
    fx = new ShardFixture(tmp.resolve("t"), V, C, 4, "modulo", allocator);
  }

  @AfterEach
  void close() throws Exception {
    if (raw != null) {
      raw.close();
    }
    fx.close();
    allocator.close();
  }

  private ShardServer startEvenShards(ShardServer.Builder b) throws IOException {
    ShardServer s = fx.start(b.table(fx.dir).shards(0, 2).allocator(allocator));
    raw = FlightClient.builder(allocator, Location.forGrpcInsecure("127.0.0.1", s.port())).build();
    return s;
  }

  private void exchange(String command, Schema schema, Consumer<VectorSchemaRoot> fill, CallOption... opts) throws Exception {
    try (VectorSchemaRoot req = VectorSchemaRoot.create(schema, allocator);
        FlightClient.ExchangeReaderWriter rw =
            raw.doExchange(FlightDescriptor.command(command.getBytes(StandardCharsets.UTF_8)), opts)) {
      fill.accept(req);
      rw.getWriter().start(req);
      rw.getWriter().putNext();
      rw.getWriter().completed();
      while (rw.getReader().next()) {
        // drain
      }
    }
  }

  private static Consumer<VectorSchemaRoot> ids(long... ids) {
    return root -> {
      BigIntVector v = (BigIntVector) root.getVector(0);
      v.allocateNew(ids.length);
      for (int i = 0; i < ids.length; i++) {
        v.set(i, ids[i]);
      }
      root.setRowCount(ids.length);
    };
  }

  private static Consumer<VectorSchemaRoot> grads(long[] ids, float[] grads) {
    return root -> {
      BigIntVector v = (BigIntVector) root.getVector(0);
      v.allocateNew(ids.length);
      for (int i = 0; i < ids.length; i++) {
        v.set(i, ids[i]);
      }
      v.setValueCount(ids.length);
      ArrowBuf data = Vectors.allocateRows((FixedSizeListVector) root.getVector(1), ids.length);
      for (int i = 0; i < grads.length; i++) {
        data.setFloat(4L * i, grads[i]);
      }
      root.setRowCount(ids.length);
    };
  }

  private static void assertStatus(ThrowableAssert.ThrowingCallable call, FlightStatusCode code, String message) {
    assertThatThrownBy(call)
        .isInstanceOf(FlightRuntimeException.class)
        .satisfies(e -> assertThat(((FlightRuntimeException) e).status().code()).isEqualTo(code))
        .hasMessageContaining(message);
  }

  /** Reads every hosted row (shards 0 and 2) straight from the server and compares with the table. */
  private void assertNoRowChanged(CallOption... opts) throws Exception {
    long[] all = java.util.stream.LongStream.range(0, V).filter(id -> id % 2 == 0).toArray();
    for (int shard : new int[] {0, 2}) {
      long[] mine = java.util.Arrays.stream(all).filter(id -> id % 4 == shard).toArray();
      // Batches of 10 ids on one stream (the smallest maxIdsPerRequest used here): one reply each.
      try (VectorSchemaRoot req = VectorSchemaRoot.create(Protocol.lookupRequest(), allocator);
          FlightClient.ExchangeReaderWriter rw = raw.doExchange(Messages.Command.lookup(shard).descriptor(), opts)) {
        rw.getWriter().start(req);
        for (int from = 0; from < mine.length; from += 10) {
          ids(java.util.Arrays.copyOfRange(mine, from, Math.min(mine.length, from + 10))).accept(req);
          rw.getWriter().putNext();
        }
        rw.getWriter().completed();
        for (int from = 0; from < mine.length; from += 10) {
          assertThat(rw.getReader().next()).isTrue();
          FixedSizeListVector list = (FixedSizeListVector) rw.getReader().getRoot().getVector(0);
          ArrowBuf data = list.getDataVector().getDataBuffer();
          for (int i = from; i < Math.min(mine.length, from + 10); i++) {
            for (int c = 0; c < C; c++) {
              assertThat(data.getFloat(4L * ((i - from) * C + c))).isEqualTo(fx.matrix[(int) (mine[i] * C + c)]);
            }
          }
        }
        assertThat(rw.getReader().next()).isFalse();
      }
    }
  }

  @Test
  void lookupOfAnIdOutsideTheTableIsInvalidArgument() throws Exception {
    startEvenShards(ShardServer.builder());
    assertStatus(() -> exchange("{\"op\":\"lookup\",\"shard\":0}", Protocol.lookupRequest(), ids(4, 1000)),
        FlightStatusCode.INVALID_ARGUMENT,
        "Cannot look up id 1000: outside [0, 1000) (request row 1, shard 0 of 4 (ids 0..996 with id mod 4 = 0))");
    assertStatus(() -> exchange("{\"op\":\"lookup\",\"shard\":0}", Protocol.lookupRequest(), ids(-3)),
        FlightStatusCode.INVALID_ARGUMENT, "Cannot look up id -3: outside [0, 1000)");
    assertNoRowChanged();
  }

  @Test
  void lookupOfAnIdOfAnotherShardIsInvalidArgument() throws Exception {
    startEvenShards(ShardServer.builder());
    assertStatus(() -> exchange("{\"op\":\"lookup\",\"shard\":2}", Protocol.lookupRequest(), ids(2, 6, 7)),
        FlightStatusCode.INVALID_ARGUMENT,
        "Cannot look up id 7: not owned by shard 2 of 4 (ids 2..998 with id mod 4 = 2) (request row 2; it belongs to shard 3)");
  }

  @Test
  void aShardTheServerDoesNotHostIsNotFound() throws Exception {
    startEvenShards(ShardServer.builder());
    assertStatus(() -> exchange("{\"op\":\"lookup\",\"shard\":1}", Protocol.lookupRequest(), ids(1)),
        FlightStatusCode.NOT_FOUND, "Cannot look up ids on shard 1: not hosted by this server (hosts [0, 2] of 4)");
  }

  @Test
  void malformedCommandsAndSchemasAreInvalidArgument() throws Exception {
    startEvenShards(ShardServer.builder());
    assertStatus(() -> exchange("{\"op\":\"delete\",\"shard\":0}", Protocol.lookupRequest(), ids(0)),
        FlightStatusCode.INVALID_ARGUMENT, "Cannot run exchange: unknown op 'delete' (known: lookup, update, nearest)");
    assertStatus(() -> exchange("lookup 0", Protocol.lookupRequest(), ids(0)),
        FlightStatusCode.INVALID_ARGUMENT, "Cannot run exchange: command is not JSON: 'lookup 0'");
    assertStatus(() -> exchange("{\"op\":\"update\",\"shard\":0}", Protocol.lookupRequest(), ids(0)),
        FlightStatusCode.INVALID_ARGUMENT, "Cannot update: request schema is Schema<id: Int(64, true) not null>, expected Schema<id: Int(64, true) not null, grad: FixedSizeList(4)");
    assertStatus(() -> exchange("{\"op\":\"update\",\"shard\":0}", Protocol.updateRequest(3), r -> r.setRowCount(0)),
        FlightStatusCode.INVALID_ARGUMENT, "expected Schema<id: Int(64, true) not null, grad: FixedSizeList(4)");
    assertStatus(() -> raw.doAction(new Action("drop")).next(),
        FlightStatusCode.INVALID_ARGUMENT, "Cannot run action 'drop': unknown (known: health, describe, stats, snapshot)");
    assertNoRowChanged();
  }

  @Test
  void nonFiniteGradientsAndBadIdsInAnUpdateApplyNothing() throws Exception {
    startEvenShards(ShardServer.builder());
    float[] g = new float[3 * C];
    java.util.Arrays.fill(g, 0.5f);
    g[2 * C + 1] = Float.NaN;
    assertStatus(() -> exchange("{\"op\":\"update\",\"shard\":0}", Protocol.updateRequest(C), grads(new long[] {0, 4, 8}, g)),
        FlightStatusCode.INVALID_ARGUMENT,
        "Cannot update id 8: gradient value 1 is NaN (gradients must be finite; nothing was applied)");
    g[2 * C + 1] = Float.POSITIVE_INFINITY;
    assertStatus(() -> exchange("{\"op\":\"update\",\"shard\":0}", Protocol.updateRequest(C), grads(new long[] {0, 4, 8}, g)),
        FlightStatusCode.INVALID_ARGUMENT, "gradient value 1 is Infinity");
    g[2 * C + 1] = 1;
    assertStatus(() -> exchange("{\"op\":\"update\",\"shard\":0}", Protocol.updateRequest(C), grads(new long[] {0, 4, 9}, g)),
        FlightStatusCode.INVALID_ARGUMENT, "Cannot update id 9: not owned by shard 0 of 4");
    assertStatus(() -> exchange("{\"op\":\"update\",\"shard\":0,\"lr\":-1}", Protocol.updateRequest(C), grads(new long[] {0, 4, 8}, g)),
        FlightStatusCode.INVALID_ARGUMENT, "Cannot update: learning rate -1.0 (must be a positive finite number)");
    assertNoRowChanged();
  }

  @Test
  void tooManyIdsOrTooLargeAMessageIsResourceExhausted() throws Exception {
    startEvenShards(ShardServer.builder().maxIdsPerRequest(10).maxMessageBytes(64 * 1024));
    assertStatus(() -> exchange("{\"op\":\"lookup\",\"shard\":0}", Protocol.lookupRequest(), ids(new long[11])),
        FlightStatusCode.RESOURCE_EXHAUSTED, "Cannot look up 11 ids: more than 10 per request (maxIdsPerRequest; split the request)");
    long[] many = new long[20_000]; // 160 KB of ids > 64 KiB
    // gRPC itself rejects a message over the limit before the handler sees it; grpc-java resets the
    // stream, so a raw client reads CANCELLED (see docs/protocol.md), or INTERNAL when the reset races
    // the client's writes (grpc-java issue 11245: a message after the first of a bidirectional
    // stream); nothing is allocated for it, and the checks below show the server kept serving.
    assertThatThrownBy(() -> exchange("{\"op\":\"lookup\",\"shard\":0}", Protocol.lookupRequest(), ids(many)))
        .isInstanceOf(FlightRuntimeException.class)
        .satisfies(e -> assertThat(((FlightRuntimeException) e).status().code())
            .isIn(FlightStatusCode.RESOURCE_EXHAUSTED, FlightStatusCode.CANCELLED, FlightStatusCode.INTERNAL));
    float[] g = new float[11 * C];
    assertStatus(() -> exchange("{\"op\":\"update\",\"shard\":0}", Protocol.updateRequest(C), grads(new long[11], g)),
        FlightStatusCode.RESOURCE_EXHAUSTED, "Cannot update 11 ids: more than 10 per request");
    // The server keeps serving, and a client splits large requests by the announced limit.
    try (EmbeddingClient client =
        EmbeddingClient.builder().manifest(fx.manifest).endpoints(List.of(fx.servers.get(0).endpoint(),
            fx.start(ShardServer.builder().table(fx.dir).shards(1, 3).allocator(allocator)).endpoint())).allocator(allocator).build()) {
      long[] ids = java.util.stream.LongStream.range(0, 100).toArray();
      float[] out = new float[100 * C];
      client.lookup(ids, out);
      for (int i = 0; i < out.length; i++) {
        assertThat(out[i]).isEqualTo(fx.matrix[i]);
      }
    }
    assertNoRowChanged();
  }

  @Test
  void aReplyLargerThanTheMessageLimitIsRefusedBeforeItIsAllocated() throws Exception {
    ShardServer s = startEvenShards(ShardServer.builder().maxMessageBytes(64 * 1024));
    // 5,000 ids are a 40 KB request (under the limit) asking for an 80 KB reply (over it).
    assertStatus(() -> exchange("{\"op\":\"lookup\",\"shard\":0}", Protocol.lookupRequest(), ids(new long[5000])),
        FlightStatusCode.RESOURCE_EXHAUSTED,
        "Cannot look up 5000 ids: the reply would be 80000 bytes, more than 65536 (maxMessageBytes; split the request)");
    // The client splits by the announced limit, replies included, and gets every row.
    try (EmbeddingClient client = EmbeddingClient.builder().manifest(fx.manifest).endpoints(List.of(s.endpoint(),
        fx.start(ShardServer.builder().table(fx.dir).shards(1, 3).allocator(allocator).maxMessageBytes(64 * 1024)).endpoint()))
        .allocator(allocator).build()) {
      long[] ids = new long[20_000];
      for (int i = 0; i < ids.length; i++) {
        ids[i] = i % V;
      }
      float[] out = new float[ids.length * C];
      client.lookup(ids, out);
      for (int i = 0; i < ids.length; i++) {
        for (int c = 0; c < C; c++) {
          assertThat(out[i * C + c]).isEqualTo(fx.matrix[(int) (ids[i] * C + c)]);
        }
      }
    }
    assertNoRowChanged();
  }

  @Test
  void runningOutOfMemoryFailsTheCallNotTheServer() throws Exception {
    // The server's allocator holds its shards (8 KB) and 1 MiB more: a 40,000-id lookup's request
    // (320 KB, 512 KiB as allocated) fits, its 640 KB reply (1 MiB as allocated) does not.
    try (BufferAllocator limited = allocator.newChildAllocator("limited", 0, 1L << 20)) {
      ShardServer s = fx.start(ShardServer.builder().table(fx.dir).shards(0, 2).allocator(limited));
      raw = FlightClient.builder(allocator, Location.forGrpcInsecure("127.0.0.1", s.port())).build();
      assertStatus(() -> exchange("{\"op\":\"lookup\",\"shard\":0}", Protocol.lookupRequest(), ids(new long[40_000])),
          FlightStatusCode.RESOURCE_EXHAUSTED, "Cannot run exchange: out of memory (");
      assertNoRowChanged();
      raw.close();
      raw = null;
      fx.close();
    }
  }

  @Test
  void tokensSeparateReadersFromWriters() throws Exception {
    startEvenShards(ShardServer.builder().readToken("r-secret").writeToken("w-secret"));
    CallOption read = new CredentialCallOption(new BearerCredentialWriter("r-secret"));
    CallOption write = new CredentialCallOption(new BearerCredentialWriter("w-secret"));
    CallOption wrong = new CredentialCallOption(new BearerCredentialWriter("guess"));
    assertStatus(() -> exchange("{\"op\":\"lookup\",\"shard\":0}", Protocol.lookupRequest(), ids(0)),
        FlightStatusCode.UNAUTHENTICATED, "Cannot authenticate: no bearer token");
    assertStatus(() -> exchange("{\"op\":\"lookup\",\"shard\":0}", Protocol.lookupRequest(), ids(0), wrong),
        FlightStatusCode.UNAUTHENTICATED, "Cannot authenticate: the bearer token is not valid for this server");
    assertStatus(() -> raw.doAction(new Action("health"), wrong).next(),
        FlightStatusCode.UNAUTHENTICATED, "not valid");
    float[] g = new float[C];
    assertStatus(() -> exchange("{\"op\":\"update\",\"shard\":0}", Protocol.updateRequest(C), grads(new long[] {0}, g), read),
        FlightStatusCode.UNAUTHORIZED, "Cannot update shard 0: the token is read-only (updates and snapshots need the write token)");
    byte[] body = ("{\"dir\":\"" + tmp.resolve("snap") + "\",\"version\":2}").getBytes(StandardCharsets.UTF_8);
    assertStatus(() -> raw.doAction(new Action("snapshot", body), read).next(),
        FlightStatusCode.UNAUTHORIZED, "Cannot snapshot: the token is read-only");
    assertThat(tmp.resolve("snap")).doesNotExist();
    exchange("{\"op\":\"lookup\",\"shard\":0}", Protocol.lookupRequest(), ids(0), read);
    assertNoRowChanged(read);
    exchange("{\"op\":\"update\",\"shard\":0}", Protocol.updateRequest(C), grads(new long[] {0}, new float[] {1, 1, 1, 1}), write);
    // the client sends its token with every call
    try (EmbeddingClient client = EmbeddingClient.builder().manifest(fx.manifest)
        .endpoints(List.of(fx.servers.get(0).endpoint(), fx.start(ShardServer.builder().table(fx.dir).shards(1, 3).allocator(allocator)).endpoint()))
        .token("w-secret").allocator(allocator).build()) {
      float[] row = new float[C];
      client.lookup(new long[] {0}, row);
      assertThat(row[0]).isEqualTo(fx.matrix[0] - 0.025f * 1);
    }
  }

  @Test
  void clientRejectsBadArgumentsBeforeSendingAnything() throws Exception {
    fx.start(allocator, 0, 2);
    fx.start(allocator, 1, 3);
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      assertThatThrownBy(() -> client.lookup(new long[] {1, -1}, new float[2 * C]))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("Cannot look up id -1: outside [0, 1000) (request position 1)");
      assertThatThrownBy(() -> client.lookup(new long[] {1, 2}, new float[C]))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("Cannot look up 2 ids: the output holds 4 floats, need 8 (C=4)");
      float[] g = new float[2 * C];
      g[C + 3] = Float.NaN;
      assertThatThrownBy(() -> client.update(new long[] {1, 2}, g, 0.1f))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("Cannot update id 2: gradient value 3 is NaN (gradients must be finite; nothing was sent)");
      assertThatThrownBy(() -> client.update(new long[] {1, 2}, new float[C], 0.1f))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("Cannot update 2 ids: 4 gradient values, need 8 (C=4)");
      assertThatThrownBy(() -> client.update(new long[] {1}, new float[C], 0f))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("Cannot update: learning rate 0.0 (must be a positive finite number)");
      assertThatThrownBy(() -> client.nearest(new float[C + 1], 3))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("Cannot search: the query has 5 values, the table has C=4");
      raw = FlightClient.builder(allocator, Location.forGrpcInsecure("127.0.0.1", fx.servers.get(0).port())).build();
      assertNoRowChanged();
    }
  }

  @Test
  void aDeadShardFailsWithAShardExceptionNamingShardAndEndpoint() throws Exception {
    fx.start(allocator, 0, 2);
    ShardServer odd = fx.start(allocator, 1, 3);
    String endpoint = odd.endpoint();
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      odd.close();
      assertThatThrownBy(() -> client.lookup(new long[] {0, 1}, new float[2 * C]))
          .isInstanceOf(ShardException.class)
          .hasMessageStartingWith("Cannot look up 1 ids on shard 1 at " + endpoint + ": UNAVAILABLE")
          .satisfies(e -> {
            ShardException s = (ShardException) e;
            assertThat(s.shard()).isEqualTo(1);
            assertThat(s.endpoint()).isEqualTo(endpoint);
            assertThat(s.code()).isEqualTo(FlightStatusCode.UNAVAILABLE);
          });
      assertThatThrownBy(() -> client.update(new long[] {3}, new float[C], 0.1f))
          .isInstanceOf(ShardException.class)
          .hasMessageStartingWith("Cannot update 1 ids on shard 3 at " + endpoint + ": UNAVAILABLE");
      // shard 0 still answers
      float[] row = new float[C];
      client.lookup(new long[] {4}, row);
      assertThat(row[0]).isEqualTo(fx.matrix[4 * C]);
    }
  }
}
