package io.embstore.shard;

import io.grpc.ManagedChannel;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import org.apache.arrow.flight.CallStatus;

/**
 * Long-lived, pipelined streams of the fast update method ({@link UpdateMethod}) to one server's
 * shard ({@link MethodStreams}: pooled, pipelined, failed streams never reused, requests never
 * retried).
 *
 * <p>A request is written by gRPC draining it ({@link LookupMethod.Message}) on the caller's thread:
 * the header, then the ids and the gradients straight from the caller's arrays ({@link Request#ids},
 * {@link Request#gradients}) into gRPC's buffers, through a small buffer of the thread that stays in
 * the cache, with no copy of the whole request.
 */
final class UpdateStreams extends MethodStreams<UpdateStreams.Request> {
  /** Bytes of the staging buffer a request's rows pass through on their way into gRPC's buffers. */
  private static final int CHUNK_BYTES = 64 * 1024;
  private static final ThreadLocal<ByteBuffer> CHUNK =
      ThreadLocal.withInitial(() -> ByteBuffer.allocate(CHUNK_BYTES).order(ByteOrder.LITTLE_ENDIAN));

  private final int shard;
  private final int dim;

  UpdateStreams(ManagedChannel channel, String methodName, String bearer, int shard, int dim, int width) {
    super(channel, methodName, bearer, "update", width);
    this.shard = shard;
    this.dim = dim;
  }

  /**
   * One update request of {@code n} ids at learning rate {@code lr} (NaN: the server's). {@link #ids}
   * and {@link #gradients} write pieces of it; the future completes when the server answered.
   */
  abstract static class Request extends MethodStreams.Request {
    final float lr;

    Request(long deadline, int n, float lr) {
      super(deadline, n);
      this.lr = lr;
    }

    /** Puts ids {@code from .. from + count} of the request into {@code out} (little-endian int64, at its position). */
    abstract void ids(int from, int count, ByteBuffer out);

    /** Puts the gradients of rows {@code from .. from + count} into {@code out} from index 0 (C float32 a row). */
    abstract void gradients(int from, int count, FloatBuffer out);
  }

  @Override
  InputStream write(Request r) {
    long bytes = UpdateMethod.requestBytes(r.n, dim);
    if (bytes > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("Cannot update " + r.n + " ids: a request of " + bytes + " bytes (at most 2^31 - 1)");
    }
    return new LookupMethod.Message((int) bytes, out -> {
      ByteBuffer chunk = CHUNK.get();
      byte[] array = chunk.array();
      chunk.clear();
      chunk.putInt(shard).putInt(r.n).putFloat(r.lr).putInt(0);
      int from = 0;
      do { // the header, then the ids, a chunk at a time
        int count = Math.min(r.n - from, chunk.remaining() / 8);
        r.ids(from, count, chunk);
        from += count;
        out.write(array, 0, chunk.position());
        chunk.clear();
      } while (from < r.n);
      int rowBytes = 4 * dim;
      int rowsPerChunk = Math.max(1, CHUNK_BYTES / rowBytes);
      FloatBuffer floats = chunk.asFloatBuffer();
      if (rowsPerChunk * rowBytes > CHUNK_BYTES) {
        // a row wider than the chunk: write it from a buffer of its own
        ByteBuffer wide = ByteBuffer.allocate(rowBytes).order(ByteOrder.LITTLE_ENDIAN);
        FloatBuffer wideFloats = wide.asFloatBuffer();
        for (int row = 0; row < r.n; row++) {
          r.gradients(row, 1, wideFloats);
          out.write(wide.array(), 0, rowBytes);
        }
        return;
      }
      for (int row = 0; row < r.n; row += rowsPerChunk) {
        int count = Math.min(rowsPerChunk, r.n - row);
        r.gradients(row, count, floats);
        out.write(array, 0, count * rowBytes);
      }
    });
  }

  /** Reads a reply: the rows applied. */
  @Override
  void read(Request r, InputStream in, Stream s) throws IOException {
    int size = in.available();
    if (size != UpdateMethod.REPLY_BYTES) {
      throw CallStatus.INTERNAL.withDescription("Cannot update: reply of " + size + " bytes, expected " + UpdateMethod.REPLY_BYTES)
          .toRuntimeException();
    }
    if (s.chunk == null) {
      s.chunk = new byte[UpdateMethod.REPLY_BYTES];
    }
    readFully(in, s.chunk, UpdateMethod.REPLY_BYTES);
    int rows = ByteBuffer.wrap(s.chunk).order(ByteOrder.LITTLE_ENDIAN).getInt(0);
    if (rows < 0 || rows > r.n) {
      throw CallStatus.INTERNAL.withDescription("Cannot update " + r.n + " ids: the server applied " + rows + " rows")
          .toRuntimeException();
    }
  }
}
