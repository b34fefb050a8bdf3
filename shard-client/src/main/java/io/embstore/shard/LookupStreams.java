package io.embstore.shard;

import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.grpc.StatusUtils;

/**
 * Long-lived, pipelined streams of the fast lookup method ({@link LookupMethod}) to one server,
 * pooled per shard like {@link ExchangePool}'s exchanges: a request takes an idle stream, else a
 * new one while fewer than {@code width} are open, else the least loaded one, and writes without
 * waiting for earlier replies; replies come in request order, so the oldest unanswered request of a
 * stream owns its next reply.
 *
 * <p>Replies are read where gRPC delivers them, on the channel's event loop (the channel has a direct
 * executor): each stream's reply marshaller copies the rows from gRPC's buffers straight to the rows
 * of the request that owns the reply ({@link Request#rows}), through a small buffer that stays in
 * the cache, then completes the request, which wakes a caller waiting for it. No thread reads on
 * behalf of a caller, so blocking and asynchronous lookups take the same path.
 *
 * <p>A stream whose call ended (any status: the server went away, a passed deadline, a malformed
 * reply) fails every request queued on it and is never used again; {@link #expire} (run
 * periodically by the client) ends a stream whose oldest unanswered request is overdue with
 * {@code TIMED_OUT}.
 */
