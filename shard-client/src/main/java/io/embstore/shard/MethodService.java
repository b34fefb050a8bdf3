package io.embstore.shard;

import io.grpc.Status;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * What the server sides of the plain gRPC methods ({@link LookupService}, {@link UpdateService})
 * share: their open streams, the requests being served now, and the stop that ends every stream
 * with {@code UNAVAILABLE} before the server frees its shards.
 */
abstract class MethodService {
  /** A stream the server can end with a status. */
  interface ClosableStream {
    void close(Status status);
  }

  /** Open streams; each removes itself when it ends. */
  final Set<ClosableStream> streams = ConcurrentHashMap.newKeySet();
  /** Requests being served now; the server frees its shards only when none is. */
  final AtomicInteger busy = new AtomicInteger();
  private volatile boolean stopping;

  static Status stoppingStatus() {
    return Status.UNAVAILABLE.withDescription("Cannot serve: the server is stopping");
  }

  /**
   * Registers a new stream; false (and the stream ended with {@code UNAVAILABLE}) when the server
   * is stopping.
   */
  final boolean open(ClosableStream s) {
    streams.add(s);
    if (stopping) {
      s.close(stoppingStatus());
      return false;
    }
    return true;
  }

  /** Ends every stream with UNAVAILABLE (clients go elsewhere or fail fast) and reads no more requests. */
  final void stop() {
    stopping = true;
    for (ClosableStream s : streams) {
      s.close(stoppingStatus());
    }
  }

  /** Waits up to {@code millis} until no request is being served. */
  final boolean awaitIdle(long millis) throws InterruptedException {
    long end = System.nanoTime() + millis * 1_000_000L;
    while (busy.get() > 0) {
      if (System.nanoTime() > end) {
        return false;
      }
      Thread.sleep(5);
    }
    return true;
  }
}
