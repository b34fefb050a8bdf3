package io.embstore.shard;

/**
 * The fast update: one gRPC method that a shard server offers on its Flight port next to the Flight
 * service and the fast lookup ({@link LookupMethod}), for clients that want updates without Flight's
 * per-message work. A bidi stream of requests, each answered by one reply, in order (like an update
 * exchange), so a client pipelines requests on one stream:
 *
 * <ul>
 *   <li>request, little-endian: {@code int32 shard}, {@code int32 n}, {@code float32 lr} (NaN: the
 *       server's optimizer's rate), {@code int32 reserved} (0), then {@code n} x {@code int64} ids,
 *       then {@code n x C} float32 gradients, row by row ({@value #HEADER_BYTES} + 8n + 4Cn bytes;
 *       the ids start at byte 16, so they stay 8-byte aligned where the server reads them);
 *   <li>reply: {@code int32} rows applied (the distinct ids of the request; {@value #REPLY_BYTES}
 *       bytes), once the update is as durable as the shard's write-ahead log promises.
 * </ul>
 *
 * Same checks, limits, arithmetic, log records, counters and status codes as the {@code update}
 * exchange (a request that fails a check is refused whole, nothing of it applied, and ends its
 * stream); the bearer token goes in the {@code authorization} header and must be the write token. A
 * server announces the method in {@code describe} ({@code updateMethod}); every server still serves
 * the update exchange. Why: Arrow Flight's server copies every exchange message into a heap array
 * before it decodes it, frames every batch as Arrow IPC and hands each request from the event loop to
 * Flight's handler thread and back; this method reads a request from gRPC's buffers once, into an
 * off-heap buffer its stream owns, and applies it on the event loop ({@code docs/protocol.md},
 * "Fast updates").
 */
final class UpdateMethod {
  static final String NAME = LookupMethod.SERVICE + "/Update";
  /** Bytes of a request before its ids. */
  static final int HEADER_BYTES = 16;
  /** Bytes of a reply. */
  static final int REPLY_BYTES = 4;

  private UpdateMethod() {}

  /** Bytes of a request of {@code n} ids of {@code dim} gradients each. */
  static long requestBytes(long n, int dim) {
    return HEADER_BYTES + n * (8L + 4L * dim);
  }
}