final class LookupStreams extends StreamPool<LookupStreams.Stream> implements AutoCloseable {
  private static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final String uri;
  private final ManagedChannel channel;
  private final String methodName;
  private final String bearer;
  private final int shard;
  private final int rowBytes;
  /** The rows of the replies: float32, or a 16-bit or int8 type that {@link ReplyReader} decodes. */
  private final io.embstore.format.ValueType wireType;
  private final int wireRowBytes;
  private static final java.lang.invoke.VarHandle SHORT_LE =
      java.lang.invoke.MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);
  private static final java.lang.invoke.VarHandle INT_LE =
      java.lang.invoke.MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

  LookupStreams(String uri, ManagedChannel channel, String methodName, String bearer, int shard, int dim,
      io.embstore.format.ValueType wireType, int width) {
    super(width);
    this.uri = uri;
    this.channel = channel;
    this.methodName = methodName;
    this.bearer = bearer;
    this.shard = shard;
    this.rowBytes = dim * 4;
    this.wireType = wireType;
    this.wireRowBytes = Math.toIntExact(wireType.rowBytes(dim));
  }

  @Override
  Stream open() {
    return new Stream();
  }

  /** Ends every stream; queued requests fail with CANCELLED. */
  @Override
  public void close() {
    List<Stream> all = closeAll();
    for (Stream s : all) {
      s.cancel(CallStatus.CANCELLED.withDescription("the client is closing").toRuntimeException());
    }
  }

  /**
   * One lookup request of {@code n} ids. {@link #ids} writes them; {@link #rows} takes the reply's
   * rows in pieces (rows {@code first .. first + count} of the reply, little-endian float32 in {@code
   * floats}, also as {@code bytes}), on the event loop; then the future completes.
   */
  abstract static class Request extends CompletableFuture<Void> {
    final long deadline;
    final int n;

    Request(long deadline, int n) {
      this.deadline = deadline;
      this.n = n;
    }

    /** Puts the n ids into {@code out} (little-endian int64, at its position). */
    abstract void ids(ByteBuffer out);

    abstract void rows(ByteBuffer bytes, FloatBuffer floats, int first, int count);
  }

  /** One open call carrying any number of requests in order. */
  final class Stream implements StreamPool.Member {
    private final ClientCall<Request, Request> call;
    /** Requests sent and not answered, oldest first. Guarded by this. */
    private final ArrayDeque<Request> pending = new ArrayDeque<>();
    /** The first failure; once set the stream takes no more requests. Guarded by this. */
    private FlightRuntimeException failure;
    /**
     * Guards every use of the call but {@code request} (gRPC's ClientCall is not thread-safe). Lock
     * order: this lock, then the stream's monitor (the queue), released before the pool's monitor.
     */
    private final Object callLock = new Object();
    /** Scratch of the reply reader (event loop only): rows pass through it on their way to the request. */
    private byte[] chunk;
    /** The 16-bit rows of a reply before {@link #chunk} gets them widened (event loop only). */
    private byte[] wire;

    private Stream() {
      MethodDescriptor<Request, Request> method = LookupMethod.descriptor(methodName, new RequestWriter(), new ReplyReader());
      this.call = channel.newCall(method, CallOptions.DEFAULT);
      // start and the first request before anyone else can see the stream
      Metadata headers = new Metadata();
      if (bearer != null) {
        headers.put(AUTHORIZATION, "Bearer " + bearer);
      }
      call.start(new ClientCall.Listener<>() {
        @Override
        public void onMessage(Request r) {
          synchronized (Stream.this) {
            pending.pollFirst(); // r: the reader took the oldest
          }
          r.complete(null);
        }

        @Override
        public void onClose(Status status, Metadata trailers) {
          fail(status.isOk()
              ? CallStatus.INTERNAL.withDescription("the server ended the stream").toRuntimeException()
              : StatusUtils.fromGrpcRuntimeException(status.asRuntimeException(trailers)));
        }
      }, headers);
      call.request(Integer.MAX_VALUE);
    }

    /** Requests waiting for replies, or -1 when the stream failed. */
    @Override
    public synchronized int load() {
      return failure != null ? -1 : pending.size();
    }

    /**
     * Sends {@code r} on this stream; a stream that failed fails it instead. Never throws. The
     * request is queued and written under one lock ({@link #callLock}), so the queue's order is the
     * order of the requests on the wire, which is the order of the replies.
     */
    void send(Request r) {
      FlightRuntimeException broken = null;
      synchronized (callLock) {
        synchronized (this) {
          if (failure != null) {
            r.completeExceptionally(failure);
            return;
          }
          // queued before it is written: its reply may come back before sendMessage returns
          pending.addLast(r);
        }
        try {
          call.sendMessage(r);
        } catch (RuntimeException e) {
          broken = CallStatus.INTERNAL.withDescription("Cannot send a lookup: " + e).withCause(e).toRuntimeException();
        }
      }
      if (broken != null) {
        cancel(broken);
      }
    }

    /** Ends the stream with {@code cause}: its queued requests fail with it (via {@link #fail}). */
    void cancel(FlightRuntimeException cause) {
      synchronized (this) {
        if (failure == null) {
          failure = cause;
        }
      }
      synchronized (callLock) { // a ClientCall is not thread-safe: cancel never overlaps a send
        try {
          call.cancel(cause.getMessage(), null);
        } catch (RuntimeException ignored) {
          // already ended
        }
      }
      fail(cause);
    }

    /** Marks the stream failed (the first cause wins) and fails every queued request with the cause. */
    void fail(FlightRuntimeException cause) {
      List<Request> failed;
      synchronized (this) {
        if (failure == null) {
          failure = cause;
        }
        failed = new ArrayList<>(pending);
        pending.clear();
      }
      for (Request r : failed) {
        r.completeExceptionally(failure);
      }
      remove(this);
    }

    @Override
    public void expire(long now) {
      synchronized (this) {
        if (failure != null || pending.isEmpty()) {
          return;
        }
        boolean overdue = false;
        for (Request r : pending) {
          if (now - r.deadline > 0) {
            overdue = true;
            break;
          }
        }
        if (!overdue) {
          return;
        }
      }
      cancel(ExchangePool.timedOut("deadline passed before the shard answered"));
    }

    /** Writes a request: shard, n, ids. */
    private final class RequestWriter implements MethodDescriptor.Marshaller<Request> {
      @Override
      public InputStream stream(Request r) {
        int bytes = LookupMethod.HEADER_BYTES + 8 * r.n;
        return new LookupMethod.Message(bytes, out -> {
          ByteBuffer b = ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
          b.putInt(wireType.isCompact() ? shard | LookupMethod.STORED_ROWS : shard).putInt(r.n);
          r.ids(b);
          out.write(b.array());
        });
      }

      @Override
      public Request parse(InputStream stream) {
        throw new UnsupportedOperationException("the client does not read requests");
      }
    }

    /** Reads a reply into the oldest pending request's rows (on the event loop). */
    private final class ReplyReader implements MethodDescriptor.Marshaller<Request> {
      @Override
      public InputStream stream(Request r) {
        throw new UnsupportedOperationException("the client does not write replies");
      }

      @Override
      public Request parse(InputStream in) {
        Request r;
        synchronized (Stream.this) {
          r = pending.peekFirst();
        }
        if (r == null) {
          throw CallStatus.INTERNAL.withDescription("the server sent a reply to no request").toRuntimeException();
        }
        try {
          int size = in.available();
          long expected = (long) r.n * wireRowBytes;
          if (size != expected) {
            throw CallStatus.INTERNAL.withDescription("Cannot look up: reply of " + size + " bytes, expected " + expected
                + " (" + r.n + " rows of " + wireRowBytes + " bytes)").toRuntimeException();
          }
          int rowsPerChunk = Math.max(1, (64 * 1024) / rowBytes);
          if (chunk == null || chunk.length < rowsPerChunk * rowBytes) {
            chunk = new byte[rowsPerChunk * rowBytes];
          }
          ByteBuffer bytes = ByteBuffer.wrap(chunk).order(ByteOrder.LITTLE_ENDIAN);
          FloatBuffer floats = bytes.asFloatBuffer();
          if (wireType.isCompact() && (wire == null || wire.length < rowsPerChunk * wireRowBytes)) {
            wire = new byte[rowsPerChunk * wireRowBytes];
          }
          for (int first = 0; first < r.n; first += rowsPerChunk) {
            int count = Math.min(rowsPerChunk, r.n - first);
            if (wireType.isCompact()) {
              readFully(in, wire, count * wireRowBytes);
              widen(wire, chunk, count);
            } else {
              readFully(in, chunk, count * rowBytes);
            }
            r.rows(bytes, floats, first, count);
          }
        } catch (IOException e) {
          throw CallStatus.INTERNAL.withDescription("Cannot read a lookup reply: " + e).withCause(e).toRuntimeException();
        }
        return r;
      }
    }
  }

  /**
   * Decodes {@code rows} rows of {@code from} into float32 in {@code to} (little-endian): 16-bit
   * values widened exactly, int8 rows as code * scale + bias.
   */
  private void widen(byte[] from, byte[] to, int rows) {
    if (wireType == io.embstore.format.ValueType.INT8) {
      io.embstore.format.Int8Rows.decode(from, 0, to, 0, rows, rowBytes / 4);
      return;
    }
    int values = rows * (wireRowBytes / 2);
    if (wireType == io.embstore.format.ValueType.BFLOAT16) {
      for (int i = 0; i < values; i++) {
        INT_LE.set(to, 4 * i, ((short) SHORT_LE.get(from, 2 * i) & 0xffff) << 16);
      }
    } else {
      for (int i = 0; i < values; i++) {
        INT_LE.set(to, 4 * i, Float.floatToRawIntBits(io.embstore.format.HalfFloats.float16ToFloat((short) SHORT_LE.get(from, 2 * i))));
      }
    }
  }

  private static void readFully(InputStream in, byte[] into, int length) throws IOException {
    int off = 0;
    while (off < length) {
      int got = in.read(into, off, length - off);
      if (got < 0) {
        throw new IOException("reply ended after " + off + " of " + length + " bytes");
      }
      off += got;
    }
  }
}
