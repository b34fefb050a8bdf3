package io.embstore.shard;

import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.grpc.StatusUtils;

/**
 * Long-lived, pipelined streams of one of the server's plain gRPC methods ({@link LookupMethod},
 * {@link UpdateMethod}) to one shard, pooled like {@link ExchangePool}'s exchanges ({@link
 * StreamPool}): a request writes without waiting for earlier replies; replies come in request order,
 * so the oldest unanswered request of a stream owns its next reply.
 *
 * <p>Replies are read where gRPC delivers them, on the channel's event loop (the channel has a direct
 * executor): the subclass's {@link #read} takes the reply from gRPC's buffers into the request that
 * owns it, then the request completes, which wakes a caller waiting for it. No thread reads on
 * behalf of a caller, so blocking and asynchronous calls take the same path.
 *
 * <p>A stream whose call ended (any status: the server went away, a passed deadline, a malformed
 * reply) fails every request queued on it and is never used again; {@link #expire} (run
 * periodically by the client) ends a stream whose oldest unanswered request is overdue with
 * {@code TIMED_OUT}. Nothing here retries a request.
 *
 * @param <R> the requests
 */
abstract class MethodStreams<R extends MethodStreams.Request> extends StreamPool<MethodStreams<R>.Stream> implements AutoCloseable {
  private static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final ManagedChannel channel;
  private final String methodName;
  private final String bearer;
  /** "lookup" or "update", for messages. */
  private final String what;

  MethodStreams(ManagedChannel channel, String methodName, String bearer, String what, int width) {
    super(width);
    this.channel = channel;
    this.methodName = methodName;
    this.bearer = bearer;
    this.what = what;
  }

  /** The bytes of {@code r} (gRPC drains them into its buffers). */
  abstract InputStream write(R r);

  /** Reads the reply of {@code r} from {@code in} (on the event loop), with the stream's scratch. */
  abstract void read(R r, InputStream in, Stream stream) throws IOException;

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

  /** One request; the future completes once its reply was read. */
  abstract static class Request extends CompletableFuture<Void> {
    final long deadline;
    final int n;

    Request(long deadline, int n) {
      this.deadline = deadline;
      this.n = n;
    }
  }

  /** One open call carrying any number of requests in order. */
  final class Stream implements StreamPool.Member {
    private final ClientCall<R, R> call;
    /** Requests sent and not answered, oldest first. Guarded by this. */
    private final ArrayDeque<R> pending = new ArrayDeque<>();
    /** The first failure; once set the stream takes no more requests. Guarded by this. */
    private FlightRuntimeException failure;
    /**
     * Guards every use of the call but {@code request} (gRPC's ClientCall is not thread-safe). Lock
     * order: this lock, then the stream's monitor (the queue), released before the pool's monitor.
     */
    private final Object callLock = new Object();
    /** Scratch of the reply reader (event loop only). */
    byte[] chunk;
    /** More scratch of the reply reader (event loop only). */
    byte[] wire;

    private Stream() {
      MethodDescriptor<R, R> method = LookupMethod.descriptor(methodName, new RequestWriter(), new ReplyReader());
      this.call = channel.newCall(method, CallOptions.DEFAULT);
      // start and the first request before anyone else can see the stream
      Metadata headers = new Metadata();
      if (bearer != null) {
        headers.put(AUTHORIZATION, "Bearer " + bearer);
      }
      call.start(new ClientCall.Listener<>() {
        @Override
        public void onMessage(R r) {
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
    void send(R r) {
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
          broken = CallStatus.INTERNAL.withDescription("Cannot send " + article() + what + ": " + e).withCause(e).toRuntimeException();
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
      List<R> failed;
      synchronized (this) {
        if (failure == null) {
          failure = cause;
        }
        failed = new ArrayList<>(pending);
        pending.clear();
      }
      for (R r : failed) {
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
        for (R r : pending) {
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

    private final class RequestWriter implements MethodDescriptor.Marshaller<R> {
      @Override
      public InputStream stream(R r) {
        return write(r);
      }

      @Override
      public R parse(InputStream stream) {
        throw new UnsupportedOperationException("the client does not read requests");
      }
    }

    /** Reads a reply into the oldest pending request (on the event loop). */
    private final class ReplyReader implements MethodDescriptor.Marshaller<R> {
      @Override
      public InputStream stream(R r) {
        throw new UnsupportedOperationException("the client does not write replies");
      }

      @Override
      public R parse(InputStream in) {
        R r;
        synchronized (Stream.this) {
          r = pending.peekFirst();
        }
        if (r == null) {
          throw CallStatus.INTERNAL.withDescription("the server sent a reply to no request").toRuntimeException();
        }
        try {
          read(r, in, Stream.this);
        } catch (IOException e) {
          throw CallStatus.INTERNAL.withDescription("Cannot read " + article() + what + " reply: " + e).withCause(e).toRuntimeException();
        }
        return r;
      }
    }
  }

  private String article() {
    return what.startsWith("u") ? "an " : "a ";
  }

  static void readFully(InputStream in, byte[] into, int length) throws IOException {
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
