package io.embstore.bench.lookup;

import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The transport's ceiling for a training run's row traffic: what bare gRPC-Java (the transport under
 * Arrow Flight, same Netty, same event loops) costs to move the rows that a training run moved
 * through Flight, with nothing else to do. A training run with every shard reached over Flight
 * (`train --no-local-shards`) pulls the distinct rows of each batch (requests of ids, replies of
 * rows) and pushes one gradient row per pulled row (requests of ids and rows, a small reply), in
 * request batches of at most 2 MiB, pipelined on long-lived streams, from as many threads as task
 * slots, to servers in the same JVM. This moves the same number of rows of the same size the same
 * way over {@link GrpcCeiling}'s shape (one bidi method, server answering on the event loop from a
 * prefilled array, one copy into a {@code byte[]} on each receiving side) and reports the process's
 * CPU seconds: the least any Flight-over-gRPC design could spend on that traffic on this machine.
 * No gather, no scatter, no optimizer, no validation: those are the store's work, counted in an
 * in-process run.
 *
 * <p>Run: {@code bench/run lookup.TrafficCeiling --rows R --calls N [--dim 100] [--threads 2]
 * [--chunk-bytes 2097152] [--warmup 0.1]}: R rows pulled (and as many pushed) in N calls (batches)
 * split evenly over the threads; prints one {@code RESULT rowsMoved wallSeconds cpuSeconds} line.
 * {@code TrainBench --ceiling} runs it with the figures of its {@code --no-local-shards} run.
 */
public final class TrafficCeiling {
  private TrafficCeiling() {}

  static final MethodDescriptor<byte[], byte[]> MOVE = MethodDescriptor.<byte[], byte[]>newBuilder()
      .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
      .setFullMethodName("embstore.bench.TrafficCeiling/Move")
      .setRequestMarshaller(new Exact())
      .setResponseMarshaller(new Exact())
      .build();

  /** A message read into a {@code byte[]} of its exact size: one copy out of gRPC's buffers. */
  static final class Exact implements MethodDescriptor.Marshaller<byte[]> {
    @Override
    public InputStream stream(byte[] value) {
      return new GrpcCeiling.Prefix(value, value.length);
    }

    @Override
    public byte[] parse(InputStream stream) {
      try {
        byte[] b = new byte[stream.available()]; // gRPC's message streams know their length
        int n = stream.readNBytes(b, 0, b.length);
        if (n != b.length || stream.read() != -1) {
          throw new IllegalStateException("message of unexpected length: read " + n + " of " + b.length);
        }
        return b;
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
    }
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> o = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      o.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    if (!o.containsKey("rows") || !o.containsKey("calls")) {
      System.out.println("Usage: bench/run lookup.TrafficCeiling --rows R --calls N [--dim 100] [--threads 2] [--chunk-bytes 2097152] [--warmup 0.1]");
      System.exit(2);
    }
    long rows = Long.parseLong(o.get("rows"));
    int calls = Integer.parseInt(o.get("calls"));
    int dim = Integer.parseInt(o.getOrDefault("dim", "100"));
    int threads = Integer.parseInt(o.getOrDefault("threads", "2"));
    int chunkBytes = Integer.parseInt(o.getOrDefault("chunk-bytes", Integer.toString(2 << 20)));
    double warmup = Double.parseDouble(o.getOrDefault("warmup", "0.1"));
    if (rows < calls || calls < threads) {
      throw new IllegalArgumentException("Cannot run: " + rows + " rows in " + calls + " calls on " + threads
          + " threads (need rows >= calls >= threads)");
    }
    int rowBytes = 4 * dim;
    int perCall = (int) (rows / calls);
    try (Service server = new Service(chunkBytes)) {
      // JIT warm-up on the same shapes, not timed
      run(server.port(), threads, Math.max(threads, (int) (calls * warmup)), perCall, rowBytes, chunkBytes);
      var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
      long cpu0 = os.getProcessCpuTime();
      long t0 = System.nanoTime();
      long moved = run(server.port(), threads, calls, perCall, rowBytes, chunkBytes);
      double wall = (System.nanoTime() - t0) / 1e9;
      double cpu = (os.getProcessCpuTime() - cpu0) / 1e9;
      System.out.printf(Locale.ROOT, "%,d rows of %d bytes moved (%,d pulled, %,d pushed, %,d calls of %,d rows, %d threads): %.2f s wall, %.2f CPU s,"
          + " %.3f us of CPU per row, %,.0f rows/s%n", moved, rowBytes, moved / 2, moved / 2, calls, perCall, threads, wall, cpu,
          cpu * 1e6 / moved, moved / wall);
      System.out.printf(Locale.ROOT, "RESULT %d %.3f %.3f%n", moved, wall, cpu);
    }
  }

