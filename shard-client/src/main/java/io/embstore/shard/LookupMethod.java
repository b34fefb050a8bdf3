package io.embstore.shard;

import io.grpc.Drainable;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * The fast lookup: one gRPC method that a shard server offers on its Flight port next to the Flight
 * service, for clients that want lookups without Flight's per-message work. A bidi stream of
 * requests, each answered by one reply, in order (like a lookup exchange):
 *
 * <ul>
 *   <li>request: little-endian {@code int32 shard}, {@code int32 n}, then {@code n} x {@code int64}
 *       ids (8 + 8n bytes);
 *   <li>reply: the n rows, {@code n x C} little-endian float32, in request order.
 * </ul>
 *
 * Same checks, limits, counters and status codes as the {@code lookup} exchange; the bearer token
 * goes in the {@code authorization} header as for every Flight call. A server announces the method
 * in {@code describe} ({@code lookupMethod}); Flight clients keep using the lookup exchange, which
 * every server still serves. Why: the exchange hands each request from the event loop to Flight's
 * handler thread and back, and frames every batch as Arrow IPC; this method is answered on the
 * event loop and its reply is copied from the shard straight into gRPC's buffers, and on the client
 * from gRPC's buffers straight into the caller's rows ({@code docs/protocol.md}, "Fast lookups").
 */
final class LookupMethod {
  static final String SERVICE = "embstore.Shard";
  static final String NAME = SERVICE + "/Lookup";
  /** Bytes of a request before its ids. */
  static final int HEADER_BYTES = 8;
  /**
   * Bit of a request's shard word asking for the rows as the server holds them (a 16-bit table's
   * 2 bytes a value) instead of float32; shard indexes are below 2^16, so the bit is free, and a
   * server that does not know it answers NOT_FOUND for the shard instead of misreading it.
   */
  static final int STORED_ROWS = 1 << 30;

  private LookupMethod() {}

  /** The method {@code name} with the given marshallers (servers and clients each bring their own message types). */
  static <Q, R> MethodDescriptor<Q, R> descriptor(String name, MethodDescriptor.Marshaller<Q> request, MethodDescriptor.Marshaller<R> reply) {
    return MethodDescriptor.<Q, R>newBuilder()
        .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
        .setFullMethodName(name)
        .setRequestMarshaller(request)
        .setResponseMarshaller(reply)
        .build();
  }

  /** Writes a message whose bytes a {@link Writer} produces, sized in advance (gRPC frames it in one go). */
  static final class Message extends InputStream implements Drainable, KnownLength {
    private final int length;
    private final Writer writer;
    private boolean drained;

    Message(int length, Writer writer) {
      this.length = length;
      this.writer = writer;
    }

    @Override
    public int drainTo(OutputStream target) throws IOException {
      if (drained) {
        return 0;
      }
      drained = true;
      writer.write(target);
      return length;
    }

    @Override
    public int available() {
      return copy != null ? copy.available() : drained ? 0 : length;
    }

    /** For a reader that does not drain (gRPC drains; this keeps the stream correct for any other). */
    private java.io.ByteArrayInputStream copy;

    private java.io.ByteArrayInputStream copy() throws IOException {
      if (copy == null) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream(length);
        if (!drained) {
          drained = true;
          writer.write(out);
        }
        copy = new java.io.ByteArrayInputStream(out.toByteArray());
      }
      return copy;
    }

    @Override
    public int read() throws IOException {
      return copy().read();
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      return copy().read(b, off, len);
    }
  }

  /** Produces the bytes of a {@link Message}, exactly as many as announced. */
  @FunctionalInterface
  interface Writer {
    void write(OutputStream target) throws IOException;
  }
}
