package io.embstore.shard;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.arrow.flight.CallStatus;

/**
 * The pooling discipline of long-lived, pipelined streams to one shard, shared by the Flight
 * exchanges ({@link ExchangePool}) and the fast lookup streams ({@link LookupStreams}): a request
 * takes an idle stream, else a new one while fewer than {@code width} are open, else the least
 * loaded one; a stream that ended leaves the pool; {@link #expire} ends the streams with an overdue
 * request. Subclasses open the streams and say what an idle one must still be able to do.
 *
 * @param <S> the pooled stream
 */
abstract class StreamPool<S extends StreamPool.Member> {
  /** A pooled stream. */
  interface Member {
    /** Requests waiting for their replies; negative once the stream ended. */
    int load();

    /** Ends the stream if its oldest unanswered request is overdue at {@code now} ({@link System#nanoTime}). */
    void expire(long now);
  }

  /** Streams open at once before requests share them (pipelined). */
  private final int width;
  private final List<S> members = new ArrayList<>();
  private volatile boolean closed;
  /** Streams opened so far. */
  final AtomicLong opened = new AtomicLong();

  StreamPool(int width) {
    this.width = width;
  }

  /** Opens a new stream (under the pool's lock). */
  abstract S open();

  /** Whether an idle stream can still take a request. Called under the pool's lock. */
  boolean usable(S idle) {
    return true;
  }

  /** An idle stream that was not {@link #usable} has left the pool: end it. Called under the pool's lock. */
  void dropped(S idle) {}

  /** An idle stream, else a new one while fewer than {@code width} are open, else the least loaded. */
  synchronized S take() {
    S best = null;
    int bestLoad = Integer.MAX_VALUE;
    for (int i = members.size() - 1; i >= 0; i--) {
      S s = members.get(i);
      int load = s.load();
      if (load < 0) {
        members.remove(i);
      } else if (load == 0 && !usable(s)) {
        members.remove(i);
        dropped(s);
      } else if (load < bestLoad) {
        best = s;
        bestLoad = load;
      }
    }
    if (best != null && (bestLoad == 0 || members.size() >= width)) {
      return best;
    }
    return fresh();
  }

  /** A newly opened stream (also for the one retry of a request). */
  synchronized S fresh() {
    if (closed) {
      throw CallStatus.CANCELLED.withDescription("Cannot send: the client is closed").toRuntimeException();
    }
    S s = open();
    opened.incrementAndGet();
    members.add(s);
    return s;
  }

  /** Ends every stream with an overdue request (at {@code now}, {@link System#nanoTime}). */
  void expire(long now) {
    List<S> all;
    synchronized (this) {
      all = new ArrayList<>(members);
    }
    for (S s : all) {
      s.expire(now);
    }
  }

  /** Streams open now (for tests). */
  synchronized int size() {
    return members.size();
  }

  /** Takes a stream that ended out of the pool. */
  synchronized void remove(S ended) {
    members.remove(ended);
  }

  /** Refuses new streams from now on and hands back the open ones, for the subclass to end. */
  synchronized List<S> closeAll() {
    closed = true;
    List<S> all = new ArrayList<>(members);
    members.clear();
    return all;
  }
}
