package io.embstore.bench.lookup;

import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The gRPC ceiling: what gRPC-Java itself (the transport under Arrow Flight, same Netty, same event
 * loops) costs for a lookup's bytes, without Flight or embstore on top. One bidi-streaming method,
 * kept open for the whole run like embstore's pooled exchanges; a request is B little-endian ids, the
 * reply B rows from a prefilled array (no gather, as for the raw-socket ceiling). The server answers
 * on the Netty event loop (direct executor); the client's reply lands in one {@code byte[]} (the one
 * copy a marshaller reading straight into the caller's array would make) and is handed to the waiting
 * thread through a queue, as embstore's replies are.
 *
 * <p>It bounds what any Flight-over-gRPC design can reach on this machine: the gap between it and the
 * raw socket is gRPC's (HTTP/2 framing, event-loop hand-offs, buffer copies), the gap between it and
 * embstore is Flight's and embstore's.
 */
final class GrpcCeiling {
  private GrpcCeiling() {}

  static final MethodDescriptor<byte[], byte[]> LOOKUP = MethodDescriptor.<byte[], byte[]>newBuilder()
      .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
      .setFullMethodName("embstore.bench.GrpcCeiling/Lookup")
      .setRequestMarshaller(new Bytes())
      .setResponseMarshaller(new Bytes())
      .build();

  /** A byte[] message: the whole array, or a prefix of it (for replies cut from the prefilled rows). */
  static final class Bytes implements MethodDescriptor.Marshaller<byte[]> {
    @Override
    public InputStream stream(byte[] value) {
      return new Prefix(value, value.length);
    }

    @Override
    public byte[] parse(InputStream stream) {
      try {
        return stream.readAllBytes();
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
    }
  }

  /**
   * The first {@code length} bytes of an array. {@link io.grpc.KnownLength} and {@link io.grpc.Drainable}
   * let gRPC size the frame and copy the bytes into its buffer in one call.
   */
  static final class Prefix extends InputStream implements io.grpc.KnownLength, io.grpc.Drainable {
    private final byte[] bytes;
    private final int length;
    private int pos;

    Prefix(byte[] bytes, int length) {
      this.bytes = bytes;
      this.length = length;
    }

    @Override
    public int drainTo(OutputStream target) throws IOException {
      int n = length - pos;
      target.write(bytes, pos, n);
      pos = length;
      return n;
    }

    @Override
    public int available() {
      return length - pos;
    }

    @Override
    public int read() {
      return pos < length ? bytes[pos++] & 0xff : -1;
    }

    @Override
    public int read(byte[] b, int off, int len) {
      if (pos >= length) {
        return -1;
      }
      int n = Math.min(len, length - pos);
      System.arraycopy(bytes, pos, b, off, n);
      pos += n;
      return n;
    }
  }

  /** The server: answers each request of B ids with the first B rows of its prefilled array. */
  static final class GrpcServer implements AutoCloseable {
    private final Server server;

    GrpcServer(int rowBytes, int maxBatch) throws IOException {
      byte[] rows = new byte[rowBytes * maxBatch];
      for (int i = 0; i < rows.length; i++) {
        rows[i] = (byte) (i * 31 + 7);
      }
      // The reply is a Prefix of the shared array: gRPC copies it into its buffer while sending.
      MethodDescriptor<byte[], InputStream> method = LOOKUP.toBuilder(new Bytes(), new StreamMarshaller()).build();
      ServerServiceDefinition service = ServerServiceDefinition.builder("embstore.bench.GrpcCeiling")
          .addMethod(method, ServerCalls.asyncBidiStreamingCall(reply -> new StreamObserver<byte[]>() {
            @Override
            public void onNext(byte[] ids) {
              reply.onNext(new Prefix(rows, ids.length / 8 * rowBytes));
            }

            @Override
            public void onError(Throwable t) {}

            @Override
            public void onCompleted() {
              reply.onCompleted();
            }
          }))
          .build();
      this.server = serve(service);
    }

    int port() {
      return server.getPort();
    }

    @Override
    public void close() throws InterruptedException {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** Starts {@code service} on 127.0.0.1, any port, answering on the Netty event loop, messages of any size. */
  static Server serve(ServerServiceDefinition service) throws IOException {
    return NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
          .directExecutor()
          .maxInboundMessageSize(Integer.MAX_VALUE)
          .addService(service)
          .build()
          .start();
  }

  /** Sends a prepared InputStream as is (the server's reply type). */
  static final class StreamMarshaller implements MethodDescriptor.Marshaller<InputStream> {
    @Override
    public InputStream stream(InputStream value) {
      return value;
    }

    @Override
    public InputStream parse(InputStream stream) {
      return stream;
    }
  }

  /** One long-lived stream to one server; one request at a time per {@link #send}/{@link #receive} pair. */
  static final class Client implements LookupBench.BaselineClient, AutoCloseable {
    private final ManagedChannel channel;
    private final StreamObserver<byte[]> requests;
    private final BlockingQueue<Object> replies = new ArrayBlockingQueue<>(16);
    private byte[] request = new byte[0];

    Client(String host, int port) {
      this.channel = NettyChannelBuilder.forAddress(host, port)
          .usePlaintext()
          .directExecutor()
          .maxInboundMessageSize(Integer.MAX_VALUE)
          .build();
      this.requests = ClientCalls.asyncBidiStreamingCall(channel.newCall(LOOKUP, io.grpc.CallOptions.DEFAULT),
          new StreamObserver<byte[]>() {
            @Override
            public void onNext(byte[] reply) {
              replies.add(reply);
            }

            @Override
            public void onError(Throwable t) {
              replies.add(t);
            }

            @Override
            public void onCompleted() {}
          });
    }

    @Override
    public void send(long[] ids, int from, int to) {
      int n = to - from;
      if (request.length != 8 * n) {
        request = new byte[8 * n];
      }
      java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(request).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      for (int i = from; i < to; i++) {
        b.putLong(ids[i]);
      }
      requests.onNext(request); // the marshaller's stream is drained into gRPC's buffer before onNext returns
    }

    /** Waits for the next reply and checks its size. */
    @Override
    public void receive(int n) throws Exception {
      Object r = replies.poll(30, TimeUnit.SECONDS);
      if (r instanceof Throwable t) {
        throw new IOException("gRPC ceiling server failed", t);
      }
      if (!(r instanceof byte[] reply)) {
        throw new IOException("gRPC ceiling server did not answer within 30 s");
      }
      if (reply.length % n != 0) {
        throw new IOException("gRPC ceiling reply of " + reply.length + " bytes for " + n + " ids");
      }
    }

    @Override
    public void close() throws InterruptedException {
      requests.onCompleted();
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
