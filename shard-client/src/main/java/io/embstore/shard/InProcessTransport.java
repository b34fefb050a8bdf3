package io.embstore.shard;

import java.io.IOException;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;

/**
 * The shards of a {@link ShardServer} running in the client's own JVM, reached without Flight: the
 * same rows, stripe locks, optimizer, limits on ids and counters (its {@code stats} count these
 * calls as {@code inProcessRequests}) as the server's handlers, called on the caller's thread.
 * Large parts go in batches of at most {@link #MAX_BATCH_BYTES} of rows, as on the wire (each batch
 * one request in the counters). Lookups into a float array and updates of a shard without a
 * write-ahead log copy nothing through Arrow buffers: rows go from the shard's memory straight into
 * the caller's array, gradients from the caller's array into the optimizer one row at a time
 * (issue 20); other calls stage each batch in buffers of at most that size. A server that is closing fails calls with UNAVAILABLE, which
 * is not retried: there is no other way to reach it.
 */
final class InProcessTransport implements ShardTransport {
  private final ShardServer server;
  private final String endpoint;
  private final long rowBytes;
  private final int dim;
  private final BufferAllocator allocator;

  InProcessTransport(ShardServer server, BufferAllocator allocator) {
    this.server = server;
    this.endpoint = server.endpoint();
    this.dim = server.manifest().dim();
    this.rowBytes = dim * 4L;
    this.allocator = allocator;
  }

  @Override
  public String endpoint() {
    return endpoint;
  }

  @Override
  public boolean retryable(Throwable failure) {
    return false;
  }

  @Override
  public void reconnect(long deadline) {}

  @Override
  public void failed(Throwable failure) {}

  @Override
  public Messages.Describe describe() {
    return server.describe();
  }

  @Override
  public Messages.SnapshotReply snapshot(Messages.SnapshotRequest request) throws IOException {
    return server.snapshot(request);
  }

  /** Rows per batch of a shard part of {@code n} ids: at most {@link #MAX_BATCH_BYTES} of rows, as on the wire. */
  private int batch(int n) {
    return (int) Math.max(1, Math.min(n, MAX_BATCH_BYTES / rowBytes));
  }

  /**
   * Looks up {@code shard}'s part. Into a float array ({@link RequestPlan.ArrayScatter}: the
   * training job's pulls) the rows go straight from the shard's memory to the first request position
   * that asked for each, then to its repeats; the ids are validated from the plan. Into anything else
   * they are staged as in {@link #lookupStaged}.
   */
  @Override
  public Pending lookup(RequestPlan plan, int shard, RequestPlan.Scatter scatter, long deadline, int attempt, boolean async) {
    if (!(scatter instanceof RequestPlan.ArrayScatter into)) {
      return lookupStaged(plan, shard, scatter);
    }
    int total = plan.size(shard);
    int chunk = batch(total);
    int[] uniques = plan.uniquesOf[shard];
    float[] out = into.out();
    try {
      for (int from = 0; from < total; from += chunk) {
        int start = from;
        int n = Math.min(chunk, total - from);
        server.inProcess(shard, h -> {
          for (int r = 0; r < n; r++) {
            h.checkId(plan.uniqueIds[uniques[start + r]], r, "look up");
          }
          h.copyRows(plan.uniqueIds, plan.firstReq, uniques, start, n, out);
        });
        for (int r = 0; r < n; r++) {
          plan.copyToRepeats(uniques[start + r], out, dim);
        }
      }
      return Pending.DONE;
    } catch (RuntimeException | OutOfMemoryError e) {
      return Pending.of(e);
    }
  }

