package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.TableLocation;
import io.embstore.format.TestMatrices;
import io.embstore.format.ValueType;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The fast update method as a client in another language would call it (plain gRPC, the bytes of
 * docs/protocol.md), and through the routing client: right requests are applied and answered in
 * order; every malformed one ends its stream with the update exchange's status code and message,
 * nothing of it is applied, and the server keeps serving; the rows come out bit for bit as over the
 * update exchange, for every optimizer and value type. The allocator's close fails a test on a leak.
 */
class FastUpdateTest {
  static final long V = 1000;
  static final int C = 4;
  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardFixture fx;
  ManagedChannel channel;
  final List<ShardServer> extra = new ArrayList<>();

  @BeforeEach
  void open() throws IOException {
    allocator = new RootAllocator();
    fx = new ShardFixture(tmp.resolve("t"), V, C, 4, "modulo", allocator);
  }

  @AfterEach
  void close() throws Exception {
    if (channel != null) {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    extra.forEach(ShardServer::close);
    fx.close();
    allocator.close();
  }

  /** What one stream answered: its replies (rows applied), then its closing status. */
  record Answer(List<Integer> replies, Status status) {}

  /** A raw stream of the method: its call, the replies so far and its status once closed. */
  final class RawStream {
    final ClientCall<byte[], byte[]> call;
    final List<Integer> replies = new CopyOnWriteArrayList<>();
    final CompletableFuture<Status> closed = new CompletableFuture<>();

    RawStream(ShardServer server, String bearer) {
      if (channel == null) {
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
      }
      call = channel.newCall(LookupMethod.descriptor(UpdateMethod.NAME, FastLookupTest.BYTES, FastLookupTest.BYTES), CallOptions.DEFAULT);
      Metadata headers = new Metadata();
      if (bearer != null) {
        headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + bearer);
      }
      call.start(new ClientCall.Listener<>() {
        @Override
        public void onMessage(byte[] message) {
          assertThat(message).hasSize(UpdateMethod.REPLY_BYTES);
          replies.add(ByteBuffer.wrap(message).order(ByteOrder.LITTLE_ENDIAN).getInt());
        }

        @Override
        public void onClose(Status status, Metadata trailers) {
          closed.complete(status);
        }
      }, headers);
      call.request(Integer.MAX_VALUE);
    }

    Answer finish() throws Exception {
      call.halfClose();
      return new Answer(replies, closed.get(10, TimeUnit.SECONDS));
    }
  }

  private Answer call(ShardServer server, String bearer, byte[]... requests) throws Exception {
    RawStream s = new RawStream(server, bearer);
    for (byte[] r : requests) {
      s.call.sendMessage(r);
    }
    return s.finish();
  }

  /** A request with header fields as given: shard, n, lr, reserved, then the ids and the gradients. */
  static byte[] request(int shard, int n, float lr, int reserved, long[] ids, float[] grads) {
    ByteBuffer b = ByteBuffer.allocate(16 + 8 * ids.length + 4 * grads.length).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(shard).putInt(n).putFloat(lr).putInt(reserved);
    for (long id : ids) {
      b.putLong(id);
    }
    for (float g : grads) {
      b.putFloat(g);
    }
    return b.array();
  }

  /** A well-formed request: each id's gradient is {@code g} in every column. */
  static byte[] request(int shard, float lr, float g, long... ids) {
    float[] grads = new float[ids.length * C];
    java.util.Arrays.fill(grads, g);
    return request(shard, ids.length, lr, 0, ids, grads);
  }

