package io.embstore.shard;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Runs one call's parts on their shards, all at once, and turns their outcomes into one: the only
 * place where the one retry of an idempotent call (lookups, searches) and the aggregation of
 * failures are written. A failed part becomes a {@link ShardException} naming its shard and
 * endpoint; the first is thrown (or fails the future) with the others suppressed in it. A call
 * completes only when every part has: no part is still writing into the caller's output when the
 * caller sees the outcome.
 */
final class FanOut {
  private FanOut() {}

  /** Sends one shard's part; {@code attempt} is 0, or 1 for the retry. */
  @FunctionalInterface
  interface Send {
    ShardTransport.Pending send(int shard, int attempt);
  }

  /** What a call tried on a shard, for its error: "look up 12 ids on". */
  @FunctionalInterface
  interface What {
    String of(int shard);
  }

  /**
   * Sends every shard's part from this thread, then waits for each (reading replies on this
   * thread); with {@code retry}, a part that failed retryably goes once more after its transport
   * reconnected.
   */
  static void await(int[] shards, ShardTransport[] byShard, Send send, boolean retry, long deadline, What what)
      throws ShardException {
    ShardTransport.Pending[] sent = new ShardTransport.Pending[shards.length];
    for (int i = 0; i < shards.length; i++) {
      sent[i] = send.send(shards[i], 0);
    }
    ShardException first = null;
    for (int i = 0; i < shards.length; i++) {
      int s = shards[i];
      ShardTransport t = byShard[s];
      Throwable error = sent[i].await();
      if (error != null && retry && t.retryable(error)) {
        t.reconnect(deadline);
        error = send.send(s, 1).await();
      }
      if (error != null) {
        t.failed(error);
        first = add(first, ShardException.of(what.of(s), s, t.endpoint(), error));
      }
    }
    if (first != null) {
      throw first;
    }
  }

  /**
   * Sends every shard's part and returns a future done when all are; replies are read in the
   * background and a retry (see {@link #await}) runs on {@code executor}, since reconnecting waits.
   */
  static CompletableFuture<Void> async(int[] shards, ShardTransport[] byShard, Send send, boolean retry, long deadline,
      What what, Executor executor) {
    CompletableFuture<Void> call = new CompletableFuture<>();
    if (shards.length == 0) {
      call.complete(null);
      return call;
    }
    AtomicInteger remaining = new AtomicInteger(shards.length);
    AtomicReference<ShardException> first = new AtomicReference<>();
    for (int s : shards) {
      attempt(s, 0, byShard[s], send, retry, deadline, executor, error -> {
        if (error != null) {
          byShard[s].failed(error);
          ShardException ex = ShardException.of(what.of(s), s, byShard[s].endpoint(), error);
          first.accumulateAndGet(ex, (a, b) -> a == null ? b : add(a, b));
        }
        if (remaining.decrementAndGet() == 0) {
          ShardException failure = first.get();
          if (failure == null) {
            call.complete(null);
          } else {
            call.completeExceptionally(failure);
          }
        }
      });
    }
    return call;
  }

  private interface Outcome {
    void done(Throwable failure);
  }

  private static void attempt(int shard, int attempt, ShardTransport t, Send send, boolean retry, long deadline,
      Executor executor, Outcome outcome) {
    send.send(shard, attempt).future().whenComplete((v, err) -> {
      Throwable cause = ShardTransport.unwrap(err);
      if (cause != null && attempt == 0 && retry && t.retryable(cause)) {
        try {
          executor.execute(() -> {
            t.reconnect(deadline);
            attempt(shard, 1, t, send, retry, deadline, executor, outcome);
          });
          return;
        } catch (RejectedExecutionException e) {
          cause = e; // the client is closing
        }
      }
      outcome.done(cause);
    });
  }

  private static ShardException add(ShardException first, ShardException next) {
    if (first == null) {
      return next;
    }
    first.addSuppressed(next);
    return first;
  }
}
