package io.embstore.shard;

import java.io.IOException;
import java.util.Arrays;
import java.util.concurrent.ExecutorService;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.ActionType;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.flight.NoOpFlightProducer;
import org.apache.arrow.flight.Result;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.util.MemoryUtil;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Serves the {@link Protocol} for the shards of one {@link ShardServer}. */
final class ShardProducer extends NoOpFlightProducer {
  private static final Logger LOG = LoggerFactory.getLogger(ShardProducer.class);

  private final ShardServer server;
  private final BufferAllocator allocator;

  /** Exchange handlers running; {@link #awaitHandlers} lets the server free memory only after they ended. */
  private final java.util.concurrent.atomic.AtomicInteger handlers = new java.util.concurrent.atomic.AtomicInteger();

  ShardProducer(ShardServer server, BufferAllocator allocator) {
    this.server = server;
    this.allocator = allocator;
  }

  /**
   * Waits up to {@code millis} until no exchange handler runs. Clients keep exchanges open between
   * requests; when such a stream is cancelled (client closed, server stopping), its handler ends a
   * moment after gRPC considers the call done, still holding its last request batch.
   */
  /** Set when the server stops: exchanges end (UNAVAILABLE) instead of waiting for the next batch. */
  private volatile boolean stopping;
  /** Handler threads waiting for a client's next batch on a long-lived exchange. */
  private final java.util.Set<Thread> waiting = java.util.concurrent.ConcurrentHashMap.newKeySet();

  /**
   * Ends every exchange that waits for its client's next batch (clients keep exchanges open between
   * requests, so without this a server would wait for them to go away before it could stop); a
   * batch being served is finished first, then its exchange ends too.
   */
  void stopExchanges() {
    stopping = true;
    for (Thread t : waiting) {
      t.interrupt();
    }
  }

  /** The next request batch of an exchange, or false at its end; UNAVAILABLE once the server stops. */
  private boolean nextBatch(FlightStream reader) {
    Thread me = Thread.currentThread();
    if (stopping) {
      throw CallStatusUnavailable.stopping();
    }
    waiting.add(me);
    try {
      return reader.next();
    } catch (RuntimeException e) {
      if (stopping) {
        throw CallStatusUnavailable.stopping();
      }
      throw e;
    } finally {
      waiting.remove(me);
      if (stopping) {
        Thread.interrupted();
      }
    }
  }

  private static final class CallStatusUnavailable {
    static FlightRuntimeException stopping() {
      return org.apache.arrow.flight.CallStatus.UNAVAILABLE.withDescription("Cannot serve: the server is stopping").toRuntimeException();
    }
  }

  boolean awaitHandlers(long millis) throws InterruptedException {
    long end = System.nanoTime() + millis * 1_000_000L;
    while (handlers.get() > 0) {
      if (System.nanoTime() > end) {
        return false;
      }
      Thread.sleep(5);
    }
    return true;
  }

  // ------------------------------------------------------------------ exchanges

  @Override
  public void doExchange(CallContext context, FlightStream reader, ServerStreamListener listener) {
    handlers.incrementAndGet();
    try {
      Messages.Command cmd = Messages.Command.parse(reader.getDescriptor());
      switch (cmd.op()) {
        case Protocol.OP_LOOKUP:
          lookup(server.hosted(cmd.shard(), "look up ids on"), reader, listener);
          break;
        case Protocol.OP_UPDATE:
          requireWrite(context, "update shard " + cmd.shard());
          update(server.hosted(cmd.shard(), "update"), cmd, reader, listener);
          break;
        case Protocol.OP_NEAREST:
          nearest(server.hosted(cmd.shard(), "search"), cmd, reader, listener);
          break;
        default:
          throw ShardErrors.invalid(
              "Cannot run exchange: unknown op '" + cmd.op() + "' (known: lookup, update, nearest)");
      }
      listener.completed();
    } catch (FlightRuntimeException e) {
      listener.error(e);
    } catch (org.apache.arrow.memory.OutOfMemoryException | OutOfMemoryError e) {
      // The server's memory limit (its allocator's, or the JVM's) ends this call, not the server.
      LOG.warn("exchange ran out of memory", e);
      listener.error(ShardErrors.exhausted("Cannot run exchange: out of memory (" + e.getMessage() + "); retry later or send smaller batches"));
    } catch (RuntimeException e) {
      LOG.warn("exchange failed", e);
      listener.error(ShardErrors.internal("Cannot run exchange: " + e, e));
    } finally {
      handlers.decrementAndGet();
      if (stopping) {
        Thread.interrupted();
      }
    }
  }