  /** The rows of {@code ids} as {@code s} serves them (fast lookups, one request per id: {@code s} may host some shards only). */
  private float[] rowsOf(ShardServer s, long... ids) throws Exception {
    ManagedChannel lookups = NettyChannelBuilder.forAddress("127.0.0.1", s.port()).usePlaintext().build();
    try {
      ClientCall<byte[], byte[]> call = lookups.newCall(LookupMethod.descriptor(LookupMethod.NAME, FastLookupTest.BYTES, FastLookupTest.BYTES),
          CallOptions.DEFAULT);
      List<byte[]> replies = new CopyOnWriteArrayList<>();
      CompletableFuture<Status> closed = new CompletableFuture<>();
      call.start(new ClientCall.Listener<>() {
        @Override
        public void onMessage(byte[] message) {
          replies.add(message);
        }

        @Override
        public void onClose(Status status, Metadata trailers) {
          closed.complete(status);
        }
      }, new Metadata());
      call.request(Integer.MAX_VALUE);
      for (long id : ids) {
        call.sendMessage(FastLookupTest.request((int) (id % 4), id));
      }
      call.halfClose();
      assertThat(closed.get(10, TimeUnit.SECONDS).isOk()).isTrue();
      float[] out = new float[ids.length * C];
      for (int i = 0; i < ids.length; i++) {
        ByteBuffer.wrap(replies.get(i)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out, i * C, C);
      }
      return out;
    } finally {
      lookups.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** Row {@code i} of {@code rows} is the table's row of {@code id} after {@code steps} updates each adding {@code delta}. */
  private void assertRow(float[] rows, int i, long id, long steps, float delta) {
    for (int c = 0; c < C; c++) {
      float w = fx.matrix[(int) (id * C + c)];
      for (long k = 0; k < steps; k++) {
        w += delta;
      }
      assertThat(rows[i * C + c]).as("id %d col %d", id, c).isEqualTo(w);
    }
  }

  private void assertRow(float[] rows, int i, long id, float delta) {
    assertRow(rows, i, id, 1, delta);
  }

  private static void assertStatus(Answer a, Status.Code code, String message) {
    assertThat(a.status().getCode()).as("%s", a.status()).isEqualTo(code);
    assertThat(a.status().getDescription()).contains(message);
  }

  @Test
  void requestsAreAppliedAndAnsweredInOrderWithTheRowsApplied() throws Exception {
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).optimizer(Optimizer.sgd(0.5)).allocator(allocator));
    assertThat(s.describe().updateMethod()).isEqualTo(UpdateMethod.NAME);
    // a repeated id is summed (as by the exchange): 2 distinct rows; NaN: the server's rate
    Answer a = call(s, null, request(1, 0.25f, 1f, 5, 1, 5), request(0, Float.NaN, 2f, 8), request(2, 0.25f, 1f));
    assertThat(a.status().isOk()).as("%s", a.status()).isTrue();
    assertThat(a.replies()).containsExactly(2, 1, 0);
    float[] rows = rowsOf(s, 5, 1, 8);
    assertRow(rows, 0, 5, -0.25f * 2);
    assertRow(rows, 1, 1, -0.25f);
    assertRow(rows, 2, 8, -0.5f * 2);
    assertThat(s.fastUpdateRequests()).isEqualTo(3);
  }