  /**
   * A lookup through Arrow buffers: each batch's ids written to one, its rows copied into another,
   * then scattered. Every lookup took this path before issue 20; it remains for scatters into
   * buffers, and ShardWorkBench compares the two.
   */
  Pending lookupStaged(RequestPlan plan, int shard, RequestPlan.Scatter scatter) {
    int total = plan.size(shard);
    int chunk = batch(total);
    try (ArrowBuf ids = allocator.buffer(8L * chunk); ArrowBuf rows = allocator.buffer(chunk * rowBytes)) {
      for (int from = 0; from < total; from += chunk) {
        int n = Math.min(chunk, total - from);
        plan.writeIds(shard, from, n, ids.memoryAddress());
        server.inProcess(shard, h -> {
          h.checkIds(ids, n, "look up");
          h.copyRows(ids, n, rows);
        });
        plan.scatter(shard, from, n, rows, 0, dim, scatter);
      }
      return Pending.DONE;
    } catch (RuntimeException | OutOfMemoryError e) {
      return Pending.of(e);
    }
  }

  /**
   * Applies {@code shard}'s part of an update. A shard without a write-ahead log applies each row's
   * gradient from {@code sums} itself ({@link HostedShard#update(long[], int[], int, int, float[],
   * float)}); one with a log gets the batch staged in Arrow buffers, as its record needs the bytes.
   */
  @Override
  public Pending update(RequestPlan plan, float[] sums, int shard, float lr, long deadline) {
    int total = plan.size(shard);
    int chunk = batch(total);
    int[] uniques = plan.uniquesOf[shard];
    try {
      for (int from = 0; from < total; from += chunk) {
        int start = from;
        int n = Math.min(chunk, total - from);
        server.inProcess(shard, h -> {
          // without a rate the shard's optimizer's applies, as in the server's update handler
          float rate = Float.isNaN(lr) ? (float) h.optimizer.lr() : lr;
          if (h.log() == null) {
            h.update(plan.uniqueIds, uniques, start, n, sums, rate);
            return;
          }
          try (ArrowBuf ids = allocator.buffer(8L * n); ArrowBuf grads = allocator.buffer(n * rowBytes)) {
            stage(plan, sums, shard, start, n, ids, grads);
            h.checkIds(ids, n, "update");
            h.update(ids.memoryAddress(), grads.memoryAddress(), n, rate);
          }
        });
      }
      return Pending.DONE;
    } catch (RuntimeException | OutOfMemoryError e) {
      return Pending.of(e);
    }
  }

  /**
   * An update through Arrow buffers: each batch's ids and gradients written to two, then applied from
   * there. Every update took this path before issue 20; ShardWorkBench and InProcessUpdateTest
   * compare it with {@link #update}.
   */
  Pending updateStaged(RequestPlan plan, float[] sums, int shard, float lr) {
    int total = plan.size(shard);
    int chunk = batch(total);
    try (ArrowBuf ids = allocator.buffer(8L * chunk); ArrowBuf grads = allocator.buffer(chunk * rowBytes)) {
      for (int from = 0; from < total; from += chunk) {
        int n = Math.min(chunk, total - from);
        stage(plan, sums, shard, from, n, ids, grads);
        server.inProcess(shard, h -> {
          h.checkIds(ids, n, "update");
          h.update(ids.memoryAddress(), grads.memoryAddress(), n, Float.isNaN(lr) ? (float) h.optimizer.lr() : lr);
        });
      }
      return Pending.DONE;
    } catch (RuntimeException | OutOfMemoryError e) {
      return Pending.of(e);
    }
  }

  private void stage(RequestPlan plan, float[] sums, int shard, int from, int n, ArrowBuf ids, ArrowBuf grads) {
    plan.writeIds(shard, from, n, ids.memoryAddress());
    plan.writeGradients(shard, from, n, sums, dim, grads);
  }

  @Override
  public Pending nearest(int shard, float[] query, int k, long exclude, long deadline, TopK out) {
    try {
      server.inProcess(shard, h -> {
        HostedShard.TopHits hits = h.search(query, k, server.maxIdsPerRequest(), exclude);
        synchronized (out) {
          for (int i = 0; i < hits.count(); i++) {
            out.offer(hits.ids()[i], hits.similarities()[i]);
          }
        }
      });
      return Pending.DONE;
    } catch (RuntimeException | OutOfMemoryError e) {
      return Pending.of(e);
    }
  }

  /** The server is not the client's to close. */
  @Override
  public void close() {}
}
