package io.embstore.shard;

import java.io.IOException;
import java.util.ArrayList;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The shards of one server reached over its gRPC port (the protocol of {@code docs/protocol.md}).
 *
 * <p>Lookups go on the server's fast lookup method ({@link LookupMethod}, announced by {@code
 * describe}): long-lived streams pooled per shard ({@link LookupStreams}) whose replies are copied
 * from gRPC's buffers straight into the caller's rows on the event loop. Updates go on the server's
 * fast update method ({@link UpdateMethod}, also from {@code describe}): long-lived streams pooled
 * per shard ({@link UpdateStreams}) whose requests are drained from the caller's ids and gradients
 * into gRPC's buffers; or, when the client is built with {@code updateExchange} or the server
 * offers no such method, on long-lived Flight DoExchange streams pooled per shard ({@link
 * ExchangePool}: opening a stream per call cost several round trips). On all, concurrent requests share a stream without waiting for each other's
 * replies, which come back in order. A shard's part larger than the server's limits (from {@code
 * describe}) or {@link #MAX_BATCH_BYTES} goes as several even batches on one stream. Async lookups of
 * one shard are micro-batched ({@link Batcher}) into one request. Searches open an exchange per call;
 * actions are unary calls.
 */
final class FlightTransport implements ShardTransport {
  /** Streams per (op, shard) opened before concurrent requests share (pipeline on) one. */
  static final int STREAMS_PER_SHARD = 2;
  /** Most ids one micro-batch carries; an async lookup with more ids for a shard goes alone. */
  static final int BATCH_IDS = 8192;
  /** Micro-batches of one shard on the wire at once (pipelined); more lookups queue for the next batch. */
  static final int BATCHES_IN_FLIGHT = 2;

  private final ShardEndpoint endpoint;
  private final int dim;
  private final long rowBytes;
  private final BufferAllocator allocator;
  private final ExecutorService executor;
  private final Schema updateReply = Protocol.updateReply();
  /** Most ids of one micro-batch: {@link #BATCH_IDS}, fewer for rows so wide that {@link #MAX_BATCH_BYTES} binds. */
  private final int batchIds;
  /** Fast lookup streams per shard, created on first use once {@link #describe} named the method. */
  private final LookupStreams[] lookupStreams;
  private final ExchangePool[] updatePools;
  /** Fast update streams per shard, created on first use once {@link #describe} named the method. */
  private final UpdateStreams[] updateStreams;
  /** Send updates on the update exchange even when the server offers the fast update method. */
  private final boolean updateExchange;
  /** The server's fast update method ({@link UpdateMethod}), from {@code describe}; null: the exchange. */
  private volatile String updateMethod;
  private final Batcher[] batchers;
  private volatile int maxIds = ShardServer.DEFAULT_MAX_IDS;
  private volatile int maxMessageBytes = ShardServer.DEFAULT_MAX_MESSAGE_BYTES;
  /** The server's fast lookup method ({@link LookupMethod}), from {@code describe}. */
  private volatile String lookupMethod;
  private final String bearer;
  /** The type of the rows of fast-lookup replies: float32, or the table's 16-bit type (widened here). */
  private final io.embstore.format.ValueType wireType;
  /** The last learning rate's app metadata: a trainer sends one rate for many calls in a row. */
  private volatile LearningRate lastLr = new LearningRate(Float.NaN, null);

  FlightTransport(ShardEndpoint endpoint, String bearer, int numShards, int dim, io.embstore.format.ValueType wireType,
      boolean updateExchange, BufferAllocator allocator, ExecutorService executor) {
    this.updateExchange = updateExchange;
    this.updateStreams = new UpdateStreams[numShards];
    this.endpoint = endpoint;
    this.wireType = wireType;
    this.bearer = bearer;
    this.dim = dim;
    this.rowBytes = dim * 4L;
    this.allocator = allocator;
    this.executor = executor;
    this.batchIds = (int) Math.max(1, Math.min(BATCH_IDS, MAX_BATCH_BYTES / rowBytes));
    this.lookupStreams = new LookupStreams[numShards];
    this.updatePools = new ExchangePool[numShards];
    this.batchers = new Batcher[numShards];
  }

  @Override
  public String endpoint() {
    return endpoint.uri;
  }

  @Override
  public Messages.Describe describe() throws IOException {
    Messages.Describe d;
    try {
      d = Messages.Describe.parse(endpoint.action(Protocol.ACTION_DESCRIBE, new byte[0]), endpoint.uri);
    } catch (FlightRuntimeException e) {
      throw new IOException("Cannot describe endpoint " + endpoint.uri + ": " + e.status().code() + ": " + e.status().description(), e);
    }
    if (d.lookupMethod() == null) {
      throw new IOException("Cannot use endpoint " + endpoint.uri + ": it offers no fast lookup method (describe names no"
          + " lookupMethod: a server older than this client; upgrade it)");
    }
    maxIds = d.maxIdsPerRequest();
    maxMessageBytes = d.maxMessageBytes();
    lookupMethod = d.lookupMethod();
    updateMethod = updateExchange ? null : d.updateMethod();
    return d;
  }

  @Override
  public Messages.SnapshotReply snapshot(Messages.SnapshotRequest request) throws IOException {
    return Messages.SnapshotReply.parse(endpoint.action(Protocol.ACTION_SNAPSHOT, request.toJson()), endpoint.uri);
  }

  /** The server's {@code stats}. */
  Messages.Stats stats() throws IOException {
    return Messages.Stats.parse(endpoint.action(Protocol.ACTION_STATS, new byte[0]), endpoint.uri);
  }

  @Override
  public boolean retryable(Throwable failure) {
    return failure instanceof FlightRuntimeException f && f.status().code() == FlightStatusCode.UNAVAILABLE;
  }

  @Override
  public void reconnect(long deadline) {
    endpoint.reconnect(deadline);
  }

  @Override
  public void failed(Throwable failure) {
    if (retryable(failure)) {
      endpoint.channel.resetConnectBackoff();
    }
  }

  private synchronized LookupStreams lookupStreams(int shard) {
    if (lookupStreams[shard] == null) {
      lookupStreams[shard] = new LookupStreams(endpoint.channel, lookupMethod, bearer, shard, dim, wireType, STREAMS_PER_SHARD);
    }
    return lookupStreams[shard];
  }

  private synchronized UpdateStreams updateStreams(int shard) {
    if (updateStreams[shard] == null) {
      updateStreams[shard] = new UpdateStreams(endpoint.channel, updateMethod, bearer, shard, dim, STREAMS_PER_SHARD);
    }
    return updateStreams[shard];
  }

  private synchronized ExchangePool updatePool(int shard) {
    if (updatePools[shard] == null) {
      updatePools[shard] = pool(Messages.Command.update(shard), Protocol.updateRequest(dim));
    }
    return updatePools[shard];
  }

  private synchronized Batcher batcher(int shard) {
    if (batchers[shard] == null) {
      batchers[shard] = new Batcher(shard);
    }
    return batchers[shard];
  }

  private ExchangePool pool(Messages.Command command, Schema request) {
    return new ExchangePool(endpoint.uri, endpoint.client, command.descriptor(), request, endpoint.streamOptions, allocator,
        executor, endpoint.channel::resetConnectBackoff, STREAMS_PER_SHARD);
  }

  /**
   * Streams opened by the lookup and update pools of {@code shard} (fast update streams and update
   * exchanges together), and dead idle update exchanges skipped, so far (tests).
   */
  synchronized long[] streamCounts(int shard) {
    LookupStreams l = lookupStreams[shard];
    ExchangePool u = updatePools[shard];
    UpdateStreams f = updateStreams[shard];
    return new long[] {l == null ? 0 : l.opened.get(), 0, (u == null ? 0 : u.opened.get()) + (f == null ? 0 : f.opened.get()),
        u == null ? 0 : u.skipped.get()};
  }

  @Override
  public void expire(long now) {
    LookupStreams[] lookups;
    ExchangePool[] updates;
    UpdateStreams[] fastUpdates;
    synchronized (this) {
      lookups = lookupStreams.clone();
      updates = updatePools.clone();
      fastUpdates = updateStreams.clone();
    }
    for (UpdateStreams u : fastUpdates) {
      if (u != null) {
        u.expire(now);
      }
    }
    for (LookupStreams l : lookups) {
      if (l != null) {
        l.expire(now);
      }
    }
    for (ExchangePool p : updates) {
      if (p != null) {
        p.expire(now);
      }
    }
  }

  // ------------------------------------------------------------------ batch sizes

  /** Where batch {@code k} of {@code count} even batches of {@code total} ids starts (no 2-row tail batch). */
  private static int batchStart(int total, int count, int k) {
    return (int) ((long) total * k / count);
  }

  /**
   * Most ids of one request batch whose request carries {@code requestBytesPerId} and whose rows
   * (reply or request) {@code rowBytesPerId} per id: within the server's id and message limits
   * (which bound requests and replies alike) and {@link #MAX_BATCH_BYTES}.
   */
  private int idsPerBatch(long requestBytesPerId, long rowBytesPerId) {
    return (int) Math.max(1, Math.min(maxIds,
        Math.min((maxMessageBytes * 0.9 - 4096) / Math.max(requestBytesPerId, rowBytesPerId), MAX_BATCH_BYTES / rowBytesPerId)));
  }

  // ------------------------------------------------------------------ lookup

  @Override
  public Pending lookup(RequestPlan plan, int shard, RequestPlan.Scatter scatter, long deadline, int attempt, boolean async) {
    if (async && attempt == 0 && plan.size(shard) <= batchIds) {
      CompletableFuture<Void> done = new CompletableFuture<>();
      batcher(shard).submit(new Part(plan, shard, scatter, deadline, done));
      return Pending.of(done);
    }
    return sendLookup(plan, shard, scatter, deadline, attempt);
  }

  /**
   * Sends one shard's part of {@code plan} (one request per chunk) on a pooled fast lookup stream
   * (a new one when {@code attempt > 0}); the rows are scattered on the event loop as they arrive.
   */
  private Pending sendLookup(RequestPlan plan, int shard, RequestPlan.Scatter scatter, long deadline, int attempt) {
    MethodStreams<LookupStreams.Request>.Stream stream;
    try {
      stream = attempt == 0 ? lookupStreams(shard).take() : lookupStreams(shard).fresh();
    } catch (RuntimeException e) {
      return Pending.of(e);
    }
    int total = plan.size(shard);
    int chunk = idsPerBatch(8, rowBytes);
    int count = (total + chunk - 1) / chunk;
    LookupStreams.Request[] requests = new LookupStreams.Request[count];
    for (int k = 0; k < count; k++) {
      int from = batchStart(total, count, k);
      int n = batchStart(total, count, k + 1) - from;
      requests[k] = new LookupStreams.Request(deadline, n) {
        @Override
        void ids(ByteBuffer out) {
          plan.writeIds(shard, from, n, out);
        }

        @Override
        void rows(ByteBuffer bytes, FloatBuffer floats, int first, int rows) {
          plan.scatter(shard, from + first, rows, bytes, floats, 0, scatter);
        }
      };
      stream.send(requests[k]);
    }
    return Pending.of(count == 1 ? requests[0] : CompletableFuture.allOf(requests));
  }

  /** The request batches of one shard's part of one update, all on one exchange. */
  private static final class Requests implements Pending {
    final ExchangePool.Pipe pipe;
    final ExchangePool.Request[] requests;
    /** A failure before anything could be sent (no stream), else null. */
    final Throwable failed;

    Requests(ExchangePool.Pipe pipe, ExchangePool.Request[] requests, Throwable failed) {
      this.pipe = pipe;
      this.requests = requests;
      this.failed = failed;
    }

    @Override
    public Throwable await() {
      if (failed != null) {
        return failed;
      }
      Throwable error = null;
      for (ExchangePool.Request r : requests) {
        pipe.await(r);
        if (error == null && r.isCompletedExceptionally()) {
          error = ShardTransport.causeOf(r);
        }
      }
      return error;
    }

    @Override
    public CompletableFuture<Void> future() {
      if (failed != null) {
        return CompletableFuture.failedFuture(failed);
      }
      pipe.readInBackground();
      return requests.length == 1 ? requests[0] : CompletableFuture.allOf(requests);
    }
  }

  // ------------------------------------------------------------------ async lookups, micro-batched

  /** One shard's part of one async lookup, waiting for a micro-batch. */
  private record Part(RequestPlan plan, int shard, RequestPlan.Scatter scatter, long deadline, CompletableFuture<Void> done) {
    int size() {
      return plan.size(shard);
    }
  }

  /**
   * Collects the async lookups of one shard into micro-batches: up to {@link #BATCHES_IN_FLIGHT}
   * batches are on the wire at once (pipelined on pooled streams); lookups that arrive meanwhile
   * queue, and the next batch takes all of them (up to {@code batchIds} ids) in one exchange
   * message. Many small lookups in flight thus cost neither a thread nor a message each. Batches are
   * sent by the thread that submits a lookup or completes a batch; no thread waits for a reply. A
   * failed batch fails each of its parts (their calls retry them alone).
   */
  private final class Batcher {
    final int shard;
    final ConcurrentLinkedQueue<Part> queue = new ConcurrentLinkedQueue<>();
    final AtomicInteger inFlight = new AtomicInteger();
    final AtomicBoolean forming = new AtomicBoolean();

    Batcher(int shard) {
      this.shard = shard;
    }

    void submit(Part p) {
      queue.add(p);
      pump();
    }

    /** Sends queued lookups while fewer than {@link #BATCHES_IN_FLIGHT} batches are on the wire. */
    void pump() {
      while (!queue.isEmpty() && inFlight.get() < BATCHES_IN_FLIGHT) {
        if (!forming.compareAndSet(false, true)) {
          return; // the thread forming a batch re-checks the queue when done
        }
        try {
          if (inFlight.get() >= BATCHES_IN_FLIGHT) {
            continue;
          }
          List<Part> batch = new ArrayList<>();
          int ids = 0;
          for (Part p; ids < batchIds && (p = queue.peek()) != null; ) {
            if (ids > 0 && ids + p.size() > batchIds) {
              break;
            }
            queue.poll();
            batch.add(p);
            ids += p.size();
          }
          if (batch.isEmpty()) {
            continue;
          }
          inFlight.incrementAndGet();
          send(batch, ids);
        } finally {
          forming.set(false);
        }
      }
    }

    /** Sends the parts' ids back to back as one request; each part gets its rows from the reply. */
    private void send(List<Part> parts, int total) {
      long deadline = Long.MAX_VALUE;
      for (Part p : parts) {
        deadline = Math.min(deadline, p.deadline);
      }
      MethodStreams<LookupStreams.Request>.Stream stream;
      try {
        stream = lookupStreams(shard).take();
      } catch (RuntimeException e) {
        finish(parts, e);
        return;
      }
      LookupStreams.Request r = new LookupStreams.Request(deadline, total) {
        @Override
        void ids(ByteBuffer out) {
          for (Part p : parts) {
            p.plan.writeIds(shard, 0, p.size(), out);
          }
        }

        @Override
        void rows(ByteBuffer bytes, FloatBuffer floats, int first, int count) {
          int start = 0; // the part's first row in the reply
          for (Part p : parts) {
            int lo = Math.max(first, start);
            int hi = Math.min(first + count, start + p.size());
            if (lo < hi) {
              p.plan.scatter(shard, lo - start, hi - lo, bytes, floats, lo - first, p.scatter);
            }
            start += p.size();
          }
        }
      };
      r.whenComplete((v, err) -> finish(parts, ShardTransport.unwrap(err)));
      stream.send(r);
    }

    /** Completes a batch's parts, then sends what queued meanwhile. */
    private void finish(List<Part> parts, Throwable error) {
      inFlight.decrementAndGet();
      for (Part p : parts) {
        if (error == null) {
          p.done.complete(null);
        } else {
          p.done.completeExceptionally(error);
        }
      }
      pump();
    }
  }

  // ------------------------------------------------------------------ update

  private record LearningRate(float lr, byte[] json) {}

  /** {@code {"lr": lr}} in UTF-8 (not to be modified: it is shared). */
  private byte[] lrMetadata(float lr) {
    LearningRate last = lastLr;
    if (Float.floatToRawIntBits(last.lr) != Float.floatToRawIntBits(lr)) {
      last = new LearningRate(lr, Messages.learningRate(lr));
      lastLr = last;
    }
    return last.json;
  }

  /**
   * Sends one shard's part of an update (one batch per chunk) on a pooled stream; the learning rate
   * travels in each batch's app metadata ({@code {"lr": ..}}), since the stream's command is shared
   * by every request.
   */
  @Override
  public Pending update(RequestPlan plan, float[] sums, int shard, float lr, long deadline) {
    int total = plan.size(shard);
    long perRow = 8 + rowBytes;
    int chunk = idsPerBatch(perRow, perRow);
    if (updateMethod != null) {
      return sendUpdate(plan, sums, shard, lr, deadline, total, chunk);
    }
    byte[] lrJson = Float.isNaN(lr) ? null : lrMetadata(lr);
    ExchangePool.Pipe pipe;
    try {
      pipe = updatePool(shard).take();
    } catch (RuntimeException ex) {
      return new Requests(null, null, ex);
    }
    int count = (total + chunk - 1) / chunk;
    ExchangePool.Request[] requests = new ExchangePool.Request[count];
    for (int k = 0; k < count; k++) {
      int from = batchStart(total, count, k);
      int n = batchStart(total, count, k + 1) - from;
      ExchangePool.Request r = new ExchangePool.Request(deadline) {
        @Override
        void onReply(VectorSchemaRoot reply) {
          if (reply.getRowCount() != 1 || !Protocol.sameShape(reply.getSchema(), updateReply)) {
            throw ShardErrors.internal("Cannot update: reply of " + reply.getRowCount() + " rows with schema "
                + reply.getSchema() + ", expected 1 row of " + updateReply, null);
          }
        }
      };
      requests[k] = r;
      ArrowBuf metadata = null;
      if (lrJson != null) {
        metadata = allocator.buffer(lrJson.length);
        metadata.setBytes(0, lrJson);
        metadata.writerIndex(lrJson.length);
      }
      pipe.send(r, root -> {
        BigIntVector ids = (BigIntVector) root.getVector(0);
        plan.writeIds(shard, from, n, Vectors.reserve(ids, n).memoryAddress());
        plan.writeGradients(shard, from, n, sums, dim, Vectors.reserve((FixedSizeListVector) root.getVector(1), n));
        ids.setValueCount(n);
        root.setRowCount(n);
      }, metadata);
    }
    return new Requests(pipe, requests, null);
  }

  /**
   * Sends one shard's part of an update (one request per chunk of at most {@code chunk} ids) on a
   * pooled fast update stream, pipelined; each request carries its learning rate in its header.
   */
  private Pending sendUpdate(RequestPlan plan, float[] sums, int shard, float lr, long deadline, int total, int chunk) {
    MethodStreams<UpdateStreams.Request>.Stream stream;
    try {
      stream = updateStreams(shard).take();
    } catch (RuntimeException e) {
      return Pending.of(e);
    }
    int count = (total + chunk - 1) / chunk;
    UpdateStreams.Request[] requests = new UpdateStreams.Request[count];
    for (int k = 0; k < count; k++) {
      int from = batchStart(total, count, k);
      int n = batchStart(total, count, k + 1) - from;
      requests[k] = new UpdateStreams.Request(deadline, n, lr) {
        @Override
        void ids(int first, int ids, ByteBuffer out) {
          plan.writeIds(shard, from + first, ids, out);
        }

        @Override
        void gradients(int first, int rows, FloatBuffer out) {
          plan.writeGradients(shard, from + first, rows, sums, dim, out);
        }
      };
      stream.send(requests[k]);
    }
    return Pending.of(count == 1 ? requests[0] : CompletableFuture.allOf(requests));
  }

  // ------------------------------------------------------------------ nearest

  @Override
  public Pending nearest(int shard, float[] query, int k, long exclude, long deadline, TopK out) {
    try {
      return Pending.of(CompletableFuture.runAsync(() -> search(shard, query, k, exclude, out), executor));
    } catch (RejectedExecutionException e) {
      return Pending.of(e);
    }
  }

  /** One search on an exchange of its own; offers the shard's answers to {@code out}. */
  private void search(int shard, float[] query, int k, long exclude, TopK out) {
    try (VectorSchemaRoot req = VectorSchemaRoot.create(Protocol.nearestRequest(dim), allocator);
        FlightClient.ExchangeReaderWriter rw =
            endpoint.client.doExchange(Messages.Command.nearest(shard, k, exclude).descriptor(), endpoint.callOptions())) {
      ArrowBuf data = Vectors.allocateRows((FixedSizeListVector) req.getVector(0), 1);
      for (int c = 0; c < dim; c++) {
        data.setFloat(4L * c, query[c]);
      }
      req.setRowCount(1);
      rw.getWriter().start(req);
      rw.getWriter().putNext();
      rw.getWriter().completed();
      FlightStream reader = rw.getReader();
      if (!reader.next()) {
        throw ShardErrors.internal("Cannot search: no reply", null);
      }
      VectorSchemaRoot reply = reader.getRoot();
      BigIntVector ids = (BigIntVector) reply.getVector(0);
      Float4Vector sims = (Float4Vector) reply.getVector(1);
      synchronized (out) {
        for (int i = 0; i < reply.getRowCount(); i++) {
          out.offer(ids.get(i), sims.get(i));
        }
      }
      while (reader.next()) {
        // drain
      }
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw ShardErrors.internal("Cannot search: " + e, e);
    }
  }

  @Override
  public void close() {
    List<AutoCloseable> parts = new ArrayList<>();
    synchronized (this) {
      for (LookupStreams l : lookupStreams) {
        if (l != null) {
          parts.add(l);
        }
      }
      for (ExchangePool p : updatePools) {
        if (p != null) {
          parts.add(p);
        }
      }
      for (UpdateStreams u : updateStreams) {
        if (u != null) {
          parts.add(u);
        }
      }
    }
    // The streams first: their requests fail (CANCELLED) and their readers end and free the buffers.
    for (AutoCloseable p : parts) {
      try {
        p.close();
      } catch (Exception ignored) {
        // a pool's close does not throw
      }
    }
  }

  /** Closes the endpoint (its channel) once the client's executor has stopped. */
  void closeEndpoint() throws InterruptedException {
    endpoint.close();
  }
}