  @Test
  void malformedRequestsEndTheStreamWithTheUpdateExchangesStatusesApplyNothingAndTheServerKeepsServing() throws Exception {
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).shards(0, 2).maxIdsPerRequest(10).allocator(allocator));
    assertStatus(call(s, null, new byte[] {1, 2, 3}), Status.Code.INVALID_ARGUMENT,
        "Cannot update: request of 3 bytes (at least 16: shard, n, lr, reserved)");
    byte[] truncated = java.util.Arrays.copyOf(request(0, 0.1f, 1f, 4, 8), 16 + 16 + 4 * C);
    assertStatus(call(s, null, truncated), Status.Code.INVALID_ARGUMENT,
        "Cannot update 2 ids: request of 48 bytes (expected 16 + 8 x ids + 4 x 4 x ids = 64)");
    byte[] longer = java.util.Arrays.copyOf(request(0, 0.1f, 1f, 4), 16 + 8 + 4 * C + 1);
    assertStatus(call(s, null, longer), Status.Code.INVALID_ARGUMENT, "Cannot update 1 ids: request of 41 bytes (expected");
    assertStatus(call(s, null, request(1, 0.1f, 1f, 1)), Status.Code.NOT_FOUND,
        "Cannot update shard 1: not hosted by this server (hosts [0, 2] of 4)");
    assertStatus(call(s, null, request(0, 0.1f, 1f, 4, V + 4)), Status.Code.INVALID_ARGUMENT,
        "Cannot update id 1004: outside [0, 1000) (request row 1");
    assertStatus(call(s, null, request(0, 0.1f, 1f, 4, 2)), Status.Code.INVALID_ARGUMENT,
        "Cannot update id 2: not owned by shard 0 of 4 (ids 0..996 with id mod 4 = 0) (request row 1; it belongs to shard 2)");
    assertStatus(call(s, null, request(0, 0.1f, 1f, new long[11])), Status.Code.RESOURCE_EXHAUSTED,
        "Cannot update 11 ids: more than 10 per request (maxIdsPerRequest; split the request)");
    assertStatus(call(s, null, request(0, -3, 0.1f, 0, new long[0], new float[0])), Status.Code.INVALID_ARGUMENT,
        "Cannot update -3 ids: a negative count (the request header's n)");
    float[] grads = new float[2 * C];
    grads[C + 2] = Float.NaN;
    assertStatus(call(s, null, request(0, 2, 0.1f, 0, new long[] {4, 8}, grads)), Status.Code.INVALID_ARGUMENT,
        "Cannot update id 8: gradient value 2 is NaN (gradients must be finite; nothing was applied)");
    grads[C + 2] = Float.POSITIVE_INFINITY;
    assertStatus(call(s, null, request(0, 2, 0.1f, 0, new long[] {4, 8}, grads)), Status.Code.INVALID_ARGUMENT,
        "Cannot update id 8: gradient value 2 is Infinity");
    for (float lr : new float[] {0f, -0.5f, Float.POSITIVE_INFINITY}) {
      assertStatus(call(s, null, request(0, lr, 1f, 4)), Status.Code.INVALID_ARGUMENT,
          "Cannot update: learning rate " + (double) lr + " (must be a positive finite number)");
    }
    assertStatus(call(s, null, request(0, 1, 0.1f, 7, new long[] {4}, new float[C])), Status.Code.INVALID_ARGUMENT,
        "Cannot update: reserved header word 7 (must be 0)");
    // nothing of a refused request was applied
    assertThat(rowsOf(s, 4, 8)).containsExactly(concat(fx.row(4), fx.row(8)));
    // the requests before a bad one were applied and answered, the stream then ends
    Answer a = call(s, null, request(2, 1f, 1f, 6), request(2, 1f, 1f, 7));
    assertThat(a.replies()).containsExactly(1);
    assertStatus(a, Status.Code.INVALID_ARGUMENT, "Cannot update id 7: not owned by shard 2 of 4");
    float[] six = rowsOf(s, 6);
    assertRow(six, 0, 6, -1f);
    // and the server answers the next stream
    Answer ok = call(s, null, request(0, 1f, 1f, 4, 8));
    assertThat(ok.status().isOk()).as("%s", ok.status()).isTrue();
    assertThat(ok.replies()).containsExactly(2);
  }

  private static float[] concat(float[] a, float[] b) {
    float[] r = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, r, a.length, b.length);
    return r;
  }

  @Test
  void updatesNeedTheWriteTokenAsOverTheExchange() throws Exception {
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).readToken("r").writeToken("w").allocator(allocator));
    assertStatus(call(s, null, request(0, 1f, 1f, 4)), Status.Code.UNAUTHENTICATED, "Cannot authenticate: no bearer token");
    assertStatus(call(s, "nope", request(0, 1f, 1f, 4)), Status.Code.UNAUTHENTICATED, "the bearer token is not valid");
    assertStatus(call(s, "r", request(0, 1f, 1f, 4)), Status.Code.PERMISSION_DENIED,
        "Cannot update shard 0: the token is read-only (updates and snapshots need the write token)");
    assertThat(s.fastUpdateRequests()).isZero();
    Answer a = call(s, "w", request(0, 1f, 1f, 4));
    assertThat(a.status().isOk()).as("%s", a.status()).isTrue();
    assertThat(a.replies()).containsExactly(1);
  }

  @Test
  void anInt8TableIsRefusedAndKeepsServing() throws Exception {
    Path dir = tmp.resolve("int8");
    TestMatrices.write(TableLocation.of(dir), TestMatrices.random(V, C, 3), V, C, 2, "modulo", ValueType.INT8, allocator);
    ShardServer s = ShardServer.builder().table(dir).allocator(allocator).start();
    extra.add(s);
    assertStatus(call(s, null, request(0, 1f, 1f, 4)), Status.Code.INVALID_ARGUMENT,
        "Cannot update shard 0: its rows are int8 (a quantized serving copy is read-only;");
    assertThat(s.fastUpdateRequests()).isZero();
  }

  @Test
  void aStoppingServerEndsItsStreamsWithUnavailable() throws Exception {
    ShardServer s = fx.start(allocator, 0, 1, 2, 3);
    RawStream stream = new RawStream(s, null);
    stream.call.sendMessage(request(0, 1f, 1f, 4));
    long end = System.nanoTime() + 10_000_000_000L;
    while (stream.replies.isEmpty() && System.nanoTime() < end) {
      Thread.sleep(5);
    }
    assertThat(stream.replies).containsExactly(1);
    s.close();
    Status status = stream.closed.get(10, TimeUnit.SECONDS);
    assertThat(status.getCode()).as("%s", status).isEqualTo(Status.Code.UNAVAILABLE);
    assertThat(status.getDescription()).isEqualTo("Cannot serve: the server is stopping");
  }

  /** Requests pipelined on one stream without waiting are all applied and answered in order. */
  @Test
  void manyRequestsPipelinedOnOneStreamAreAllAnsweredInOrder() throws Exception {
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).optimizer(Optimizer.sgd(1)).allocator(allocator));
    RawStream stream = new RawStream(s, null);
    int requests = 2000;
    List<Integer> expected = new ArrayList<>();
    for (int i = 0; i < requests; i++) {
      int n = 1 + i % 3;
      long[] ids = new long[n];
      for (int k = 0; k < n; k++) {
        ids[k] = 4L * ((i + 7L * k) % 250); // shard 0, distinct within a request
      }
      stream.call.sendMessage(request(0, 1f, 1f / 1024, ids));
      expected.add(n);
    }
    Answer a = stream.finish();
    assertThat(a.status().isOk()).as("%s", a.status()).isTrue();
    assertThat(a.replies()).containsExactlyElementsOf(expected);
    long[] counts = new long[250];
    for (int i = 0; i < requests; i++) {
      for (int k = 0; k < 1 + i % 3; k++) {
        counts[(int) ((i + 7L * k) % 250)]++;
      }
    }
    float[] rows = rowsOf(s, 0, 4, 996);
    assertRow(rows, 0, 0, counts[0], -1f / 1024);
    assertRow(rows, 1, 4, counts[1], -1f / 1024);
    assertRow(rows, 2, 996, counts[249], -1f / 1024);
  }

  /**
   * With a write-ahead log syncing {@code always}, requests pipelined on one stream are answered once
   * durable, in order, sharing fsyncs, and the log holds every one of them.
   */
  @Test
  void requestsOnALogThatSyncsAlwaysShareFsyncsAndAreAnsweredInOrder() throws Exception {
    Path wal = tmp.resolve("wal");
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).shards(0).wal(wal).walSync("always").allocator(allocator));
    RawStream stream = new RawStream(s, null);
    int requests = 300;
    for (int i = 0; i < requests; i++) {
      stream.call.sendMessage(request(0, 0.5f, 1f, 4L * (i % 250)));
    }
    Answer a = stream.finish();
    assertThat(a.status().isOk()).as("%s", a.status()).isTrue();
    assertThat(a.replies()).hasSize(requests).containsOnly(1);
    Messages.ShardStats stats = s.stats().shards().get(0);
    assertThat(stats.walRecords()).isEqualTo(requests);
    assertThat(stats.walSyncs()).as("fsyncs for %d pipelined requests", requests).isBetween(1L, (long) requests);
    // a restarted server replays the same rows
    float[] before = rowsOf(s, 0, 4, 996);
    s.close();
    fx.servers.remove(s);
    ShardServer again = fx.start(ShardServer.builder().table(fx.dir).shards(0).wal(wal).walSync("always").allocator(allocator));
    assertThat(rowsOf(again, 0, 4, 996)).containsExactly(before);
    assertRow(before, 0, 0, 2, -0.5f); // ids 0 and 4 came twice (i and i + 250), 996 once
    assertRow(before, 1, 4, 2, -0.5f);
    assertRow(before, 2, 996, -0.5f);
  }

  static Stream<Arguments> optimizersAndTypes() {
    List<Arguments> all = new ArrayList<>();
    for (ValueType type : new ValueType[] {ValueType.FLOAT32, ValueType.FLOAT16, ValueType.BFLOAT16}) {
      all.add(Arguments.of(Optimizer.sgd(0.05), type));
      all.add(Arguments.of(Optimizer.adagrad(0.05, 1e-8), type));
      all.add(Arguments.of(Optimizer.rowwiseAdagrad(0.05, 1e-8), type));
      all.add(Arguments.of(Optimizer.adam(0.01, 0.9, 0.999, 1e-8), type));
    }
    return all.stream();
  }

  /**
   * The same updates (repeated ids, several rates, the server's rate, calls split into several
   * requests) sent through the routing client over the fast method and over the update exchange,
   * each to its own server of the same table: every row comes out bit for bit the same.
   */
  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("optimizersAndTypes")
  void rowsAreBitIdenticalToTheUpdateExchange(Optimizer optimizer, ValueType type) throws Exception {
    Path dir = tmp.resolve("bits");
    TestMatrices.write(TableLocation.of(dir), TestMatrices.random(V, C, 13), V, C, 4, "modulo", type, allocator);
    ShardServer fast = ShardServer.builder().table(dir).optimizer(optimizer).maxIdsPerRequest(64).allocator(allocator).start();
    extra.add(fast);
    ShardServer exchange = ShardServer.builder().table(dir).optimizer(optimizer).maxIdsPerRequest(64).allocator(allocator).start();
    extra.add(exchange);
    long[] all = java.util.stream.LongStream.range(0, V).toArray();
    float[] initial = new float[(int) V * C];
    float[] viaFast = new float[(int) V * C];
    float[] viaExchange = new float[(int) V * C];
    try (EmbeddingClient a = EmbeddingClient.builder().table(dir).endpoints(List.of(fast.endpoint())).allocator(allocator).build();
        EmbeddingClient b = EmbeddingClient.builder().table(dir).endpoints(List.of(exchange.endpoint())).updateExchange(true)
            .allocator(allocator).build()) {
      a.lookup(all, initial);
      SplittableRandom r = new SplittableRandom(17);
      for (int call = 0; call < 40; call++) {
        int n = 1 + r.nextInt(400); // up to ~100 ids a shard: split into requests of at most 64
        long[] ids = r.longs(n, 0, 300).toArray();
        float[] grads = new float[n * C];
        for (int i = 0; i < grads.length; i++) {
          grads[i] = (float) r.nextGaussian();
        }
        if (call % 5 == 4) {
          a.update(ids, grads);
          b.update(ids, grads);
        } else {
          float lr = call % 2 == 0 ? 0.1f : 0.03f;
          a.update(ids, grads, lr);
          b.update(ids, grads, lr);
        }
      }
      a.lookup(all, viaFast);
      b.lookup(all, viaExchange);
    }
    assertThat(fast.fastUpdateRequests()).as("requests over the fast method").isGreaterThan(40);
    assertThat(exchange.fastUpdateRequests()).as("requests over the fast method with updateExchange").isZero();
    int changed = 0;
    for (int i = 0; i < viaFast.length; i++) {
      assertThat(Float.floatToRawIntBits(viaFast[i])).as("value %d (id %d)", i, i / C)
          .isEqualTo(Float.floatToRawIntBits(viaExchange[i]));
      if (viaFast[i] != initial[i]) {
        changed++;
      }
    }
    assertThat(changed).as("values the updates changed").isGreaterThan(1000);
  }

  /** Rows wider than the client's 64 KiB staging buffer go out one at a time from a buffer of their own. */
  @Test
  void rowsWiderThanTheStagingBufferArriveWhole() throws Exception {
    int dim = 20_000; // 80,000-byte rows
    try (ShardFixture wide = new ShardFixture(tmp.resolve("wide"), 16, dim, 2, "modulo", allocator)) {
      ShardServer s = wide.start(ShardServer.builder().table(wide.dir).optimizer(Optimizer.sgd(1)).allocator(allocator));
      try (EmbeddingClient client = EmbeddingClient.builder().table(wide.dir).endpoints(List.of(s.endpoint())).allocator(allocator).build()) {
        long[] ids = {3, 8, 5};
        float[] grads = new float[ids.length * dim];
        for (int i = 0; i < grads.length; i++) {
          grads[i] = (i % 7) / 8f;
        }
        client.update(ids, grads, 0.5f);
        float[] rows = new float[ids.length * dim];
        client.lookup(ids, rows);
        for (int i = 0; i < ids.length; i++) {
          for (int c = 0; c < dim; c++) {
            assertThat(rows[i * dim + c]).as("id %d col %d", ids[i], c)
                .isEqualTo(wide.matrix[(int) (ids[i] * dim + c)] - 0.5f * grads[i * dim + c]);
          }
        }
      }
      assertThat(s.fastUpdateRequests()).isEqualTo(2);
    }
  }

  /** Concurrent async updates through the routing client share at most two streams a shard and are all applied. */
  @Test
  void concurrentUpdatesThroughTheClientSharePipelinedStreams() throws Exception {
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).optimizer(Optimizer.sgd(1)).allocator(allocator));
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(List.of(s.endpoint())).allocator(allocator).build()) {
      List<CompletableFuture<Void>> futures = new ArrayList<>();
      for (int i = 0; i < 400; i++) {
        futures.add(client.updateAsync(new long[] {i % 8}, new float[] {1f / 64, 1f / 64, 1f / 64, 1f / 64}, 1f));
      }
      CompletableFuture.allOf(futures.toArray(new CompletableFuture[0])).join();
      for (int shard = 0; shard < 4; shard++) {
        assertThat(client.streamCounts(shard)[2]).as("update streams of shard %d", shard).isLessThanOrEqualTo(FlightTransport.STREAMS_PER_SHARD);
      }
      float[] rows = new float[8 * C];
      client.lookup(new long[] {0, 1, 2, 3, 4, 5, 6, 7}, rows);
      for (int id = 0; id < 8; id++) {
        assertRow(rows, id, id, 50, -1f / 64);
      }
    }
    assertThat(s.fastUpdateRequests()).isEqualTo(400);
  }
}