  private void requireWrite(CallContext context, String what) {
    if (server.authEnabled() && !TokenAuthenticator.WRITE.equals(context.peerIdentity())) {
      throw ShardErrors.unauthorized("Cannot " + what + ": the token is read-only (updates and snapshots need the write token)");
    }
  }

  private int checkRows(VectorSchemaRoot in, String verb) {
    int n = in.getRowCount();
    server.checkIdCount(n, verb);
    return n;
  }

  private static void checkSchema(VectorSchemaRoot in, org.apache.arrow.vector.types.pojo.Schema expected, String verb) {
    if (!Protocol.sameShape(in.getSchema(), expected)) {
      throw ShardErrors.invalid(
          "Cannot " + verb + ": request schema is " + in.getSchema() + ", expected " + expected);
    }
  }

  private void lookup(HostedShard shard, FlightStream reader, ServerStreamListener listener) {
    org.apache.arrow.vector.types.pojo.Schema expected = Protocol.lookupRequest();
    // One reply root per stream. Its data buffer is allocated per batch on purpose: with zero copy
    // gRPC still holds the previous batch's buffer until the bytes are on the socket, so reusing it
    // could send overwritten rows; a pooled allocation is cheaper than copying every reply.
    try (VectorSchemaRoot out = VectorSchemaRoot.create(Protocol.lookupReply(shard.dim), allocator)) {
      listener.setUseZeroCopy(true);
      listener.start(out);
      FixedSizeListVector list = (FixedSizeListVector) out.getVector(0);
      // Replies sent with zero copy that gRPC may still hold, oldest first, each retained here once.
      java.util.ArrayDeque<ArrowBuf> sent = new java.util.ArrayDeque<>();
      long sentBytes = 0;
      try {
        while (nextBatch(reader)) {
          VectorSchemaRoot in = reader.getRoot();
          checkSchema(in, expected, "look up ids");
          int n = in.getRowCount();
          server.checkLookup(shard, n);
          checkNoNull(in.getVector(0), n, "look up ids", "id", "ids must not be null");
          ArrowBuf ids = ((BigIntVector) in.getVector(0)).getDataBuffer();
          shard.checkIds(ids, n, "look up");
          ArrowBuf data = Vectors.allocateRows(list, n); // the vector lets go of the previous reply
          while (!sent.isEmpty() && (written(sent.peekFirst()) || sentBytes + data.capacity() > MAX_UNWRITTEN_REPLY_BYTES)) {
            ArrowBuf oldest = sent.pollFirst();
            awaitWritten(oldest, listener);
            sentBytes -= oldest.capacity();
            oldest.close();
          }
          if (n > 0) {
            shard.copyRows(ids, n, data);
          }
          out.setRowCount(n);
          awaitReady(listener);
          listener.putNext();
          data.getReferenceManager().retain();
          sent.addLast(data);
          sentBytes += data.capacity();
        }
      } finally {
        for (ArrowBuf b : sent) {
          b.close();
        }
      }
    }
  }

  /**
   * Most bytes of lookup replies per stream that gRPC may still hold (sent with zero copy, not yet on
   * the socket) before the handler waits to gather the next: 4 MiB. Why: gRPC's {@code isReady}
   * counts a zero-copy message as sent once it is queued, so a client that reads slower than this
   * handler gathers would let every reply of a large pipelined lookup pile up in the server's memory
   * (PipelineTest.largeLookupsAndUpdatesGoInBoundedBatches: 132 MiB for a 64 MiB-per-shard lookup
   * in one batch per shard). Small replies (the common case) never wait.
   */
  static final long MAX_UNWRITTEN_REPLY_BYTES = 4L << 20;

  /** True when gRPC has let go of {@code reply}: only the reference this handler took remains. */
  private static boolean written(ArrowBuf reply) {
    return reply.getReferenceManager().getRefCount() <= 1;
  }

  /** Parks until gRPC has let go of {@code reply} (it is on the socket) or the call ended. */
  private void awaitWritten(ArrowBuf reply, ServerStreamListener listener) {
    parkUntil(() -> written(reply), listener);
  }

  /**
   * Parks until the client can take the next reply. Why: Flight's {@code putNext} busy-spins while
   * the stream is not ready, and with pipelined requests the next reply is often ready before the
   * client has read the previous one; the spin would take a core from the client that must read it.
   */
  private void awaitReady(ServerStreamListener listener) {
    parkUntil(listener::isReady, listener);
  }

