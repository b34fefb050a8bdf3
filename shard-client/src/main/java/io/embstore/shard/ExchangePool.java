package io.embstore.shard;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
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
 * Long-lived, pipelined DoExchange streams of one (endpoint, op, shard).
 *
 * <p>Why: opening a Flight exchange costs an HTTP/2 stream setup, and a request that waits for its
 * reply before the next one is sent pays a whole round trip (several thread hand-offs on client and
 * server) per batch. A {@link Pipe} keeps one exchange open and carries many request batches at
 * once: a sender writes its batch and queues a {@link Request}; the server answers one batch per
 * request batch, in order (docs/protocol.md), so the oldest queued request owns the next reply.
 *
 * <p>Replies are read by whoever holds the pipe's reader role: a blocking caller takes it and reads
 * until its own reply has come (no thread hand-off on the common path); when no caller reads, a task
 * on the client's executor does. The role is given up while a request's future completes, so user
 * code that runs on completion may itself send and read.
 *
 * <p>Every request has a deadline; {@link #expire} (run periodically by the client) fails a pipe whose
 * oldest unanswered request is overdue: its requests fail with {@code TIMED_OUT} and its stream is
 * cancelled. A pipe in an unknown state (any error) fails all its queued requests and is never used
 * again. Request batches are written into one request root per pipe, under the send lock: Flight
 * copies a batch into gRPC's buffers inside {@code putNext} once the stream is ready (we wait for
 * that, parking, instead of Flight's busy spin), so the root can take the next batch at once.
 */
final class ExchangePool extends StreamPool<ExchangePool.Pipe> implements AutoCloseable {
  /** A pipe whose request buffers grew past this frees them after the batch. */
  static final long MAX_KEPT_REQUEST_BYTES = 8L << 20;

  final String uri;
  private final FlightClient client;
  private final FlightDescriptor command;
  private final Schema requestSchema;
  private final CallOption[] options;
  private final BufferAllocator allocator;
  private final Executor executor;
  private final Runnable reconnect;
  /** Idle streams skipped because they were no longer ready. */
  final AtomicLong skipped = new AtomicLong();

  ExchangePool(String uri, FlightClient client, FlightDescriptor command, Schema requestSchema,
      CallOption[] options, BufferAllocator allocator, Executor executor, Runnable reconnect, int width) {
    super(width);
    this.uri = uri;
    this.client = client;
    this.command = command;
    this.requestSchema = requestSchema;
    this.options = options;
    this.allocator = allocator;
    this.executor = executor;
    this.reconnect = reconnect;
  }

  /**
   * A pipe to send on ({@link StreamPool#take}). An idle pipe that is no longer ready to send (its
   * server went away or restarted while it was idle) is failed and skipped: nothing was sent on it,
   * so skipping it is safe even for updates; the channel's reconnect backoff is then reset so that a
   * new stream reaches a restarted server at once.
   */
  @Override
  boolean usable(Pipe idle) {
    return idle.stillReady();
  }

  @Override
  void dropped(Pipe idle) {
    skipped.incrementAndGet();
    idle.fail(CallStatus.UNAVAILABLE.withDescription("the stream ended while idle").toRuntimeException());
    reconnect.run();
  }

  @Override
  Pipe open() {
    return new Pipe();
  }

  /**
   * Fails every pipe (queued requests fail with CANCELLED) and waits up to {@code millis} until each
   * has freed its buffers (a pipe being read or written frees them when its user is done).
   */
  void close(long millis) {
    List<Pipe> all = closeAll();
    for (Pipe p : all) {
      p.fail(CallStatus.CANCELLED.withDescription("the client is closing").toRuntimeException());
    }
    long until = System.nanoTime() + millis * 1_000_000L;
    for (Pipe p : all) {
      while (!p.disposed() && System.nanoTime() < until) {
        LockSupport.parkNanos(1_000_000);
      }
    }
  }

  @Override
  public void close() {
    close(5_000);
  }

  /**
   * One request batch waiting for its reply: {@link #onReply} consumes the reply (on the reading
   * thread, before the stream's next reply replaces it), then the future completes. Failing the pipe
   * completes it exceptionally.
   */
  abstract static class Request extends CompletableFuture<Void> {
    final long deadline;

    Request(long deadline) {
      this.deadline = deadline;
    }

    /** Consumes the reply batch (valid only during this call); throws if it is not the expected reply. */
    abstract void onReply(VectorSchemaRoot reply);
  }

  /** The pipe whose reply the current thread is completing (its reader loop goes on reading after). */
  private static final ThreadLocal<Pipe> COMPLETING = new ThreadLocal<>();

  /** One open exchange carrying any number of request batches in order. */
  final class Pipe implements StreamPool.Member {
    private final FlightClient.ExchangeReaderWriter rw;
    private final VectorSchemaRoot request;
    /** Guards the request root, the writer and {@link #started}. */
    private final ReentrantLock sendLock = new ReentrantLock();
    private boolean started;
    /** Requests sent (or being sent) and not answered, oldest first. Guarded by this. */
    private final ArrayDeque<Request> pending = new ArrayDeque<>();
    /** Whether some thread holds (or was given) the reader role. Guarded by this. */
    private boolean reading;
    /** The first failure; once set the pipe takes no more requests. Guarded by this. */
    private FlightRuntimeException failure;
    private volatile boolean disposed;
    /** The request root was closed (under the send lock, once the pipe failed). */
    private boolean requestFreed;

    private Pipe() {
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

    /** Requests waiting for replies, or -1 when the pipe failed. */
    @Override
    public synchronized int load() {
      return failure != null ? -1 : pending.size();
    }

    /** False when a started stream can no longer send (for idle pipes: its server went away). */
    private boolean stillReady() {
      if (!sendLock.tryLock()) {
        return true; // a sender is busy with it: not idle after all
      }
      try {
        return !started || rw.getWriter().isReady();
      } finally {
        sendLock.unlock();
      }
    }

    boolean disposed() {
      return disposed;
    }

    /**
     * Writes one batch with {@code fill} (which fills the request root and sets its row count) and
     * sends it with {@code metadata} (owned by this call), queueing {@code r} for the reply. Never
     * throws for stream errors: they fail {@code r} (and the pipe). Does not read: call {@link #await}
     * or {@link #readInBackground} after.
     */
    void send(Request r, Consumer<VectorSchemaRoot> fill, ArrowBuf metadata) {
      sendLock.lock();
      try {
        FlightRuntimeException failed;
        synchronized (this) {
          failed = failure;
        }
        if (failed != null) {
          if (metadata != null) {
            metadata.close();
          }
          r.completeExceptionally(failed);
          return;
        }
        try {
          fill.accept(request);
        } catch (RuntimeException | OutOfMemoryError e) {
          if (metadata != null) {
            metadata.close();
          }
          r.completeExceptionally(e); // nothing was sent: the pipe stays good
          return;
        }
        synchronized (this) {
          pending.addLast(r);
        }
        ArrowBuf owned = metadata;
        try {
          awaitReady(r.deadline);
          if (!started) {
            rw.getWriter().start(request);
            started = true;
          }
          owned = null;
          if (metadata != null) {
            rw.getWriter().putNext(metadata);
          } else {
            rw.getWriter().putNext();
          }
        } catch (RuntimeException e) {
          if (owned != null) {
            owned.close();
          }
          fail(asFlight(e));
        }
        trimRequest();
      } finally {
        sendLock.unlock();
      }
      disposeIfDone();
    }

    /** Frees the request buffers of a rare huge batch instead of keeping them with the pipe. */
    private void trimRequest() {
      long bytes = 0;
      for (org.apache.arrow.vector.FieldVector v : request.getFieldVectors()) {
        bytes += v.getBufferSizeFor(v.getValueCapacity());
      }
      if (bytes > MAX_KEPT_REQUEST_BYTES) {
        request.clear();
      }
    }

    /** Waits, parking, until the stream can take a message (a new stream is being set up; or gRPC's buffer is full). */
    private void awaitReady(long deadline) {
      long pause = 10_000;
      while (!rw.getWriter().isReady()) {
        synchronized (this) {
          if (failure != null) {
            throw failure;
          }
        }
        if (System.nanoTime() - deadline > 0) {
          throw timedOut("deadline passed before the shard took the request");
        }
        if (!started && rw.getReader().hasRoot()) {
          rw.getReader().getRoot(); // throws the stream's error when it failed before it was set up
        }
        LockSupport.parkNanos(pause);
        pause = Math.min(pause * 2, 1_000_000);
      }
    }

    /**
     * Waits for {@code r}'s reply, reading replies of this pipe (and completing their requests) while
     * no other thread does. Returns when {@code r} is done (successfully or not).
     */
    void await(Request r) {
      if (!r.isDone() && tryRead()) {
        readLoop(r);
      }
      try {
        r.join();
      } catch (RuntimeException e) {
        // the caller reads the outcome from r
      }
    }

    /** Makes sure someone reads this pipe's replies, starting a reader task if nobody does. */
    void readInBackground() {
      if (COMPLETING.get() == this) {
        return; // called from a completion on this pipe's reading thread, which reads on afterwards
      }
      if (tryRead()) {
        startReader();
      }
    }

    private synchronized boolean tryRead() {
      if (reading || failure != null || pending.isEmpty()) {
        return false;
      }
      reading = true;
      return true;
    }

    /** Runs {@link #readLoop} on the executor for a thread that took the reader role for it. */
    private void startReader() {
      try {
        executor.execute(() -> readLoop(null));
      } catch (RejectedExecutionException e) {
        synchronized (this) {
          reading = false;
        }
        fail(CallStatus.CANCELLED.withDescription("the client is closing").toRuntimeException());
        disposeIfDone();
      }
    }

    /**
     * Reads replies in order while this thread holds the reader role, until {@code until} is done (or,
     * when null, until no request is waiting). Hands the role to a background reader when it stops
     * with requests still waiting.
     */
    private void readLoop(Request until) {
      while (true) {
        Request r;
        boolean ok;
        try {
          ok = rw.getReader().next();
        } catch (RuntimeException e) {
          fail(asFlight(e));
          break;
        }
        if (!ok) {
          fail(CallStatus.INTERNAL.withDescription("the server ended the stream without a reply").toRuntimeException());
          break;
        }
        synchronized (this) {
          r = pending.pollFirst();
        }
        if (r == null) {
          // a reply nobody waits for: the pipe failed meanwhile (its requests were failed), or the
          // server sent more replies than requests
          fail(CallStatus.INTERNAL.withDescription("the server sent a reply to no request").toRuntimeException());
          break;
        }
        try {
          r.onReply(rw.getReader().getRoot());
        } catch (RuntimeException e) {
          r.completeExceptionally(e);
          fail(asFlight(e));
          break;
        }
        synchronized (this) {
          reading = false;
        }
        Pipe outer = COMPLETING.get();
        COMPLETING.set(this);
        try {
          r.complete(null); // may run the caller's code, which may use this pipe: the role is free
        } finally {
          COMPLETING.set(outer);
        }
        if (until != null && until.isDone()) {
          if (tryRead()) {
            startReader(); // replies still due: someone must read them
          }
          disposeIfDone();
          return;
        }
        if (!tryRead()) {
          disposeIfDone();
          return; // nothing waits, or another thread took the role
        }
      }
      synchronized (this) {
        reading = false;
      }
      disposeIfDone();
    }

    /** Fails the pipe when its oldest overdue request passed its deadline: everything queued fails with TIMED_OUT. */
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
      fail(timedOut("deadline passed before the shard answered"));
    }

    /**
     * Marks the pipe failed (the first cause wins), fails every queued request with the cause and
     * cancels the stream. Thread-safe; the buffers are freed by the last user.
     */
    void fail(FlightRuntimeException cause) {
      List<Request> failed;
      synchronized (this) {
        if (failure != null) {
          return;
        }
        failure = cause;
        failed = new ArrayList<>(pending);
        pending.clear();
      }
      try {
        rw.getReader().cancel(cause.status().code() + ": " + cause.getMessage(), null);
      } catch (RuntimeException ignored) {
        // already ended
      }
      for (Request r : failed) {
        r.completeExceptionally(cause);
      }
      remove(this);
      disposeIfDone();
    }

    /** Once the pipe failed: frees the request root when nobody writes, and the stream when nobody reads either. */
    private void disposeIfDone() {
      synchronized (this) {
        if (failure == null || disposed) {
          return;
        }
      }
      if (!sendLock.tryLock()) {
        return; // the sender disposes when it is done
      }
      try {
        // No batch is written after a failure (send checks it under the send lock), so the request
        // buffers go now, even while a reader still waits for the cancelled stream to end.
        if (!requestFreed) {
          requestFreed = true;
          request.close();
        }
        synchronized (this) {
          if (reading || disposed) {
            return;
          }
          disposed = true;
        }
        try {
          rw.close();
        } catch (Exception ignored) {
          // the stream is discarded either way; its error was (or will never be) reported by a request
        }
      } finally {
        sendLock.unlock();
      }
    }
  }

  static FlightRuntimeException timedOut(String why) {
    return CallStatus.TIMED_OUT.withDescription(why).toRuntimeException();
  }

  private static FlightRuntimeException asFlight(RuntimeException e) {
    if (e instanceof FlightRuntimeException) {
      return (FlightRuntimeException) e;
    }
    return CallStatus.INTERNAL.withDescription(e.toString()).withCause(e).toRuntimeException();
  }
}
