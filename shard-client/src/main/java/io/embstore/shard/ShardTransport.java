package io.embstore.shard;

import java.io.IOException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * How the routing client reaches the shards of one server: the seam between the request path
 * (planning, fan-out, errors: written once in {@link EmbeddingClient} and {@link FanOut}) and the
 * way bytes move. Two implementations: {@link FlightTransport} (Arrow Flight exchanges, pooled and
 * pipelined) and {@link InProcessTransport} (a {@link ShardServer} of the client's own JVM, called
 * directly). Each method sends one shard's part of one call and returns at once with a {@link
 * Pending}; failures are reported through it, never thrown.
 */
interface ShardTransport extends AutoCloseable {
  /**
   * Most bytes of rows in one request batch (a lookup's reply rows, an update's ids and gradients):
   * 2 MiB. A shard's part of a larger call goes as several even batches (pipelined on one stream
   * over Flight), so a server holds a few batches per stream at a time however large the call
   * (Flight reads five request batches ahead; a lookup handler keeps at most 4 MiB of replies that
   * gRPC has not yet written): its transient memory is set by this bound and the number of streams,
   * not by the callers' batch sizes (PipelineTest.largeLookupsAndUpdatesGoInBoundedBatches;
   * bench/README.md, "Scale"). Large enough that the benchmark's B = 4096 x 512-byte rows goes
   * unsplit (with 1 MiB its lookups ran at 0.56-0.86x). In process, the same bound sizes the
   * scratch buffers of a call.
   */
  long MAX_BATCH_BYTES = 2L << 20;

  /** The server's endpoint, for error messages. */
  String endpoint();

  /** Whether a failure of a lookup or search may be retried once (after {@link #reconnect}). */
  boolean retryable(Throwable failure);

  /** Prepares the retry of a call that failed with a retryable failure (waits, bounded by {@code deadline}). */
  void reconnect(long deadline);

  /** Called after any failed call of this transport (a server that went away is connected anew at once). */
  void failed(Throwable failure);

  /**
   * Looks up {@code shard}'s part of {@code plan}, scattering the rows; {@code attempt} 1 is the
   * retry (Flight: on a new stream). {@code async}: the caller will not wait on its thread, so the
   * transport may batch it with other lookups.
   */
  Pending lookup(RequestPlan plan, int shard, RequestPlan.Scatter scatter, long deadline, int attempt, boolean async);

  /** Applies {@code shard}'s part of an update: {@code sums} per distinct id of {@code plan}, learning rate {@code lr} (NaN: the server's). */
  Pending update(RequestPlan plan, float[] sums, int shard, float lr, long deadline);

  /**
   * The exact cosine top-{@code k} of {@code shard} for {@code query}, without {@code exclude} (-1:
   * none), into {@code out} when done.
   */
  Pending nearest(int shard, float[] query, int k, long exclude, long deadline, TopK out);

  /** Writes the server's shards {@code shards} as table version {@code version} into {@code dir}. */
  Messages.SnapshotReply snapshot(Messages.SnapshotRequest request) throws IOException;

  /** What the server hosts and its limits. */
  Messages.Describe describe() throws IOException;

  /** Fails every request still on the wire whose deadline passed (at {@code now}, {@link System#nanoTime}). */
  default void expire(long now) {}

  @Override
  void close();

  /** One shard's part of one call, under way. */
  interface Pending {
    /** Waits for it (reading its replies on this thread when nobody else does); returns its failure, or null. */
    Throwable await();

    /** A future done when it is (its replies are read in the background), failed with its failure. */
    CompletableFuture<Void> future();

    /** Done. */
    Pending DONE = of((Throwable) null);

    /** Failed before anything was sent (or done, when {@code failure} is null). */
    static Pending of(Throwable failure) {
      return new Pending() {
        @Override
        public Throwable await() {
          return failure;
        }

        @Override
        public CompletableFuture<Void> future() {
          return failure == null ? CompletableFuture.completedFuture(null) : CompletableFuture.failedFuture(failure);
        }
      };
    }

    /** A part whose future completes it. */
    static Pending of(CompletableFuture<Void> f) {
      return new Pending() {
        @Override
        public Throwable await() {
          return causeOf(f);
        }

        @Override
        public CompletableFuture<Void> future() {
          return f;
        }
      };
    }
  }

  /** The cause of a {@link CompletionException}, else {@code t} itself (null stays null). */
  static Throwable unwrap(Throwable t) {
    Throwable u = t instanceof CompletionException && t.getCause() != null ? t.getCause() : t;
    return u instanceof java.io.UncheckedIOException && u.getCause() != null ? u.getCause() : u;
  }

  /** The failure of a completed future (waiting for it), or null. */
  static Throwable causeOf(CompletableFuture<?> f) {
    try {
      f.join();
      return null;
    } catch (CompletionException e) {
      return unwrap(e);
    } catch (java.util.concurrent.CancellationException e) {
      return e;
    }
  }
}