  /** Parks (2 us, doubling up to 200 us) until {@code done} or the call ended; throws when the server stops. */
  private void parkUntil(java.util.function.BooleanSupplier done, ServerStreamListener listener) {
    long pause = 2_000;
    while (!done.getAsBoolean() && !listener.isCancelled()) {
      if (stopping) {
        throw CallStatusUnavailable.stopping();
      }
      java.util.concurrent.locks.LockSupport.parkNanos(pause);
      pause = Math.min(pause * 2, 200_000);
    }
  }

  private void update(HostedShard shard, Messages.Command cmd, FlightStream reader, ServerStreamListener listener) {
    org.apache.arrow.vector.types.pojo.Schema expected = Protocol.updateRequest(shard.dim);
    try (VectorSchemaRoot out = VectorSchemaRoot.create(Protocol.updateReply(), allocator)) {
      listener.start(out);
      BigIntVector applied = (BigIntVector) out.getVector(0);
      applied.allocateNew(1); // reused by every batch: without zero copy putNext copies it out
      ShardLog log = shard.log();
      DeferredReplies deferred = log != null && log.sync == ShardLog.Sync.ALWAYS ? new DeferredReplies(shard, listener, out, applied) : null;
      try {
        byte[] lastMeta = null;
        double lastLr = Double.NaN;
        while (nextBatch(reader)) {
          VectorSchemaRoot in = reader.getRoot();
          checkSchema(in, expected, "update");
          int n = checkRows(in, "update");
          byte[] meta = bytesOf(reader.getLatestMetadata());
          // a trainer sends the same rate for many batches in a row: parse it once. (Both arrays
          // non-null before Arrays.equals: Jazzer 0.24's hook on it crashes the JVM on a null one.)
          double lr = meta != null && lastMeta != null && Arrays.equals(meta, lastMeta) ? lastLr : learningRate(cmd, meta, shard.optimizer);
          lastMeta = meta;
          lastLr = lr;
          checkNoNull(in.getVector(0), n, "update", "id", "ids must not be null; nothing was applied");
          ArrowBuf ids = ((BigIntVector) in.getVector(0)).getDataBuffer();
          FixedSizeListVector gradList = (FixedSizeListVector) in.getVector(1);
          ArrowBuf grads = ((Float4Vector) gradList.getDataVector()).getDataBuffer();
          shard.checkIds(ids, n, "update");
          checkNoNullValues(gradList, n, shard.dim, ids, "update id", "gradient", "gradients must not be null; nothing was applied");
          checkFinite(ids.memoryAddress(), grads.memoryAddress(), n, shard.dim);
          long[] ticket = new long[1];
          int rows = applyDeduplicated(shard, ids.memoryAddress(), grads.memoryAddress(), n, (float) lr, ticket, allocator);
          if (deferred != null) {
            deferred.add(ticket[0], rows);
            continue;
          }
          shard.awaitDurable(ticket[0]);
          applied.set(0, rows);
          out.setRowCount(1);
          awaitReady(listener);
          listener.putNext();
        }
        if (deferred != null) {
          deferred.finish();
        }
      } catch (RuntimeException e) {
        if (deferred != null) {
          deferred.finishQuietly(); // the batches before the failing one are answered first
        }
        throw e;
      } finally {
        if (deferred != null) {
          deferred.close();
        }
      }
    }
  }

  /** Sends the replies of an update exchange's batches as their log records reach the disk; see {@link #update}. */
  private ExecutorService ackExecutor() {
    synchronized (this) {
      if (ackExecutor == null) {
        ackExecutor = java.util.concurrent.Executors.newCachedThreadPool(r -> {
          Thread t = new Thread(r, "embstore-wal-ack");
          t.setDaemon(true);
          return t;
        });
      }
      return ackExecutor;
    }
  }

  private ExecutorService ackExecutor;

  /** Stops the threads that send deferred update replies (after every exchange handler ended). */
  void shutdownAcks() {
    synchronized (this) {
      if (ackExecutor != null) {
        ackExecutor.shutdownNow();
      }
    }
  }

