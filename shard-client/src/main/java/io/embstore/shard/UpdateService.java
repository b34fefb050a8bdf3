package io.embstore.shard;

import io.grpc.HasByteBuffer;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.Status;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.grpc.MetadataAdapter;
import org.apache.arrow.flight.grpc.StatusUtils;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server side of {@link UpdateMethod}: applies each request on the gRPC event loop that
 * delivered it (the server runs gRPC with a direct executor). A request's bytes are read once from
 * gRPC's buffers into an off-heap buffer of the stream (from the server's allocator, grown as needed,
 * freed with the stream), checked as the update exchange checks them, then logged and applied by
 * {@link HostedShard} as the exchange does ({@link ShardProducer#applyDeduplicated}).
 *
 * <p>Replies go in request order. A shard whose write-ahead log syncs {@code always} is answered once
 * the record is on disk: the log's syncer runs the stream's {@link Stream#drain} when an fsync covers
 * it (as the exchange's deferred replies), so the event loop never waits for an fsync and the requests
 * a client pipelines share one. Flow control: the next request of a stream is read only when gRPC can
 * take another reply, so a client that does not read replies cannot make the server buffer requests.
 */
final class UpdateService extends MethodService {
  private static final Logger LOG = LoggerFactory.getLogger(UpdateService.class);

  private final ShardServer server;
  private final BufferAllocator allocator;
  /** Checks each stream's bearer token; null: no auth. */
  private final TokenAuthenticator tokens;
  /** Requests applied so far (tests: which path an update took). */
  final java.util.concurrent.atomic.LongAdder applied = new java.util.concurrent.atomic.LongAdder();

  UpdateService(ShardServer server, TokenAuthenticator tokens, BufferAllocator allocator) {
    this.server = server;
    this.tokens = tokens;
    this.allocator = allocator;
  }

  /** Requests stay gRPC's stream: {@link Stream#onMessage} reads it into its buffer before gRPC frees it. */
  private static final MethodDescriptor.Marshaller<InputStream> REQUEST = new MethodDescriptor.Marshaller<>() {
    @Override
    public InputStream stream(InputStream value) {
      return value;
    }

    @Override
    public InputStream parse(InputStream stream) {
      return stream;
    }
  };

  private static final MethodDescriptor.Marshaller<Integer> REPLY = new MethodDescriptor.Marshaller<>() {
    @Override
    public InputStream stream(Integer rows) {
      byte[] b = new byte[UpdateMethod.REPLY_BYTES];
      ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(rows);
      return new ByteArrayInputStream(b);
    }

    @Override
    public Integer parse(InputStream stream) {
      throw new UnsupportedOperationException("the server does not read replies");
    }
  };

  ServerMethodDefinition<InputStream, Integer> method() {
    ServerCallHandler<InputStream, Integer> handler = (call, headers) -> {
      Stream s = new Stream(call);
      if (!open(s)) {
        return s;
      }
      if (tokens != null) {
        try {
          s.mayWrite = TokenAuthenticator.WRITE.equals(tokens.authenticate(new MetadataAdapter(headers)).getPeerIdentity());
        } catch (FlightRuntimeException e) {
          s.close(StatusUtils.toGrpcStatus(e.status()));
          return s;
        }
      }
      s.start();
      return s;
    };
    return ServerMethodDefinition.create(LookupMethod.descriptor(UpdateMethod.NAME, REQUEST, REPLY), handler);
  }

  /** A request applied and not yet answered: its log (null: none to wait for), its record's ticket, its rows. */
  private record Applied(ShardLog log, HostedShard shard, long ticket, int rows) {}

  /** One client stream. Every use of the call and the buffer is under this object's lock. */
  private final class Stream extends ServerCall.Listener<InputStream> implements MethodService.ClosableStream {
    private final ServerCall<InputStream, Integer> call;
    /** Whether the stream's token is the write token (always, without auth). */
    private boolean mayWrite = true;
    private final byte[] header = new byte[UpdateMethod.HEADER_BYTES];
    /** The ids and gradients of the request being applied; grown as needed. */
    private ArrowBuf body;
    /** For a request whose bytes gRPC cannot hand out as a ByteBuffer. */
    private byte[] scratch;
    /** Requests applied and not answered, oldest first. */
    private final ArrayDeque<Applied> unanswered = new ArrayDeque<>();
    /** The status that ends the stream once the requests applied before the failing one are answered. */
    private Status failing;
    private boolean closed;
    /** A request was applied while gRPC could take no more: read the next one when it can. */
    private boolean waitingForReady;

    Stream(ServerCall<InputStream, Integer> call) {
      this.call = call;
    }

    synchronized void start() {
      call.sendHeaders(new Metadata());
      call.request(1);
    }

    @Override
    public void onMessage(InputStream request) {
      busy.incrementAndGet();
      try {
        synchronized (this) {
          if (closed || failing != null) {
            return;
          }
          apply(request);
          if (closed || failing != null) {
            return;
          }
          if (call.isReady()) {
            call.request(1);
          } else {
            waitingForReady = true;
          }
        }
      } catch (FlightRuntimeException e) {
        fail(StatusUtils.toGrpcStatus(e.status()));
      } catch (org.apache.arrow.memory.OutOfMemoryException | OutOfMemoryError e) {
        LOG.warn("update ran out of memory", e);
        fail(Status.RESOURCE_EXHAUSTED.withDescription(
            "Cannot update: out of memory (" + e.getMessage() + "); retry later or send smaller batches"));
      } catch (RuntimeException e) {
        LOG.warn("update failed", e);
        fail(Status.INTERNAL.withDescription("Cannot update: " + e));
      } finally {
        busy.decrementAndGet();
      }
    }

    /** Checks one request as the update exchange does, applies it and queues its reply. */
    private void apply(InputStream in) {
      try {
        int length = in.available();
        if (length < UpdateMethod.HEADER_BYTES) {
          throw ShardErrors.invalid("Cannot update: request of " + length + " bytes (at least " + UpdateMethod.HEADER_BYTES
              + ": shard, n, lr, reserved)");
        }
        MethodStreams.readFully(in, header, UpdateMethod.HEADER_BYTES);
        ByteBuffer h = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
        int shard = h.getInt(0);
        int n = h.getInt(4);
        float lr = h.getFloat(8);
        int reserved = h.getInt(12);
        if (server.authEnabled() && !mayWrite) {
          throw ShardErrors.unauthorized("Cannot update shard " + shard + ": the token is read-only (updates and snapshots need the write token)");
        }
        HostedShard hs = server.hosted(shard, "update");
        if (n < 0) {
          throw ShardErrors.invalid("Cannot update " + n + " ids: a negative count (the request header's n)");
        }
        server.checkIdCount(n, "update");
        long expected = UpdateMethod.requestBytes(n, hs.dim);
        if (length != expected) {
          throw ShardErrors.invalid("Cannot update " + n + " ids: request of " + length + " bytes (expected "
              + UpdateMethod.HEADER_BYTES + " + 8 x ids + 4 x " + hs.dim + " x ids = " + expected + ")");
        }
        if (reserved != 0) {
          throw ShardErrors.invalid("Cannot update: reserved header word " + reserved + " (must be 0)");
        }
        double rate = Float.isNaN(lr) ? hs.optimizer.lr() : lr;
        ShardProducer.checkLearningRate(rate);
        hs.checkUpdatable();
        long bytes = length - UpdateMethod.HEADER_BYTES;
        if (body == null || body.capacity() < bytes) {
          if (body != null) {
            body.close();
            body = null;
          }
          body = allocator.buffer(Math.max(bytes, 64 * 1024));
        }
        read(in, bytes);
        long ids = body.memoryAddress();
        long grads = ids + 8L * n;
        hs.checkIds(ids, n, "update");
        ShardProducer.checkFinite(ids, grads, n, hs.dim);
        long[] ticket = new long[1];
        int rows = ShardProducer.applyDeduplicated(hs, ids, grads, n, (float) rate, ticket, allocator);
        applied.increment();
        ShardLog log = hs.log();
        boolean deferred = log != null && log.sync == ShardLog.Sync.ALWAYS;
        unanswered.addLast(new Applied(deferred ? log : null, hs, ticket[0], rows));
        if (deferred) {
          log.whenDurable(ticket[0], this::drain); // at once when it already is
        } else {
          drain();
        }
      } catch (IOException e) {
        throw ShardErrors.internal("Cannot read an update request: " + e, e);
      }
    }

    /**
     * Copies {@code bytes} bytes of the request into {@link #body}: straight from gRPC's buffers
     * when it hands them out (one copy), else through {@link #scratch}.
     */
    private void read(InputStream in, long bytes) throws IOException {
      long done = 0;
      while (done < bytes) {
        int want = (int) Math.min(Integer.MAX_VALUE, bytes - done);
        ByteBuffer b = in instanceof HasByteBuffer hb && hb.byteBufferSupported() ? hb.getByteBuffer() : null;
        if (b != null && b.hasRemaining()) {
          int len = Math.min(b.remaining(), want);
          ByteBuffer part = b.duplicate();
          part.limit(part.position() + len);
          body.setBytes(done, part);
          long skipped = in.skip(len);
          if (skipped != len) {
            throw new IOException("skipped " + skipped + " of " + len + " bytes");
          }
          done += len;
          continue;
        }
        if (scratch == null) {
          scratch = new byte[64 * 1024];
        }
        int got = in.read(scratch, 0, Math.min(scratch.length, want));
        if (got < 0) {
          throw new IOException("request ended after " + (UpdateMethod.HEADER_BYTES + done) + " of "
              + (UpdateMethod.HEADER_BYTES + bytes) + " bytes");
        }
        body.setBytes(done, scratch, 0, got);
        done += got;
      }
    }

    /**
     * Sends the replies of the oldest requests that are durable, in order; ends the stream when a log
     * failed, or when a failed request waited for them. Runs on the event loop, or on a log's syncer
     * (it never blocks: gRPC queues the replies).
     */
    synchronized void drain() {
      while (!closed && !unanswered.isEmpty()) {
        Applied a = unanswered.peekFirst();
        if (a.log() != null && !a.log().isDurable(a.ticket())) {
          IOException f = a.log().failure();
          if (f != null) {
            FlightRuntimeException e = a.shard().syncFailure(f);
            close(StatusUtils.toGrpcStatus(e.status()));
          }
          return;
        }
        unanswered.pollFirst();
        try {
          call.sendMessage(a.rows());
        } catch (RuntimeException e) {
          LOG.debug("Cannot answer an update: {}", e.toString()); // the call was cancelled
          close(Status.CANCELLED.withDescription("Cannot answer an update: " + e));
          return;
        }
      }
      if (failing != null && unanswered.isEmpty()) {
        close(failing);
      }
    }

    /** Ends the stream with {@code status} once the requests applied before are answered. */
    private void fail(Status status) {
      synchronized (this) {
        if (failing == null) {
          failing = status;
        }
      }
      drain();
    }

    @Override
    public void onReady() {
      synchronized (this) {
        if (waitingForReady && !closed && failing == null) {
          waitingForReady = false;
          call.request(1);
        }
      }
    }

    @Override
    public void onHalfClose() {
      fail(Status.OK);
    }

    @Override
    public void onCancel() {
      release();
    }

    @Override
    public void onComplete() {
      release();
    }

    @Override
    public void close(Status status) {
      synchronized (this) {
        if (closed) {
          return;
        }
        closed = true;
        try {
          call.close(status, new Metadata());
        } catch (RuntimeException e) {
          LOG.debug("Cannot close an update stream: {}", e.toString()); // already cancelled
        }
      }
      release();
    }

    private synchronized void release() {
      closed = true;
      unanswered.clear();
      streams.remove(this);
      if (body != null) {
        body.close();
        body = null;
      }
    }
  }
}
