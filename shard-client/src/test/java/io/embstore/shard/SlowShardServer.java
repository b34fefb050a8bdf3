package io.embstore.shard;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightProducer;
import org.apache.arrow.flight.FlightServer;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.NoOpFlightProducer;
import org.apache.arrow.flight.Result;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * A Flight server that describes itself like {@code real} but never answers an exchange, a fast
 * lookup or a fast update until closed: a slow shard. It has its own allocator because Flight frees a request batch it never
 * read on a handler thread after the call has completed; {@link #close} releases the exchanges,
 * stops the server and closes that allocator once it has drained (throwing on a real leak).
 */
final class SlowShardServer implements AutoCloseable {
  private final CountDownLatch release = new CountDownLatch(1);
  private final RootAllocator allocator = new RootAllocator();
  private final FlightServer server;

  SlowShardServer(ShardServer real, BufferAllocator clientAllocator) throws IOException, InterruptedException {
    byte[] describe;
    try (FlightClient c = FlightClient.builder(clientAllocator, Location.forGrpcInsecure("127.0.0.1", real.port())).build()) {
      describe = c.doAction(new Action("describe")).next().getBody();
    }
    FlightProducer slow = new NoOpFlightProducer() {
      @Override
      public void doAction(CallContext context, Action action, StreamListener<Result> listener) {
        listener.onNext(new Result(describe));
        listener.onCompleted();
      }

      @Override
      public void doExchange(CallContext context, FlightStream reader, ServerStreamListener writer) {
        try {
          release.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        writer.completed();
      }
    };
    // its fast lookup and update methods read requests and never answer either
    io.grpc.MethodDescriptor.Marshaller<byte[]> bytes = new io.grpc.MethodDescriptor.Marshaller<>() {
      @Override
      public java.io.InputStream stream(byte[] value) {
        return new java.io.ByteArrayInputStream(value);
      }

      @Override
      public byte[] parse(java.io.InputStream stream) {
        try {
          return stream.readAllBytes();
        } catch (IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
      }
    };
    io.grpc.ServerServiceDefinition lookups = io.grpc.ServerServiceDefinition.builder(LookupMethod.SERVICE)
        .addMethod(LookupMethod.descriptor(LookupMethod.NAME, bytes, bytes), (call, headers) -> {
          call.request(Integer.MAX_VALUE);
          return new io.grpc.ServerCall.Listener<>() {};
        })
        .addMethod(LookupMethod.descriptor(UpdateMethod.NAME, bytes, bytes), (call, headers) -> {
          call.request(Integer.MAX_VALUE);
          return new io.grpc.ServerCall.Listener<>() {};
        })
        .build();
    server = FlightServer.builder(allocator, Location.forGrpcInsecure("127.0.0.1", 0), slow)
        .transportHint("grpc.builderConsumer", (java.util.function.Consumer<io.grpc.netty.NettyServerBuilder>) nsb -> nsb.addService(lookups))
        .build().start();
  }

  String endpoint() {
    return "grpc+tcp://127.0.0.1:" + server.getPort();
  }

  @Override
  public void close() throws InterruptedException {
    release.countDown();
    try {
      server.close();
    } finally {
      long until = System.nanoTime() + Duration.ofSeconds(10).toNanos();
      while (allocator.getAllocatedMemory() != 0 && System.nanoTime() < until) {
        Thread.sleep(10);
      }
      allocator.close();
    }
  }
}