  /**
   * The replies of one update exchange on a shard whose log syncs {@code always}: each batch is
   * answered, in order, once its record is on disk, by a thread of {@link #ackExecutor} woken by the
   * log's syncer, while the handler goes on reading, logging and applying the batches a client
   * pipelines on the stream. So the batches of one stream share an fsync as those of different
   * streams do (waiting for each before reading the next would allow one fsync per batch and stream).
   * Only one thread sends at a time (a work-in-progress counter), and the handler never sends.
   */
  private final class DeferredReplies {
    private final HostedShard shard;
    private final ShardLog log;
    private final ServerStreamListener listener;
    private final VectorSchemaRoot out;
    private final BigIntVector applied;
    /** {ticket, rows} of batches applied and not yet answered, oldest first; also the monitor of {@link #finish}. */
    private final java.util.ArrayDeque<long[]> queue = new java.util.ArrayDeque<>();
    private final java.util.concurrent.atomic.AtomicInteger wip = new java.util.concurrent.atomic.AtomicInteger();
    private volatile RuntimeException failure;
    private volatile boolean closed;

    DeferredReplies(HostedShard shard, ServerStreamListener listener, VectorSchemaRoot out, BigIntVector applied) {
      this.shard = shard;
      this.log = shard.log();
      this.listener = listener;
      this.out = out;
      this.applied = applied;
    }

    void add(long ticket, int rows) {
      if (failure != null) {
        throw failure;
      }
      synchronized (queue) {
        queue.add(new long[] {ticket, rows});
      }
      log.whenDurable(ticket, () -> {
        try {
          ackExecutor().execute(this::drain);
        } catch (java.util.concurrent.RejectedExecutionException e) {
          drain(); // the server is stopping: the sender sees it and ends
        }
      });
    }

    private void drain() {
      if (wip.getAndIncrement() != 0) {
        return;
      }
      do {
        try {
          sendDurable();
        } catch (RuntimeException e) {
          if (failure == null) {
            failure = e;
          }
        }
      } while (wip.decrementAndGet() != 0);
      synchronized (queue) {
        queue.notifyAll();
      }
    }

    private void sendDurable() {
      while (!closed && failure == null) {
        long[] head;
        synchronized (queue) {
          head = queue.peek();
        }
        if (head == null) {
          return;
        }
        if (!log.isDurable(head[0])) {
          IOException f = log.failure();
          if (f != null) {
            throw shard.syncFailure(f);
          }
          return;
        }
        applied.set(0, (int) head[1]);
        out.setRowCount(1);
        awaitReady(listener);
        listener.putNext();
        synchronized (queue) {
          queue.poll();
        }
      }
    }

    /** Waits until every batch is answered; throws the failure that stopped the replies. */
    void finish() {
      synchronized (queue) {
        while (failure == null && !(queue.isEmpty() && wip.get() == 0)) {
          if (stopping) {
            throw CallStatusUnavailable.stopping();
          }
          try {
            queue.wait(50);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw CallStatusUnavailable.stopping();
          }
        }
      }
      if (failure != null) {
        throw failure;
      }
    }

    void finishQuietly() {
      try {
        finish();
      } catch (RuntimeException ignored) {
        // the handler's own failure is the one the client gets
      }
    }

    /** No more replies after this; waits for a sender under way. */
    void close() {
      closed = true;
      long end = System.nanoTime() + 5_000_000_000L;
      while (wip.get() != 0 && System.nanoTime() < end) {
        java.util.concurrent.locks.LockSupport.parkNanos(100_000);
      }
    }
  }

  /** A batch's app metadata, or null when it has none. */
  private static byte[] bytesOf(ArrowBuf metadata) {
    if (metadata == null || metadata.readableBytes() == 0) {
      return null;
    }
    byte[] bytes = new byte[(int) metadata.readableBytes()];
    metadata.getBytes(metadata.readerIndex(), bytes);
    return bytes;
  }

  /** The learning rate of a batch: its app metadata's {@code lr}, else the command's, else the optimizer's. */
  private static double learningRate(Messages.Command cmd, byte[] metadata, Optimizer optimizer) {
    double lr = Messages.learningRate(metadata, cmd.lr());
    if (Double.isNaN(lr)) {
      lr = optimizer.lr();
    }
    checkLearningRate(lr);
    return lr;
  }

  /** INVALID_ARGUMENT unless {@code lr} is a positive finite float32. */
  static void checkLearningRate(double lr) {
    if (!(lr > 0) || !Double.isFinite(lr) || !Float.isFinite((float) lr)) {
      throw ShardErrors.invalid("Cannot update: learning rate " + lr + " (must be a positive finite number)");
    }
  }