  /** {@code calls} pulls and pushes of {@code perCall} rows each, split over {@code threads}; returns rows moved. */
  private static long run(int port, int threads, int calls, int perCall, int rowBytes, int chunkBytes) throws Exception {
    Thread[] ts = new Thread[threads];
    Throwable[] failure = new Throwable[1];
    for (int t = 0; t < threads; t++) {
      int mine = calls / threads + (t < calls % threads ? 1 : 0);
      ts[t] = new Thread(() -> {
        try (Client c = new Client(port)) {
          for (int i = 0; i < mine; i++) {
            c.pull(perCall, rowBytes, chunkBytes);
            c.push(perCall, rowBytes, chunkBytes);
          }
        } catch (Throwable e) {
          synchronized (failure) {
            failure[0] = e;
          }
        }
      }, "ceiling-" + t);
      ts[t].start();
    }
    for (Thread t : ts) {
      t.join();
    }
    if (failure[0] != null) {
      throw new IOException("Transport ceiling run failed", failure[0]);
    }
    return 2L * calls * perCall;
  }

  /** Answers each request with the number of bytes its first 8 bytes ask for, cut from a prefilled array. */
  static final class Service implements AutoCloseable {
    private final Server server;

    Service(int maxReplyBytes) throws IOException {
      byte[] rows = new byte[maxReplyBytes];
      for (int i = 0; i < rows.length; i++) {
        rows[i] = (byte) (i * 31 + 7);
      }
      MethodDescriptor<byte[], InputStream> method = MOVE.toBuilder(new Exact(), new GrpcCeiling.StreamMarshaller()).build();
      ServerServiceDefinition service = ServerServiceDefinition.builder("embstore.bench.TrafficCeiling")
          .addMethod(method, ServerCalls.asyncBidiStreamingCall(reply -> new StreamObserver<byte[]>() {
            @Override
            public void onNext(byte[] request) {
              long want = ByteBuffer.wrap(request).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
              reply.onNext(new GrpcCeiling.Prefix(rows, (int) want));
            }

            @Override
            public void onError(Throwable t) {}

            @Override
            public void onCompleted() {
              reply.onCompleted();
            }
          }))
          .build();
      this.server = GrpcCeiling.serve(service);
    }

    int port() {
      return server.getPort();
    }

    @Override
    public void close() throws InterruptedException {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** One long-lived stream; a call's request batches go back to back, then their replies are read. */
  static final class Client implements AutoCloseable {
    private final ManagedChannel channel;
    private final StreamObserver<InputStream> requests;
    private final BlockingQueue<Object> replies = new ArrayBlockingQueue<>(1024);
    private byte[] request = new byte[0];

    Client(int port) {
      this.channel = NettyChannelBuilder.forAddress("127.0.0.1", port)
          .usePlaintext()
          .directExecutor()
          .maxInboundMessageSize(Integer.MAX_VALUE)
          .build();
      this.requests = ClientCalls.asyncBidiStreamingCall(channel.newCall(
          MOVE.toBuilder(new GrpcCeiling.StreamMarshaller(), new Exact()).build(), io.grpc.CallOptions.DEFAULT),
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

    /** {@code n} rows looked up: requests of 8 bytes per id, replies of {@code rowBytes} per id. */
    void pull(int n, int rowBytes, int chunkBytes) throws Exception {
      exchange(n, 8, rowBytes, chunkBytes / rowBytes);
    }

    /** {@code n} gradient rows pushed: requests of 8 + {@code rowBytes} bytes per id, an 8-byte reply per batch. */
    void push(int n, int rowBytes, int chunkBytes) throws Exception {
      exchange(n, 8 + rowBytes, 0, chunkBytes / (8 + rowBytes));
    }

    private void exchange(int n, int requestBytesPerRow, int replyBytesPerRow, int maxRows) throws Exception {
      int batches = 0;
      for (int from = 0; from < n; from += maxRows) {
        int k = Math.min(maxRows, n - from);
        int len = 8 + k * requestBytesPerRow;
        if (request.length < len) {
          request = new byte[len];
          for (int i = 8; i < len; i++) {
            request[i] = (byte) i;
          }
        }
        ByteBuffer.wrap(request).order(ByteOrder.LITTLE_ENDIAN).putLong(0, replyBytesPerRow == 0 ? 8 : (long) k * replyBytesPerRow);
        // gRPC drains the prefix into its buffer before onNext returns, so the array is reused at once
        requests.onNext(new GrpcCeiling.Prefix(request, len));
        batches++;
      }
      for (int b = 0; b < batches; b++) {
        Object r = replies.poll(30, TimeUnit.SECONDS);
        if (r instanceof Throwable t) {
          throw new IOException("transport ceiling server failed", t);
        }
        if (!(r instanceof byte[])) {
          throw new IOException("transport ceiling server did not answer within 30 s");
        }
      }
    }

    @Override
    public void close() throws InterruptedException {
      requests.onCompleted();
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
