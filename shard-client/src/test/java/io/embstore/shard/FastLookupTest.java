package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The fast lookup method as a client in another language would call it: plain gRPC, the bytes of
 * docs/protocol.md. Right requests get the table's rows; every malformed one ends its stream with
 * the exchange's status code and message, and the server keeps serving.
 */
class FastLookupTest {
  static final long V = 1000;
  static final int C = 4;
  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardFixture fx;
  ManagedChannel channel;

  static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
    @Override
    public InputStream stream(byte[] value) {
      return new ByteArrayInputStream(value);
    }

    @Override
    public byte[] parse(InputStream stream) {
      try {
        return stream.readAllBytes();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  };

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
    fx.close();
    allocator.close();
  }

  /** What one stream answered: its replies, then its closing status. */
  record Answer(List<byte[]> replies, Status status) {}

  private Answer call(ShardServer server, String bearer, byte[]... requests) throws Exception {
    if (channel == null) {
      channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    }
    ClientCall<byte[], byte[]> call = channel.newCall(LookupMethod.descriptor(LookupMethod.NAME, BYTES, BYTES), CallOptions.DEFAULT);
    List<byte[]> replies = new ArrayList<>();
    CompletableFuture<Status> closed = new CompletableFuture<>();
    Metadata headers = new Metadata();
    if (bearer != null) {
      headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + bearer);
    }
    call.start(new ClientCall.Listener<>() {
      @Override
      public void onMessage(byte[] message) {
        replies.add(message);
      }

      @Override
      public void onClose(Status status, Metadata trailers) {
        closed.complete(status);
      }
    }, headers);
    call.request(Integer.MAX_VALUE);
    for (byte[] r : requests) {
      call.sendMessage(r);
    }
    call.halfClose();
    return new Answer(replies, closed.get(10, TimeUnit.SECONDS));
  }

  static byte[] request(int shard, long... ids) {
    ByteBuffer b = ByteBuffer.allocate(8 + 8 * ids.length).order(ByteOrder.LITTLE_ENDIAN).putInt(shard).putInt(ids.length);
    for (long id : ids) {
      b.putLong(id);
    }
    return b.array();
  }

  private void assertRows(byte[] reply, long... ids) {
    ByteBuffer b = ByteBuffer.wrap(reply).order(ByteOrder.LITTLE_ENDIAN);
    assertThat(reply).hasSize(ids.length * C * 4);
    for (int i = 0; i < ids.length; i++) {
      for (int c = 0; c < C; c++) {
        assertThat(b.getFloat(4 * (i * C + c))).isEqualTo(fx.matrix[(int) (ids[i] * C + c)]);
      }
    }
  }

  @Test
  void requestsAreAnsweredInOrderWithTheTableRows() throws Exception {
    ShardServer s = fx.start(allocator, 0, 1, 2, 3);
    Answer a = call(s, null, request(1, 5, 1, 5, 997), request(0, 0), request(2, new long[0]));
    assertThat(a.status().isOk()).as("%s", a.status()).isTrue();
    assertThat(a.replies()).hasSize(3);
    assertRows(a.replies().get(0), 5, 1, 5, 997);
    assertRows(a.replies().get(1), 0);
    assertThat(a.replies().get(2)).isEmpty();
    assertThat(s.describe().lookupMethod()).isEqualTo(LookupMethod.NAME);
  }

  @Test
  void malformedRequestsEndTheStreamWithTheLookupExchangesStatusesAndTheServerKeepsServing() throws Exception {
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).shards(0, 2).maxIdsPerRequest(10).allocator(allocator));
    assertStatus(call(s, null, new byte[] {1, 2, 3}), Status.Code.INVALID_ARGUMENT, "Cannot look up: request of 3 bytes (at least 8)");
    byte[] truncated = java.util.Arrays.copyOf(request(0, 4, 8), 20);
    assertStatus(call(s, null, truncated), Status.Code.INVALID_ARGUMENT, "Cannot look up 2 ids: request of 20 bytes (expected 8 + 8 x ids)");
    assertStatus(call(s, null, request(1, 1)), Status.Code.NOT_FOUND, "Cannot look up ids on shard 1: not hosted by this server");
    assertStatus(call(s, null, request(0, V + 3)), Status.Code.INVALID_ARGUMENT, "Cannot look up id 1003: outside [0, 1000)");
    assertStatus(call(s, null, request(0, 2)), Status.Code.INVALID_ARGUMENT, "Cannot look up id 2: not owned by shard 0 of 4");
    assertStatus(call(s, null, request(0, new long[11])), Status.Code.RESOURCE_EXHAUSTED,
        "Cannot look up 11 ids: more than 10 per request (maxIdsPerRequest; split the request)");
    // the replies before the bad request were sent; the server answers the next stream
    Answer a = call(s, null, request(2, 6), request(2, 7));
    assertThat(a.replies()).hasSize(1);
    assertRows(a.replies().get(0), 6);
    assertThat(a.status().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    Answer ok = call(s, null, request(0, 4, 8));
    assertThat(ok.status().isOk()).isTrue();
    assertRows(ok.replies().get(0), 4, 8);
  }

  @Test
  void theBearerTokenIsCheckedAsForEveryFlightCall() throws Exception {
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).readToken("r").writeToken("w").allocator(allocator));
    assertStatus(call(s, null, request(0, 4)), Status.Code.UNAUTHENTICATED, "Cannot authenticate: no bearer token");
    assertStatus(call(s, "nope", request(0, 4)), Status.Code.UNAUTHENTICATED, "the bearer token is not valid");
    Answer a = call(s, "r", request(0, 4));
    assertThat(a.status().isOk()).isTrue();
    assertRows(a.replies().get(0), 4);
  }

  private static void assertStatus(Answer a, Status.Code code, String message) {
    assertThat(a.status().getCode()).as("%s", a.status()).isEqualTo(code);
    assertThat(a.status().getDescription()).contains(message);
  }
}