  /**
   * Throws INVALID_ARGUMENT at the first null among the first {@code n} slots of {@code v}: the
   * bytes under a null slot are not a value (a client may leave another id there), so a request
   * with one is refused whole. Null counts come from the validity buffers; a batch without nulls
   * costs one count per column.
   */
  static void checkNoNull(org.apache.arrow.vector.ValueVector v, int n, String verb, String what, String rule) {
    if (v.getNullCount() == 0) {
      return;
    }
    for (int i = 0; i < n; i++) {
      if (v.isNull(i)) {
        throw ShardErrors.invalid("Cannot " + verb + ": the " + what + " of request row " + i + " is null (" + rule + ")");
      }
    }
  }

  /**
   * Throws INVALID_ARGUMENT at the first null row or null value of the first {@code n} rows of a
   * list column of {@code dim} float32 (a gradient or a query), naming the row's id when {@code ids}
   * is given.
   */
  static void checkNoNullValues(FixedSizeListVector list, int n, int dim, ArrowBuf ids, String verb, String what, String rule) {
    org.apache.arrow.vector.ValueVector values = list.getDataVector();
    if (list.getNullCount() == 0 && values.getNullCount() == 0) {
      return;
    }
    for (int i = 0; i < n; i++) {
      String subject = ids == null ? verb : verb + " " + ids.getLong(8L * i);
      if (list.isNull(i)) {
        throw ShardErrors.invalid("Cannot " + subject + ": the " + what + " of request row " + i + " is null (" + rule + ")");
      }
      for (int c = 0; c < dim; c++) {
        if (values.isNull(i * dim + c)) {
          throw ShardErrors.invalid("Cannot " + subject + ": " + what + " value " + c + " of request row " + i + " is null (" + rule + ")");
        }
      }
    }
  }

  /** Throws INVALID_ARGUMENT at the first of {@code n} rows of {@code dim} float32 that is not finite. */
  static void checkFinite(long idAddress, long gradAddress, int n, int dim) {
    long count = (long) n * dim;
    for (long i = 0; i < count; i++) {
      int bits = MemoryUtil.getInt(gradAddress + 4 * i);
      if ((bits & 0x7f800000) == 0x7f800000) {
        long row = i / dim;
        throw ShardErrors.invalid(
            "Cannot update id " + MemoryUtil.getLong(idAddress + row * 8) + ": gradient value " + (i % dim) + " is "
                + Float.intBitsToFloat(bits) + " (gradients must be finite; nothing was applied)");
      }
    }
  }

  /**
   * Sums duplicate ids (in a scratch buffer from {@code allocator}), logs and applies; returns the
   * number of distinct rows, the log ticket in {@code ticket[0]}. The ids ({@code n} int64 at {@code
   * idAddress}) and gradients ({@code n x C} float32 at {@code gradAddress}) are checked.
   */
  static int applyDeduplicated(HostedShard shard, long idAddress, long gradAddress, int n, float lr, long[] ticket,
      BufferAllocator allocator) {
    LongIntMap slots = new LongIntMap(n);
    int[] slotOf = new int[n];
    int distinct = 0;
    for (int i = 0; i < n; i++) {
      int s = slots.putIfAbsent(MemoryUtil.getLong(idAddress + 8L * i), distinct);
      slotOf[i] = s;
      if (s == distinct) {
        distinct++;
      }
    }
    if (distinct == n) {
      ticket[0] = shard.updateUnsynced(idAddress, gradAddress, n, lr);
      return n;
    }
    long rowBytes = shard.rowBytes;
    try (ArrowBuf uniqueIds = allocator.buffer(distinct * 8L);
        ArrowBuf sums = allocator.buffer(distinct * rowBytes)) {
      sums.setZero(0, sums.capacity());
      long sAddress = sums.memoryAddress();
      for (int i = 0; i < n; i++) {
        int s = slotOf[i];
        uniqueIds.setLong(s * 8L, MemoryUtil.getLong(idAddress + 8L * i));
        long src = gradAddress + i * rowBytes;
        long dst = sAddress + s * rowBytes;
        for (int c = 0; c < shard.dim; c++) {
          float sum = Float.intBitsToFloat(MemoryUtil.getInt(dst + 4L * c)) + Float.intBitsToFloat(MemoryUtil.getInt(src + 4L * c));
          MemoryUtil.putInt(dst + 4L * c, Float.floatToRawIntBits(sum));
        }
      }
      ticket[0] = shard.updateUnsynced(uniqueIds.memoryAddress(), sAddress, distinct, lr);
    }
    return distinct;
  }

