package io.embstore.shard;

import java.io.IOException;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;

/**
 * The shards of a {@link ShardServer} running in the client's own JVM, reached without Flight: the
 * same rows, stripe locks, optimizer, limits on ids and counters (its {@code stats} count these
 * calls as {@code inProcessRequests}) as the server's handlers, called on the caller's thread.
 * Large parts go in batches of at most {@link #MAX_BATCH_BYTES} of rows, as on the wire, so the
 * scratch memory of a call is bounded. A server that is closing fails calls with UNAVAILABLE, which
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

  @Override
  public Pending lookup(RequestPlan plan, int shard, RequestPlan.Scatter scatter, long deadline, int attempt, boolean async) {
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

  @Override
  public Pending update(RequestPlan plan, float[] sums, int shard, float lr, long deadline) {
    int total = plan.size(shard);
    int chunk = batch(total);
    try (ArrowBuf ids = allocator.buffer(8L * chunk); ArrowBuf grads = allocator.buffer(chunk * rowBytes)) {
      for (int from = 0; from < total; from += chunk) {
        int n = Math.min(chunk, total - from);
        plan.writeIds(shard, from, n, ids.memoryAddress());
        plan.writeGradients(shard, from, n, sums, dim, grads);
        server.inProcess(shard, h -> {
          h.checkIds(ids, n, "update");
          // without a rate the shard's optimizer's applies, as in the server's update handler
          h.update(ids.memoryAddress(), grads.memoryAddress(), n, Float.isNaN(lr) ? (float) h.optimizer.lr() : lr);
        });
      }
      return Pending.DONE;
    } catch (RuntimeException | OutOfMemoryError e) {
      return Pending.of(e);
    }
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
