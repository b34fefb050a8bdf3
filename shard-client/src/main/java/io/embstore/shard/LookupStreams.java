package io.embstore.shard;

import io.grpc.ManagedChannel;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import org.apache.arrow.flight.CallStatus;

/**
 * Long-lived, pipelined streams of the fast lookup method ({@link LookupMethod}) to one server's
 * shard ({@link MethodStreams}: pooled, pipelined, failed streams never reused).
 *
 * <p>Each reply is read on the event loop: its rows go from gRPC's buffers straight to the rows of
 * the request that owns the reply ({@link Request#rows}), through a small buffer that stays in the
 * cache (16-bit and int8 rows widened on the way).
 */
final class LookupStreams extends MethodStreams<LookupStreams.Request> {
  private final int shard;
  private final int rowBytes;
  /** The rows of the replies: float32, or a 16-bit or int8 type that {@link #read} decodes. */
  private final io.embstore.format.ValueType wireType;
  private final int wireRowBytes;
  private static final java.lang.invoke.VarHandle SHORT_LE =
      java.lang.invoke.MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);
  private static final java.lang.invoke.VarHandle INT_LE =
      java.lang.invoke.MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

  LookupStreams(ManagedChannel channel, String methodName, String bearer, int shard, int dim,
      io.embstore.format.ValueType wireType, int width) {
    super(channel, methodName, bearer, "lookup", width);
    this.shard = shard;
    this.rowBytes = dim * 4;
    this.wireType = wireType;
    this.wireRowBytes = Math.toIntExact(wireType.rowBytes(dim));
  }

  /**
   * One lookup request of {@code n} ids. {@link #ids} writes them; {@link #rows} takes the reply's
   * rows in pieces (rows {@code first .. first + count} of the reply, little-endian float32 in {@code
   * floats}, also as {@code bytes}), on the event loop; then the future completes.
   */
  abstract static class Request extends MethodStreams.Request {
    Request(long deadline, int n) {
      super(deadline, n);
    }

    /** Puts the n ids into {@code out} (little-endian int64, at its position). */
    abstract void ids(ByteBuffer out);

    abstract void rows(ByteBuffer bytes, FloatBuffer floats, int first, int count);
  }

  /** A request: shard, n, ids. */
  @Override
  InputStream write(Request r) {
    int bytes = LookupMethod.HEADER_BYTES + 8 * r.n;
    return new LookupMethod.Message(bytes, out -> {
      ByteBuffer b = ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
      b.putInt(wireType.isCompact() ? shard | LookupMethod.STORED_ROWS : shard).putInt(r.n);
      r.ids(b);
      out.write(b.array());
    });
  }

  /** Reads a reply into its request's rows (on the event loop). */
  @Override
  void read(Request r, InputStream in, Stream s) throws IOException {
    int size = in.available();
    long expected = (long) r.n * wireRowBytes;
    if (size != expected) {
      throw CallStatus.INTERNAL.withDescription("Cannot look up: reply of " + size + " bytes, expected " + expected
          + " (" + r.n + " rows of " + wireRowBytes + " bytes)").toRuntimeException();
    }
    int rowsPerChunk = Math.max(1, (64 * 1024) / rowBytes);
    if (s.chunk == null || s.chunk.length < rowsPerChunk * rowBytes) {
      s.chunk = new byte[rowsPerChunk * rowBytes];
    }
    byte[] chunk = s.chunk;
    ByteBuffer bytes = ByteBuffer.wrap(chunk).order(ByteOrder.LITTLE_ENDIAN);
    FloatBuffer floats = bytes.asFloatBuffer();
    if (wireType.isCompact() && (s.wire == null || s.wire.length < rowsPerChunk * wireRowBytes)) {
      s.wire = new byte[rowsPerChunk * wireRowBytes];
    }
    for (int first = 0; first < r.n; first += rowsPerChunk) {
      int count = Math.min(rowsPerChunk, r.n - first);
      if (wireType.isCompact()) {
        readFully(in, s.wire, count * wireRowBytes);
        widen(s.wire, chunk, count);
      } else {
        readFully(in, chunk, count * rowBytes);
      }
      r.rows(bytes, floats, first, count);
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
}