  private void nearest(HostedShard shard, Messages.Command cmd, FlightStream reader, ServerStreamListener listener) {
    org.apache.arrow.vector.types.pojo.Schema expected = Protocol.nearestRequest(shard.dim);
    try (VectorSchemaRoot out = VectorSchemaRoot.create(Protocol.nearestReply(), allocator)) {
      listener.start(out);
      float[] query = new float[shard.dim];
      while (nextBatch(reader)) {
        VectorSchemaRoot in = reader.getRoot();
        checkSchema(in, expected, "search");
        if (in.getRowCount() != 1) {
          throw ShardErrors.invalid("Cannot search: " + in.getRowCount() + " query rows (send exactly one per batch)");
        }
        FixedSizeListVector queryList = (FixedSizeListVector) in.getVector(0);
        checkNoNullValues(queryList, 1, shard.dim, null, "search", "query", "queries must not be null");
        ArrowBuf q = ((Float4Vector) queryList.getDataVector()).getDataBuffer();
        for (int c = 0; c < shard.dim; c++) {
          query[c] = q.getFloat(4L * c);
        }
        HostedShard.TopHits hits = shard.search(query, cmd.k(), server.maxIdsPerRequest(), cmd.exclude());
        BigIntVector idOut = (BigIntVector) out.getVector(0);
        Float4Vector simOut = (Float4Vector) out.getVector(1);
        idOut.allocateNew(Math.max(hits.count(), 1));
        simOut.allocateNew(Math.max(hits.count(), 1));
        for (int i = 0; i < hits.count(); i++) {
          idOut.set(i, hits.ids()[i]);
          simOut.set(i, hits.similarities()[i]);
        }
        out.setRowCount(hits.count());
        listener.putNext();
      }
    }
  }

  // ------------------------------------------------------------------ actions

  @Override
  public void listActions(CallContext context, StreamListener<ActionType> listener) {
    listener.onNext(new ActionType(Protocol.ACTION_HEALTH, "{\"status\":\"ok\"} when serving"));
    listener.onNext(new ActionType(Protocol.ACTION_DESCRIBE, "table shape, hosted shards and limits (JSON)"));
    listener.onNext(new ActionType(Protocol.ACTION_STATS, "rows, bytes, lookups and updates served (JSON)"));
    listener.onNext(new ActionType(Protocol.ACTION_SNAPSHOT, "body {\"dir\": D, \"version\": N}: write hosted shards (write token)"));
    listener.onCompleted();
  }

  @Override
  public void doAction(CallContext context, Action action, StreamListener<Result> listener) {
    if (Protocol.ACTION_SNAPSHOT.equals(action.getType())) {
      // Actions run on the gRPC event loop (ShardServer uses a direct executor): a snapshot writes
      // whole shards, so it runs on a thread of its own; the server's close waits for it like for
      // an exchange handler, before it frees the shards.
      handlers.incrementAndGet();
      Thread t = new Thread(() -> {
        try {
          runAction(context, action, listener);
        } finally {
          handlers.decrementAndGet();
        }
      }, "embstore-snapshot");
      t.setDaemon(true);
      try {
        t.start();
      } catch (RuntimeException | OutOfMemoryError e) {
        handlers.decrementAndGet();
        listener.onError(ShardErrors.internal("Cannot snapshot: no thread: " + e, e));
      }
      return;
    }
    runAction(context, action, listener);
  }

  private void runAction(CallContext context, Action action, StreamListener<Result> listener) {
    try {
      byte[] result;
      switch (action.getType()) {
        case Protocol.ACTION_HEALTH:
          result = Messages.healthOk();
          break;
        case Protocol.ACTION_DESCRIBE:
          result = server.describe().toJson();
          break;
        case Protocol.ACTION_STATS:
          result = server.stats().toJson();
          break;
        case Protocol.ACTION_SNAPSHOT:
          requireWrite(context, "snapshot");
          result = server.snapshot(Messages.SnapshotRequest.parse(action.getBody())).toJson();
          break;
        default:
          throw ShardErrors.invalid(
              "Cannot run action '" + action.getType() + "': unknown (known: health, describe, stats, snapshot)");
      }
      listener.onNext(new Result(result));
      listener.onCompleted();
    } catch (FlightRuntimeException e) {
      listener.onError(e);
    } catch (RuntimeException e) {
      LOG.warn("action {} failed", action.getType(), e);
      listener.onError(ShardErrors.internal("Cannot run action " + action.getType() + ": " + e, e));
    }
  }
}
