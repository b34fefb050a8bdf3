package io.embstore.shard;

import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.Status;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.grpc.MetadataAdapter;
import org.apache.arrow.flight.grpc.StatusUtils;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server side of {@link LookupMethod}: answers each request on the gRPC event loop that
 * delivered it (the server runs gRPC with a direct executor), gathering the rows from the shard
 * straight into gRPC's buffers. Flow control: the next request of a stream is read only when gRPC
 * can take another reply, so replies that a slow client does not read never pile up in the server.
 */
final class LookupService extends MethodService {
  private static final Logger LOG = LoggerFactory.getLogger(LookupService.class);

  private final ShardServer server;
  private final BufferAllocator allocator;

  /** Checks each stream's bearer token (Flight's auth middleware covers the Flight service only); null: no auth. */
  private final TokenAuthenticator tokens;

  LookupService(ShardServer server, TokenAuthenticator tokens, BufferAllocator allocator) {
    this.server = server;
    this.tokens = tokens;
    this.allocator = allocator;
  }

  /** Requests arrive as byte arrays (8 + 8n bytes: small); replies are drained into gRPC's buffers. */
  private static final MethodDescriptor.Marshaller<byte[]> REQUEST = new MethodDescriptor.Marshaller<>() {
    @Override
    public InputStream stream(byte[] value) {
      return new java.io.ByteArrayInputStream(value);
    }

    @Override
    public byte[] parse(InputStream stream) {
      try {
        return stream.readAllBytes();
      } catch (IOException e) {
        throw CallStatus.INTERNAL.withDescription("Cannot read a lookup request: " + e).toRuntimeException();
      }
    }
  };

  private static final MethodDescriptor.Marshaller<LookupMethod.Message> REPLY = new MethodDescriptor.Marshaller<>() {
    @Override
    public InputStream stream(LookupMethod.Message value) {
      return value;
    }

    @Override
    public LookupMethod.Message parse(InputStream stream) {
      throw new UnsupportedOperationException("the server does not read replies");
    }
  };

  ServerMethodDefinition<byte[], LookupMethod.Message> method() {
    ServerCallHandler<byte[], LookupMethod.Message> handler = (call, headers) -> {
      Stream s = new Stream(call);
      if (!open(s)) {
        return s;
      }
      if (tokens != null) {
        try {
          tokens.authenticate(new MetadataAdapter(headers)); // any valid token may look up
        } catch (FlightRuntimeException e) {
          s.close(StatusUtils.toGrpcStatus(e.status()));
          return s;
        }
      }
      s.start();
      return s;
    };
    return ServerMethodDefinition.create(LookupMethod.descriptor(LookupMethod.NAME, REQUEST, REPLY), handler);
  }

  /** One client stream. Every use of the call is under this object's lock (gRPC calls are not thread-safe). */
  private final class Stream extends ServerCall.Listener<byte[]> implements MethodService.ClosableStream {
    private final ServerCall<byte[], LookupMethod.Message> call;
    /** The request's ids, as the shard's checks and gathers read them; grown as needed. */
    private ArrowBuf ids;
    /** Rows are gathered here on their way into gRPC's buffers. */
    private final byte[] chunk = new byte[64 * 1024];
    private boolean closed;
    /** A request was answered while gRPC could take no more: read the next one when it can. */
    private boolean waitingForReady;

    Stream(ServerCall<byte[], LookupMethod.Message> call) {
      this.call = call;
    }

    synchronized void start() {
      call.sendHeaders(new Metadata());
      call.request(1);
    }

    @Override
    public void onMessage(byte[] request) {
      busy.incrementAndGet();
      try {
        synchronized (this) {
          if (closed) {
            return;
          }
          answer(request);
          if (call.isReady()) {
            call.request(1);
          } else {
            waitingForReady = true;
          }
        }
      } catch (FlightRuntimeException e) {
        close(StatusUtils.toGrpcStatus(e.status()));
      } catch (org.apache.arrow.memory.OutOfMemoryException | OutOfMemoryError e) {
        LOG.warn("lookup ran out of memory", e);
        close(Status.RESOURCE_EXHAUSTED.withDescription(
            "Cannot look up: out of memory (" + e.getMessage() + "); retry later or send smaller batches"));
      } catch (RuntimeException e) {
        LOG.warn("lookup failed", e);
        close(Status.INTERNAL.withDescription("Cannot look up: " + e));
      } finally {
        busy.decrementAndGet();
      }
    }

    /** Checks one request as the lookup exchange does and sends its reply. */
    private void answer(byte[] request) {
      ByteBuffer b = ByteBuffer.wrap(request).order(ByteOrder.LITTLE_ENDIAN);
      if (request.length < LookupMethod.HEADER_BYTES) {
        throw ShardErrors.invalid("Cannot look up: request of " + request.length + " bytes (at least " + LookupMethod.HEADER_BYTES + ")");
      }
      int word = b.getInt(0);
      boolean stored = (word & LookupMethod.STORED_ROWS) != 0;
      int shard = word & ~LookupMethod.STORED_ROWS;
      int n = b.getInt(4);
      if (n < 0 || request.length != LookupMethod.HEADER_BYTES + 8L * n) {
        throw ShardErrors.invalid("Cannot look up " + n + " ids: request of " + request.length + " bytes (expected "
            + LookupMethod.HEADER_BYTES + " + 8 x ids)");
      }
      HostedShard h = server.hosted(shard, "look up ids on");
      server.checkLookup(h, n);
      if (ids == null || ids.capacity() < 8L * n) {
        if (ids != null) {
          ids.close();
        }
        ids = allocator.buffer(Math.max(8L * n, 4096));
      }
      ids.setBytes(0, request, LookupMethod.HEADER_BYTES, 8L * n);
      h.checkIds(ids, n, "look up");
      ArrowBuf idsNow = ids;
      if (stored) {
        call.sendMessage(new LookupMethod.Message(Math.toIntExact(n * h.storedRowBytes), out -> h.writeStoredRows(idsNow, n, out, chunk)));
      } else {
        call.sendMessage(new LookupMethod.Message(Math.toIntExact(n * h.rowBytes), out -> h.writeRows(idsNow, n, out, chunk)));
      }
    }

    @Override
    public void onReady() {
      synchronized (this) {
        if (waitingForReady && !closed) {
          waitingForReady = false;
          call.request(1);
        }
      }
    }

    @Override
    public void onHalfClose() {
      close(Status.OK);
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
          LOG.debug("Cannot close a lookup stream: {}", e.toString()); // already cancelled
        }
      }
      release();
    }

    private synchronized void release() {
      closed = true;
      streams.remove(this);
      if (ids != null) {
        ids.close();
        ids = null;
      }
    }
  }
}
