package io.embstore.shard;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.embstore.format.Partitioner;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
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
      Protocol.Command cmd = Protocol.Command.parse(reader.getDescriptor());
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
    if (n > server.maxIdsPerRequest()) {
      throw ShardErrors.exhausted(
          "Cannot " + verb + " " + n + " ids: more than " + server.maxIdsPerRequest() + " per request (maxIdsPerRequest; split the request)");
    }
    return n;
  }

  /** A reply is held to the same message limit as a request, checked before it is allocated. */
  private void checkReplyBytes(int n, HostedShard shard) {
    long bytes = n * shard.rowBytes;
    if (bytes > server.maxMessageBytes()) {
      throw ShardErrors.exhausted("Cannot look up " + n + " ids: the reply would be " + bytes
          + " bytes, more than " + server.maxMessageBytes() + " (maxMessageBytes; split the request)");
    }
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
          int n = checkRows(in, "look up");
          checkReplyBytes(n, shard);
          ArrowBuf ids = ((BigIntVector) in.getVector(0)).getDataBuffer();
          shard.checkIds(ids, n, "look up");
          ArrowBuf data = allocate(list, n); // the vector lets go of the previous reply
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

  /** Allocates {@code list} for {@code n} non-null rows and returns its float data buffer. */
  static ArrowBuf allocate(FixedSizeListVector list, int n) {
    list.clear();
    list.setInitialCapacity(Math.max(n, 1));
    list.allocateNew();
    Float4Vector data = (Float4Vector) list.getDataVector();
    list.getValidityBuffer().setOne(0, list.getValidityBuffer().capacity());
    data.getValidityBuffer().setOne(0, data.getValidityBuffer().capacity());
    list.setValueCount(n);
    return data.getDataBuffer();
  }

  private void update(HostedShard shard, Protocol.Command cmd, FlightStream reader, ServerStreamListener listener) {
    org.apache.arrow.vector.types.pojo.Schema expected = Protocol.updateRequest(shard.dim);
    try (VectorSchemaRoot out = VectorSchemaRoot.create(Protocol.updateReply(), allocator)) {
      listener.start(out);
      BigIntVector applied = (BigIntVector) out.getVector(0);
      applied.allocateNew(1); // reused by every batch: without zero copy putNext copies it out
      byte[] lastMeta = null;
      double lastLr = Double.NaN;
      while (nextBatch(reader)) {
        VectorSchemaRoot in = reader.getRoot();
        checkSchema(in, expected, "update");
        int n = checkRows(in, "update");
        byte[] meta = bytesOf(reader.getLatestMetadata());
        // a trainer sends the same rate for many batches in a row: parse it once
        double lr = meta != null && Arrays.equals(meta, lastMeta) ? lastLr : learningRate(cmd, meta, shard.spec);
        lastMeta = meta;
        lastLr = lr;
        ArrowBuf ids = ((BigIntVector) in.getVector(0)).getDataBuffer();
        ArrowBuf grads = ((Float4Vector) ((FixedSizeListVector) in.getVector(1)).getDataVector()).getDataBuffer();
        shard.checkIds(ids, n, "update");
        checkFinite(ids.memoryAddress(), grads.memoryAddress(), n, shard.dim);
        int rows = applyDeduplicated(shard, ids, grads, n, (float) lr);
        applied.set(0, rows);
        out.setRowCount(1);
        awaitReady(listener);
        listener.putNext();
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

  /** The learning rate of a batch: its app metadata's {@code lr}, else the command's, else the table's. */
  private static double learningRate(Protocol.Command cmd, byte[] metadata, OptimizerSpec spec) {
    double lr = cmd.lr();
    if (metadata != null) {
      String text = new String(metadata, StandardCharsets.UTF_8);
      try {
        JsonNode node = Protocol.JSON.readTree(text);
        if (node != null && node.path("lr").isNumber()) {
          lr = node.get("lr").asDouble();
        } else if (node != null && node.has("lr")) {
          throw ShardErrors.invalid("Cannot update: lr " + node.get("lr") + " in app metadata is not a number");
        }
      } catch (IOException e) {
        throw ShardErrors.invalid("Cannot update: app metadata is not JSON: " + Protocol.abbreviate(text));
      }
    }
    if (Double.isNaN(lr)) {
      lr = spec.lr();
    }
    if (!(lr > 0) || !Double.isFinite(lr) || !Float.isFinite((float) lr)) {
      throw ShardErrors.invalid("Cannot update: learning rate " + lr + " (must be a positive finite number)");
    }
    return lr;
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

  /** Sums duplicate ids (in a scratch buffer) and applies; returns the number of distinct rows. */
  private int applyDeduplicated(HostedShard shard, ArrowBuf ids, ArrowBuf grads, int n, float lr) {
    long idAddress = ids.memoryAddress();
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
      shard.applyUpdate(idAddress, grads.memoryAddress(), n, lr);
      return n;
    }
    long rowBytes = shard.rowBytes;
    try (ArrowBuf uniqueIds = allocator.buffer(distinct * 8L);
        ArrowBuf sums = allocator.buffer(distinct * rowBytes)) {
      sums.setZero(0, sums.capacity());
      long gAddress = grads.memoryAddress();
      long sAddress = sums.memoryAddress();
      for (int i = 0; i < n; i++) {
        int s = slotOf[i];
        uniqueIds.setLong(s * 8L, MemoryUtil.getLong(idAddress + 8L * i));
        long src = gAddress + i * rowBytes;
        long dst = sAddress + s * rowBytes;
        for (int c = 0; c < shard.dim; c++) {
          float sum = Float.intBitsToFloat(MemoryUtil.getInt(dst + 4L * c)) + Float.intBitsToFloat(MemoryUtil.getInt(src + 4L * c));
          MemoryUtil.putInt(dst + 4L * c, Float.floatToRawIntBits(sum));
        }
      }
      shard.applyUpdate(uniqueIds.memoryAddress(), sAddress, distinct, lr);
    }
    return distinct;
  }

  private void nearest(HostedShard shard, Protocol.Command cmd, FlightStream reader, ServerStreamListener listener) {
    int k = cmd.k();
    if (k < 1 || k > server.maxIdsPerRequest()) {
      throw ShardErrors.invalid("Cannot search: k=" + k + " (must be in [1, " + server.maxIdsPerRequest() + "])");
    }
    org.apache.arrow.vector.types.pojo.Schema expected = Protocol.nearestRequest(shard.dim);
    try (VectorSchemaRoot out = VectorSchemaRoot.create(Protocol.nearestReply(), allocator)) {
      listener.start(out);
      long[] ids = new long[(int) Math.min(k, shard.rows)];
      float[] sims = new float[ids.length];
      float[] query = new float[shard.dim];
      while (nextBatch(reader)) {
        VectorSchemaRoot in = reader.getRoot();
        checkSchema(in, expected, "search");
        if (in.getRowCount() != 1) {
          throw ShardErrors.invalid("Cannot search: " + in.getRowCount() + " query rows (send exactly one per batch)");
        }
        ArrowBuf q = ((Float4Vector) ((FixedSizeListVector) in.getVector(0)).getDataVector()).getDataBuffer();
        double norm = 0;
        for (int c = 0; c < shard.dim; c++) {
          query[c] = q.getFloat(4L * c);
          if (!Float.isFinite(query[c])) {
            throw ShardErrors.invalid("Cannot search: query value " + c + " is " + query[c] + " (must be finite)");
          }
          norm += (double) query[c] * query[c];
        }
        if (norm == 0) {
          throw ShardErrors.invalid("Cannot search: the query vector is zero (cosine similarity is undefined)");
        }
        int found = shard.nearest(query, ids.length, cmd.exclude(), ids, sims);
        BigIntVector idOut = (BigIntVector) out.getVector(0);
        org.apache.arrow.vector.Float4Vector simOut = (org.apache.arrow.vector.Float4Vector) out.getVector(1);
        idOut.allocateNew(Math.max(found, 1));
        simOut.allocateNew(Math.max(found, 1));
        for (int i = 0; i < found; i++) {
          idOut.set(i, ids[i]);
          simOut.set(i, sims[i]);
        }
        out.setRowCount(found);
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
      ObjectNode result;
      switch (action.getType()) {
        case Protocol.ACTION_HEALTH:
          result = Protocol.JSON.createObjectNode().put("status", "ok");
          break;
        case Protocol.ACTION_DESCRIBE:
          result = server.describe();
          break;
        case Protocol.ACTION_STATS:
          result = server.stats();
          break;
        case Protocol.ACTION_SNAPSHOT:
          requireWrite(context, "snapshot");
          result = snapshot(action.getBody());
          break;
        default:
          throw ShardErrors.invalid(
              "Cannot run action '" + action.getType() + "': unknown (known: health, describe, stats, snapshot)");
      }
      listener.onNext(new Result(result.toString().getBytes(StandardCharsets.UTF_8)));
      listener.onCompleted();
    } catch (FlightRuntimeException e) {
      listener.onError(e);
    } catch (RuntimeException e) {
      LOG.warn("action {} failed", action.getType(), e);
      listener.onError(ShardErrors.internal("Cannot run action " + action.getType() + ": " + e, e));
    }
  }

  private ObjectNode snapshot(byte[] body) {
    JsonNode req;
    try {
      req = Protocol.JSON.readTree(body == null ? new byte[0] : body);
    } catch (IOException e) {
      throw ShardErrors.invalid("Cannot snapshot: body is not JSON (expected {\"dir\": D, \"version\": N})");
    }
    if (req == null || !req.path("dir").isTextual() || !req.path("version").isIntegralNumber() || req.get("version").asLong() < 1) {
      throw ShardErrors.invalid("Cannot snapshot: body " + (req == null ? "empty" : req.toString()) + " (expected {\"dir\": D, \"version\": N >= 1})");
    }
    TableLocation dir;
    try {
      dir = server.storage().location(req.get("dir").asText());
    } catch (IllegalArgumentException e) {
      throw ShardErrors.invalid("Cannot snapshot to " + req.get("dir").asText() + ": " + e.getMessage());
    }
    long version = req.get("version").asLong();
    int[] which = server.shards();
    if (req.has("shards")) {
      if (!req.get("shards").isArray()) {
        throw ShardErrors.invalid("Cannot snapshot: shards " + req.get("shards") + " is not a list");
      }
      which = new int[req.get("shards").size()];
      for (int i = 0; i < which.length; i++) {
        which[i] = req.get("shards").get(i).asInt(-1);
      }
    }
    List<TableManifest.ShardEntry> entries;
    try {
      entries = server.writeShards(dir, version, which);
    } catch (java.nio.file.FileAlreadyExistsException e) {
      throw ShardErrors.invalid("Cannot snapshot to " + dir + ": version " + version + " already has a file " + e.getFile());
    } catch (java.nio.file.NoSuchFileException e) {
      throw ShardErrors.invalid("Cannot snapshot to " + dir + ": no such directory");
    } catch (IOException e) {
      throw ShardErrors.internal("Cannot snapshot to " + dir + ": " + e.getMessage(), e);
    }
    ObjectNode result = Protocol.JSON.createObjectNode();
    result.put("version", version);
    ArrayNode shards = result.putArray("shards");
    for (TableManifest.ShardEntry s : entries) {
      shards.add(shardEntryJson(s));
    }
    result.set("optimizer", ShardServer.optimizerJson(server.manifest().optimizer()));
    return result;
  }

  static ObjectNode shardEntryJson(TableManifest.ShardEntry s) {
    ObjectNode n = Protocol.JSON.createObjectNode();
    n.put("index", s.index());
    n.put("file", s.file());
    n.put("rows", s.rows());
    n.put("minId", s.minId());
    n.put("maxId", s.maxId());
    n.put("bytes", s.bytes());
    n.put("crc32c", io.embstore.format.Checksums.hex(s.crc32c()));
    return n;
  }

  static TableManifest.ShardEntry shardEntry(JsonNode n) {
    return new TableManifest.ShardEntry(
        n.get("index").asInt(),
        n.get("file").asText(),
        n.get("rows").asLong(),
        n.get("minId").asLong(),
        n.get("maxId").asLong(),
        n.get("bytes").asLong(),
        (int) Long.parseLong(n.get("crc32c").asText(), 16));
  }

  static String describeShard(Partitioner p, int shard) {
    return p.describeShard(shard);
  }
}
