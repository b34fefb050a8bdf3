package io.embstore.shard;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import org.apache.arrow.flight.CallOption;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Long-lived DoExchange streams of one (endpoint, op, shard), each used by one request at a time.
 *
 * <p>Why: opening a Flight exchange costs an HTTP/2 stream setup, and Flight Java's client
 * busy-spins in {@code putNext} until a fresh stream is ready; a stream that stays open answers the
 * next batch in one round trip (the server replies one batch per request batch, in order). A request
 * takes an idle stream (or opens one), sends its batch, reads its reply and gives the stream back.
 * A stream whose state is not known (any error, a passed deadline) is closed and never reused.
 *
 * <p>The streams are opened without a gRPC deadline (it would cover the whole stream); each request
 * arms its own deadline with {@link Exchange#arm}, which cancels the stream when it passes, and the
 * request then fails with {@code TIMED_OUT}.
 */
final class ExchangePool implements AutoCloseable {
  /** Idle streams kept per pool; more are closed when given back. */
  static final int MAX_IDLE = 64;
  /** A stream whose request buffers grew past this is given back without them. */
  static final long MAX_KEPT_REQUEST_BYTES = 8L << 20;

  final String uri;
  private final FlightClient client;
  private final FlightDescriptor command;
  private final Schema requestSchema;
  private final CallOption[] options;
  private final BufferAllocator allocator;
  private final ScheduledExecutorService timer;
  private final Runnable reconnect;
  private final ConcurrentLinkedDeque<Exchange> idle = new ConcurrentLinkedDeque<>();
  private final Set<Exchange> open = ConcurrentHashMap.newKeySet();
  private volatile boolean closed;
  /** Streams opened so far, and idle streams skipped because they were no longer ready. */
  final java.util.concurrent.atomic.AtomicLong opened = new java.util.concurrent.atomic.AtomicLong();
  final java.util.concurrent.atomic.AtomicLong skipped = new java.util.concurrent.atomic.AtomicLong();

  ExchangePool(String uri, FlightClient client, FlightDescriptor command, Schema requestSchema,
      CallOption[] options, BufferAllocator allocator, ScheduledExecutorService timer, Runnable reconnect) {
    this.reconnect = reconnect;
    this.uri = uri;
    this.client = client;
    this.command = command;
    this.requestSchema = requestSchema;
    this.options = options;
    this.allocator = allocator;
    this.timer = timer;
  }

  /**
   * An idle stream, or a new one. An idle stream that is no longer ready to send (its server went
   * away or restarted while it was idle) is closed and skipped: nothing was sent on it, so skipping it
   * is safe even for updates. The channel's reconnect backoff is then reset, so that the new stream
   * reaches a restarted server at once.
   */
  Exchange take() {
    for (Exchange x; (x = idle.pollFirst()) != null; ) {
      if (x.rw.getWriter().isReady()) {
        return x;
      }
      skipped.incrementAndGet();
      x.close();
      reconnect.run(); // the server went away: connect anew now, not after the channel's backoff
    }
    return fresh();
  }

  /** A newly opened stream (for the one retry of a lookup). */
  Exchange fresh() {
    if (closed) {
      throw CallStatus.CANCELLED.withDescription("Cannot send: the client is closed").toRuntimeException();
    }
    Exchange x = new Exchange();
    opened.incrementAndGet();
    open.add(x);
    if (closed) {
      x.close();
      throw CallStatus.CANCELLED.withDescription("Cannot send: the client is closed").toRuntimeException();
    }
    return x;
  }

  /** Gives back a stream after a complete request/reply; a stream in any other state must be {@link Exchange#close}d. */
  void release(Exchange x) {
    if (closed || x.broken || idle.size() >= MAX_IDLE) {
      x.close();
      return;
    }
    long bytes = 0;
    for (org.apache.arrow.vector.FieldVector v : x.request.getFieldVectors()) {
      bytes += v.getBufferSizeFor(v.getValueCapacity());
    }
    if (bytes > MAX_KEPT_REQUEST_BYTES) {
      x.request.clear(); // a rare huge request does not pin its buffers in the pool
    }
    idle.offerFirst(x);
    if (closed && idle.remove(x)) {
      x.close();
    }
  }

  /**
   * Closes the idle streams and cancels the busy ones (their requests fail with CANCELLED and close
   * them when they give them back: their buffers are in use until then).
   */
  @Override
  public void close() {
    closed = true;
    for (Exchange x; (x = idle.pollFirst()) != null; ) {
      x.close();
    }
    for (Exchange x : open) {
      try {
        x.rw.getReader().cancel("the client is closing", null);
      } catch (RuntimeException ignored) {
        // already ended
      }
    }
  }

  private static final int BUSY = 0;
  private static final int DONE = 1;
  private static final int EXPIRED = 2;

  /** One open exchange and its request root (allocated once, grown when a batch is larger). */
  final class Exchange implements AutoCloseable {
    final FlightClient.ExchangeReaderWriter rw;
    final VectorSchemaRoot request;
    private boolean started;
    private boolean broken;
    private boolean closedHere;
    private final AtomicInteger state = new AtomicInteger(DONE);
    private ScheduledFuture<?> timeout;

    private Exchange() {
      this.request = VectorSchemaRoot.create(requestSchema, allocator);
      try {
        this.rw = client.doExchange(command, options);
      } catch (RuntimeException e) {
        request.close();
        throw e;
      }
    }

    String uri() {
      return uri;
    }

    /** Starts a request: the stream is cancelled if it is not done by {@code deadlineNanos} ({@link System#nanoTime}). */
    void arm(long deadlineNanos) {
      state.set(BUSY);
      long left = deadlineNanos - System.nanoTime();
      if (left <= 0) {
        expire();
        throw timedOut();
      }
      timeout = timer.schedule(this::expire, left, TimeUnit.NANOSECONDS);
    }

    /**
     * Sends the request root as one batch, with {@code metadata} (owned by Flight from here) when
     * not null. The first send waits (parking, not spinning) until the new stream is ready.
     */
    void send(ArrowBuf metadata) {
      try {
        if (!started) {
          awaitReady();
          rw.getWriter().start(request);
          started = true;
        }
        if (metadata != null) {
          rw.getWriter().putNext(metadata);
        } else {
          rw.getWriter().putNext();
        }
      } catch (RuntimeException e) {
        broken = true;
        throw translate(e);
      }
    }

    /** The reply to the batch just sent; valid until the next call on this stream. */
    VectorSchemaRoot receive() {
      try {
        if (!rw.getReader().next()) {
          broken = true;
          throw CallStatus.INTERNAL.withDescription("the server ended the stream without a reply").toRuntimeException();
        }
        return rw.getReader().getRoot();
      } catch (RuntimeException e) {
        broken = true;
        throw translate(e);
      }
    }

    /**
     * Ends the request's deadline. Returns normally when the request finished in time; a stream
     * whose deadline passed meanwhile was cancelled, so it is marked broken (its reply is still good).
     */
    void disarm() {
      if (timeout != null) {
        timeout.cancel(false);
        timeout = null;
      }
      if (!state.compareAndSet(BUSY, DONE)) {
        broken = true;
      }
    }

    /** Waits until a new stream can take a message or has failed; parks instead of Flight's busy spin. */
    private void awaitReady() {
      long pause = 10_000;
      while (!rw.getWriter().isReady() && !rw.getReader().hasRoot() && state.get() == BUSY) {
        LockSupport.parkNanos(pause);
        pause = Math.min(pause * 2, 1_000_000);
      }
    }

    private void expire() {
      if (state.compareAndSet(BUSY, EXPIRED)) {
        rw.getReader().cancel("deadline passed", null);
      }
    }

    private FlightRuntimeException timedOut() {
      return CallStatus.TIMED_OUT.withDescription("deadline passed before the shard answered").toRuntimeException();
    }

    private RuntimeException translate(RuntimeException e) {
      if (state.get() == EXPIRED) {
        FlightRuntimeException t = timedOut();
        t.addSuppressed(e);
        return t;
      }
      return e;
    }

    /** Cancels the stream (the server sees CANCELLED and ends its loop) and frees the request root. */
    @Override
    public synchronized void close() {
      if (closedHere) {
        return;
      }
      closedHere = true;
      broken = true;
      open.remove(this);
      if (timeout != null) {
        timeout.cancel(false);
      }
      try {
        rw.close();
      } catch (Exception ignored) {
        // the stream is discarded either way; its error was (or will never be) reported by a request
      }
      request.close();
    }
  }
}
