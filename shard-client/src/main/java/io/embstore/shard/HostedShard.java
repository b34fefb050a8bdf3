package io.embstore.shard;

import io.embstore.format.HalfFloats;
import io.embstore.format.Int8Rows;
import io.embstore.format.Partitioner;
import io.embstore.format.ShardWriter;
import io.embstore.format.Table;
import io.embstore.format.TableFormat;
import io.embstore.format.TableManifest;
import io.embstore.format.ValueType;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.util.MemoryUtil;
import org.apache.arrow.util.AutoCloseables;

/**
 * One shard held in memory: a contiguous off-heap buffer of rows x C values of the table's {@link
 * ValueType} (row i = the id at position i, see {@link Partitioner#idAt}; 2 bytes a value for a
 * float16 or bfloat16 table) plus one contiguous float32 buffer per optimizer state column, all
 * from a child allocator named after the shard. A row's position is computed by the partitioner;
 * there is no hash map.
 *
 * <p>Rows of an int8 table (C codes, a float32 scale and bias: C + 8 bytes, {@link Int8Rows}) are
 * decoded to float32 when they leave the shard (lookups, searches) and are never updated: {@link
 * #update} refuses, the shard keeps serving; it holds no optimizer state and is not snapshotted
 * (the table it was loaded from is its state).
 *
 * <p>Rows of a 16-bit table are widened to float32 when they leave the shard (lookups, searches)
 * and when an update applies the optimizer, in float32, to a widened copy of the row; the result
 * is stored with stochastic rounding ({@link HalfFloats#encodeStochastic}), so that updates
 * smaller than half a 16-bit step still move the row on average instead of being rounded away.
 * The random bits of a row's rounding come from the update's number (the write-ahead log's
 * sequence number when the shard has a log) and the row's position, so a replay of the log rounds
 * exactly as the original updates did.
 *
 * <p>Concurrency: lookups copy rows without locking (a reader may see a row half-way through an
 * update: Hogwild). Updates lock the row's stripe (one of {@value #STRIPES} locks, by position), so
 * two updates of one row, or an update and a snapshot copy of it, never interleave: the embedding
 * and its optimizer state move together. With a write-ahead log ({@link #openLog}) an update also
 * holds the shard's sequencer lock while it is logged and applied, so that the log's order is the
 * order of application (the order a replay must follow to give the same rows bit for bit), and a
 * snapshot holds it while it copies a chunk, so that each chunk is a cut of the log at a known
 * update number (see {@link ShardLog}). Lock order: sequencer, then stripes.
 */
final class HostedShard implements AutoCloseable {
  static final int STRIPES = 1024;

  final int index;
  final Partitioner partitioner;
  final int dim;
  final long rows;
  /** Bytes of one float32 row: a lookup's reply row and an update's gradient row. */
  final long rowBytes;
  /** The table's value type: how the rows are held. */
  final ValueType valueType;
  /** Bytes of one row as held: C x the value type's size (int8: C + 8). */
  final long storedRowBytes;
  final Optimizer optimizer;
  final List<TableManifest.StateColumn> stateColumns;
  private final BufferAllocator allocator;
  private final ArrowBuf embeddings;
  private final ArrowBuf[] state;
  private final long embAddress;
  /**
   * Float views of a float32 shard's rows for bulk copies into arrays ({@link #readRow(long, float[],
   * int)}): view k holds rows {@code [k * viewRows, (k + 1) * viewRows)}, as a buffer holds at most 2
   * GiB. Null for other value types.
   */
  private final java.nio.FloatBuffer[] views;
  private final long viewRows;
  private final long[] stateAddress;
  private final ReentrantLock[] stripes = new ReentrantLock[STRIPES];
  /** Orders logging and applying of updates, and snapshot chunk copies, when the shard has a log. */
  private final ReentrantLock sequencer = new ReentrantLock();
  /** One snapshot of this shard at a time: a snapshot's log cut spans its whole copy. */
  private final Object snapshotLock = new Object();
  /** The write-ahead log, or null. */
  private ShardLog log;
  /** Numbers the updates of a shard without a log, for the random bits of stochastic rounding. */
  private final java.util.concurrent.atomic.AtomicLong updateNumber = new java.util.concurrent.atomic.AtomicLong();
  private static final VarHandle INT_LE = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

  /** Sink of {@link #touch}'s loads, so that the JIT keeps them. */
  @SuppressWarnings("unused")
  private volatile long touched;

  final LongAdder lookupRows = new LongAdder();
  final LongAdder lookupRequests = new LongAdder();
  final LongAdder updateRows = new LongAdder();
  final LongAdder updateRequests = new LongAdder();

  private HostedShard(int index, Partitioner partitioner, int dim, ValueType type, Optimizer optimizer, BufferAllocator parent) {
    this.index = index;
    this.partitioner = partitioner;
    this.dim = dim;
    this.rows = partitioner.shardRows(index);
    this.rowBytes = dim * 4L;
    this.valueType = type;
    this.storedRowBytes = type.rowBytes(dim);
    this.optimizer = optimizer;
    // An int8 shard is never updated: no optimizer state, so it holds C + 8 bytes a row and nothing else.
    this.stateColumns = type.isTrainable() ? optimizer.stateColumns(dim) : List.of();
    for (int i = 0; i < STRIPES; i++) {
      stripes[i] = new ReentrantLock();
    }
    BufferAllocator child = parent.newChildAllocator("shard-" + index, 0, Long.MAX_VALUE);
    ArrowBuf emb = null;
    ArrowBuf[] st = new ArrowBuf[stateColumns.size()];
    try {
      emb = child.buffer(rows * storedRowBytes);
      for (int i = 0; i < st.length; i++) {
        st[i] = child.buffer(rows * stateColumns.get(i).width() * 4L);
        st[i].setZero(0, st[i].capacity());
      }
    } catch (RuntimeException e) {
      closeAll(e, st, emb, child);
      throw e;
    }
    this.allocator = child;
    this.embeddings = emb;
    this.state = st;
    this.embAddress = emb.memoryAddress();
    this.viewRows = Math.max(1, Integer.MAX_VALUE / Math.max(1, storedRowBytes));
    if (type == ValueType.FLOAT32 && rows > 0) {
      this.views = new java.nio.FloatBuffer[(int) ((rows + viewRows - 1) / viewRows)];
      for (int k = 0; k < views.length; k++) {
        long first = k * viewRows;
        long bytes = Math.min(viewRows, rows - first) * storedRowBytes;
        views[k] = emb.nioBuffer(first * storedRowBytes, (int) bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
      }
    } else {
      this.views = null;
    }
    this.stateAddress = new long[st.length];
    for (int i = 0; i < st.length; i++) {
      stateAddress[i] = st[i].memoryAddress();
    }
  }

  private static void closeAll(Throwable primary, ArrowBuf[] bufs, AutoCloseable... more) {
    for (ArrowBuf b : bufs) {
      if (b != null) {
        b.close();
      }
    }
    try {
      AutoCloseables.close(more);
    } catch (Exception e) {
      primary.addSuppressed(e);
    }
  }

  /**
   * Loads shard {@code index} of {@code table} (checksum verified). Optimizer state is loaded when
   * the table carries state columns of the same optimizer; otherwise it starts at zero.
   */
  static HostedShard load(Table table, int index, Optimizer optimizer, BufferAllocator parent) throws IOException {
    TableManifest m = table.manifest();
    HostedShard shard = new HostedShard(index, m.partitioner(), m.dim(), m.valueType(), optimizer, parent);
    boolean sameState = m.optimizer() != null && m.optimizer().name().equals(optimizer.name())
        && m.stateColumns().equals(shard.stateColumns);
    try {
      // One pass over the file: from HDFS or S3 a shard is streamed once, its checksum on the way;
      // the rows as stored (16-bit rows stay 16-bit).
      if (sameState) {
        table.readShardStored(index, shard.allocator, shard.embeddings, shard.state);
      } else {
        table.readShardStored(index, shard.allocator, shard.embeddings);
      }
    } catch (IOException | RuntimeException e) {
      shard.close();
      throw e;
    }
    return shard;
  }

  /**
   * Loads shards {@code indexes} of partitioning {@code target} from {@code table}, which is
   * partitioned otherwise ({@link Table#readRepartitioned}: one scan of the table for all of them),
   * into {@code out[index]}. Optimizer state is loaded as {@link #load} does.
   */
  static void loadRepartitioned(Table table, Partitioner target, int[] indexes, Optimizer spec, BufferAllocator parent,
      HostedShard[] out) throws IOException {
    TableManifest m = table.manifest();
    ArrowBuf[][] into = new ArrowBuf[target.numShards()][];
    try {
      for (int s : indexes) {
        HostedShard shard = new HostedShard(s, target, m.dim(), m.valueType(), spec, parent);
        out[s] = shard;
        boolean sameState = m.optimizer() != null && m.optimizer().name().equals(spec.name())
            && m.stateColumns().equals(shard.stateColumns);
        ArrowBuf[] bufs = new ArrowBuf[1 + (sameState ? shard.state.length : 0)];
        bufs[0] = shard.embeddings;
        for (int i = 1; i < bufs.length; i++) {
          bufs[i] = shard.state[i - 1];
        }
        into[s] = bufs;
      }
      table.readRepartitioned(target, into, parent, true);
    } catch (IOException | RuntimeException e) {
      for (int s : indexes) {
        if (out[s] != null) {
          out[s].close();
          out[s] = null;
        }
      }
      throw e;
    }
  }

  /** Creates shard {@code index} in memory, row of id {@code id} filled by {@code init}. */
  static HostedShard initialize(
      Partitioner partitioner, int dim, int index, RowInitializer init, Optimizer optimizer, BufferAllocator parent) {
    return initialize(partitioner, dim, ValueType.FLOAT32, index, init, optimizer, parent);
  }

  /** {@link #initialize(Partitioner, int, int, RowInitializer, Optimizer, BufferAllocator)} of rows of {@code type} (narrowed to nearest even). */
  static HostedShard initialize(
      Partitioner partitioner, int dim, ValueType type, int index, RowInitializer init, Optimizer optimizer, BufferAllocator parent) {
    HostedShard shard = new HostedShard(index, partitioner, dim, type, optimizer, parent);
    float[] row = new float[dim];
    try {
      for (long pos = 0; pos < shard.rows; pos++) {
        java.util.Arrays.fill(row, 0f);
        init.fill(partitioner.idAt(index, pos), row);
        long at = shard.embAddress + pos * shard.storedRowBytes;
        if (type == ValueType.INT8) {
          int failed = Int8Rows.encodeRow(row, at, dim);
          if (failed != Int8Rows.OK) {
            throw new IllegalArgumentException("Cannot initialize id " + partitioner.idAt(index, pos) + " of an int8 shard: " + Int8Rows.why(row, dim, failed));
          }
          continue;
        }
        for (int c = 0; c < dim; c++) {
          switch (type) {
            case FLOAT32 -> MemoryUtil.putInt(at + 4L * c, Float.floatToRawIntBits(row[c]));
            case FLOAT16 -> MemoryUtil.putShort(at + 2L * c, HalfFloats.toFloat16(row[c]));
            case BFLOAT16 -> MemoryUtil.putShort(at + 2L * c, HalfFloats.toBfloat16(row[c]));
            default -> throw new IllegalStateException(type.label());
          }
        }
      }
    } catch (RuntimeException e) {
      shard.close();
      throw e;
    }
    return shard;
  }

  /**
   * Opens this shard's write-ahead log in {@code walDir} and replays it on top of the rows loaded
   * from {@code origin} (see {@link ShardLog#open}); returns the number of update records replayed.
   * Called once, before the shard serves.
   */
  long openLog(java.nio.file.Path walDir, ShardLog.Sync sync, ShardLog.Origin origin, io.embstore.format.TableStorage storage)
      throws IOException {
    long[] stateRow = new long[stateAddress.length];
    try (ArrowBuf scratch = valueType.isCompact() ? allocator.buffer(rowBytes) : null) {
      long scratchAddress = scratch == null ? 0 : scratch.memoryAddress();
      log = ShardLog.open(walDir, index, rows, dim, optimizer, origin, sync, storage, allocator, (seq, ids, grads, n, lr, base) -> {
        for (int i = 0; i < n; i++) {
          long id = MemoryUtil.getLong(ids + 8L * i);
          if (!partitioner.contains(id) || partitioner.shardOf(id) != index) {
            throw new IOException("update " + seq + " names id " + id + ", not one of " + partitioner.describeShard(index));
          }
          long pos = partitioner.positionOf(id);
          if (!base.reflects(pos, seq)) {
            applyRow(pos, grads + i * rowBytes, lr, stateRow, scratchAddress, seq);
          }
        }
      });
    }
    return log.replayed();
  }

  /** The write-ahead log, or null. */
  ShardLog log() {
    return log;
  }

  /** Bytes held: embeddings plus optimizer state. */
  long bytes() {
    long b = embeddings.capacity();
    for (ArrowBuf s : state) {
      b += s.capacity();
    }
    return b;
  }

  // ------------------------------------------------------------------ validation

  /**
   * Throws INVALID_ARGUMENT (via {@link ShardErrors}) at the first id of {@code ids[0..n)} (an int64
   * buffer) that is outside [0, V) or not owned by this shard.
   */
  void checkIds(ArrowBuf ids, int n, String verb) {
    checkIds(ids.memoryAddress(), n, verb);
  }

  /** {@link #checkIds(ArrowBuf, int, String)} of {@code n} int64 ids at {@code address}. */
  void checkIds(long address, int n, String verb) {
    for (int i = 0; i < n; i++) {
      checkId(MemoryUtil.getLong(address + 8L * i), i, verb);
    }
  }

  /**
   * Throws INVALID_ARGUMENT (via {@link ShardErrors}) when {@code id}, row {@code row} of a request,
   * is outside [0, V) or not owned by this shard.
   */
  void checkId(long id, int row, String verb) {
    if (!partitioner.contains(id)) {
      throw ShardErrors.invalid(
          "Cannot " + verb + " id " + id + ": outside [0, " + partitioner.numRows() + ") (request row " + row + ", " + partitioner.describeShard(index) + ")");
    }
    if (partitioner.shardOf(id) != index) {
      throw ShardErrors.invalid(
          "Cannot " + verb + " id " + id + ": not owned by " + partitioner.describeShard(index) + " (request row " + row + "; it belongs to shard " + partitioner.shardOf(id) + ")");
    }
  }

  // ------------------------------------------------------------------ lookup

  /** Copies the rows of {@code ids[0..n)} (validated) into {@code out}, back to back. */
  void copyRows(ArrowBuf ids, int n, ArrowBuf out) {
    long idAddress = ids.memoryAddress();
    long outAddress = out.memoryAddress();
    for (int i = 0; i < n; i++) {
      long pos = partitioner.positionOf(MemoryUtil.getLong(idAddress + 8L * i));
      if (valueType.isCompact()) {
        valueType.decode(embAddress + pos * storedRowBytes, outAddress + i * rowBytes, 1, dim);
      } else {
        MemoryUtil.copyMemory(embAddress + pos * rowBytes, outAddress + i * rowBytes, rowBytes);
      }
    }
    lookupRows.add(n);
    lookupRequests.increment();
  }

  /**
   * Writes the rows of {@code ids[0..n)} (validated) to {@code out}, back to back, gathered through
   * {@code chunk}: the rows go from the shard into the caller's buffer (gRPC's, for a fast lookup)
   * with one copy through a small buffer that stays in the cache.
   */
  void writeRows(ArrowBuf ids, int n, java.io.OutputStream out, byte[] chunk) throws IOException {
    if (valueType.isCompact()) {
      writeWidenedRows(ids, n, out, chunk);
    } else {
      writeStoredRows(ids, n, out, chunk);
    }
  }

  /** {@link #writeRows} with the rows as held: C values of the table's type (float32 or 16 bits) a row, C + 8 bytes for int8. */
  void writeStoredRows(ArrowBuf ids, int n, java.io.OutputStream out, byte[] chunk) throws IOException {
    long idAddress = ids.memoryAddress();
    int fill = 0;
    for (int i = 0; i < n; i++) {
      long src = partitioner.positionOf(MemoryUtil.getLong(idAddress + 8L * i)) * storedRowBytes;
      long left = storedRowBytes;
      while (left > 0) {
        int take = (int) Math.min(left, chunk.length - fill);
        embeddings.getBytes(src, chunk, fill, take);
        fill += take;
        src += take;
        left -= take;
        if (fill == chunk.length) {
          out.write(chunk, 0, fill);
          fill = 0;
        }
      }
    }
    if (fill > 0) {
      out.write(chunk, 0, fill);
    }
    lookupRows.add(n);
    lookupRequests.increment();
  }

  /** {@link #writeRows} of a 16-bit or int8 shard: each value decoded to float32 straight into {@code chunk}. */
  private void writeWidenedRows(ArrowBuf ids, int n, java.io.OutputStream out, byte[] chunk) throws IOException {
    long idAddress = ids.memoryAddress();
    int fill = 0;
    boolean int8 = valueType == ValueType.INT8;
    for (int i = 0; i < n; i++) {
      long at = embAddress + partitioner.positionOf(MemoryUtil.getLong(idAddress + 8L * i)) * storedRowBytes;
      float scale = int8 ? Int8Rows.scale(at, dim) : 0f;
      float bias = int8 ? Int8Rows.bias(at, dim) : 0f;
      for (int c = 0; c < dim; c++) {
        if (fill + 4 > chunk.length) {
          out.write(chunk, 0, fill);
          fill = 0;
        }
        float v = int8 ? (MemoryUtil.getByte(at + c) & 0xff) * scale + bias : value(at, c);
        INT_LE.set(chunk, fill, Float.floatToRawIntBits(v));
        fill += 4;
      }
    }
    if (fill > 0) {
      out.write(chunk, 0, fill);
    }
    lookupRows.add(n);
    lookupRequests.increment();
  }

  /** Value {@code c} of the row at address {@code at}, as float32. */
  private float value(long at, int c) {
    return switch (valueType) {
      case FLOAT32 -> Float.intBitsToFloat(MemoryUtil.getInt(at + 4L * c));
      case FLOAT16 -> HalfFloats.float16ToFloat(MemoryUtil.getShort(at + 2L * c));
      case BFLOAT16 -> Float.intBitsToFloat((MemoryUtil.getShort(at + 2L * c) & 0xffff) << 16);
      case INT8 -> (MemoryUtil.getByte(at + c) & 0xff) * Int8Rows.scale(at, dim) + Int8Rows.bias(at, dim);
    };
  }

  /**
   * Copies the rows of {@code ids[u]}, u = {@code which[from + r]} for r in [0, n) (validated), as
   * float32 into {@code out} at {@code out[slot[u] * C ..]}: an in-process lookup, straight from the
   * shard's memory into the caller's array (16-bit and int8 rows decoded on the way), counted as one
   * lookup request.
   */
  void copyRows(long[] ids, int[] slot, int[] which, int from, int n, float[] out) {
    for (int r = 0; r < n; r++) {
      int u = which[from + r];
      readRow(partitioner.positionOf(ids[u]), out, slot[u] * dim);
    }
    lookupRows.add(n);
    lookupRequests.increment();
  }

  /** Reads the row at {@code pos} as float32 into {@code out[off .. off + C)}. */
  void readRow(long pos, float[] out, int off) {
    if (views != null) {
      // a bulk copy (memcpy) where a loop of loads would be one value at a time
      views[(int) (pos / viewRows)].get((int) (pos % viewRows) * dim, out, off, dim);
      return;
    }
    long at = embAddress + pos * storedRowBytes;
    if (valueType == ValueType.INT8) {
      Int8Rows.decodeRow(at, out, off, dim);
    } else {
      HalfFloats.decode(valueType, at, out, off, dim);
    }
  }

  /** Reads the row at {@code pos} (for tests and nearest-by-id), as float32. */
  void readRow(long pos, float[] out) {
    readRow(pos, out, 0);
  }

  // ------------------------------------------------------------------ update

  /**
   * Applies one update (as {@link #applyUpdate}); with a write-ahead log, logs it first (ids,
   * summed gradients and rate, in the order of application) and returns once it is as durable as
   * the log's sync mode promises. A log that cannot be written refuses the update before anything
   * is applied: RESOURCE_EXHAUSTED when the disk is full, else UNAVAILABLE.
   */
  void update(long idAddress, long gradAddress, int n, float lr) {
    awaitDurable(updateUnsynced(idAddress, gradAddress, n, lr));
  }

  /** Returns once the update of {@code ticket} is as durable as the log's sync mode promises (at once without a log). */
  void awaitDurable(long ticket) {
    if (log == null) {
      return;
    }
    try {
      log.awaitDurable(ticket);
    } catch (IOException e) {
      throw syncFailure(e);
    }
  }

  /** The failure of an update whose record could not be forced. */
  org.apache.arrow.flight.FlightRuntimeException syncFailure(IOException e) {
    return logFailure("write-ahead log " + log.dir() + " failed to sync (" + e.getMessage()
        + "); the update was applied in memory but may not survive a crash", e);
  }

  /**
   * {@link #update} without waiting for the log: logs (when the shard has a log) and applies, and
   * returns the record's ticket for {@link ShardLog#whenDurable} (0 without a log).
   */
  long updateUnsynced(long idAddress, long gradAddress, int n, float lr) {
    checkUpdatable();
    if (log == null) {
      applyUpdate(idAddress, gradAddress, n, lr, updateNumber.getAndIncrement());
      return 0;
    }
    long ticket;
    sequencer.lock();
    try {
      long seq = log.nextSeq(); // the record's number: the replay rounds with the same bits
      try {
        ticket = log.append(idAddress, gradAddress, n, lr);
      } catch (IOException e) {
        throw logFailure("cannot append to write-ahead log " + log.dir() + " (" + e.getMessage() + "); nothing was applied", e);
      }
      applyUpdate(idAddress, gradAddress, n, lr, seq);
    } finally {
      sequencer.unlock();
    }
    return ticket;
  }

  /** INVALID_ARGUMENT for an update of an int8 shard: a quantized serving copy is read-only. */
  void checkUpdatable() {
    if (!valueType.isTrainable()) {
      throw ShardErrors.invalid("Cannot update shard " + index + ": its rows are " + valueType
          + " (a quantized serving copy is read-only; update a float32, float16 or bfloat16 table and convert it again)");
    }
  }

  private org.apache.arrow.flight.FlightRuntimeException logFailure(String what, IOException e) {
    String message = "Cannot update shard " + index + ": " + what;
    if (String.valueOf(e.getMessage()).contains("No space left on device")) {
      return org.apache.arrow.flight.CallStatus.RESOURCE_EXHAUSTED.withDescription(message + " (updates are refused until the log's disk has room; lookups go on)").withCause(e).toRuntimeException();
    }
    return org.apache.arrow.flight.CallStatus.UNAVAILABLE.withDescription(message + " (updates are refused; lookups go on)").withCause(e).toRuntimeException();
  }

  /**
   * Applies one update: row {@code i} of {@code n} gets the gradient at {@code gradAddress + i * C *
   * 4}. Ids must be validated and distinct, gradients finite. Not logged: callers use {@link #update}.
   */
  private void applyUpdate(long idAddress, long gradAddress, int n, float lr, long updateNumber) {
    touch(idAddress, n);
    long[] stateRow = new long[stateAddress.length];
    try (ArrowBuf scratch = valueType.isCompact() ? allocator.buffer(rowBytes) : null) {
      long scratchAddress = scratch == null ? 0 : scratch.memoryAddress();
      for (int i = 0; i < n; i++) {
        long pos = partitioner.positionOf(MemoryUtil.getLong(idAddress + 8L * i));
        long g = gradAddress + i * rowBytes;
        ReentrantLock lock = stripes[(int) (pos & (STRIPES - 1))];
        lock.lock();
        try {
          applyRow(pos, g, lr, stateRow, scratchAddress, updateNumber);
        } finally {
          lock.unlock();
        }
      }
    }
    updateRows.add(n);
    updateRequests.increment();
  }

  /**
   * Applies one update from the caller's heap, in process, to a shard without a write-ahead log
   * (one with a log takes {@link #update}: its record needs the gradients' bytes anyway): row r in
   * [0, n) is the id {@code ids[which[from + r]]}, its summed gradient at {@code sums[which[from +
   * r] * C ..]}. Validates the ids first (as {@link #checkIds}, verb "update"), then does what
   * {@link #update} does, with the same arithmetic, locks, rounding bits and counters: each row's
   * gradient is staged in a C-float scratch (it stays in L1) and the optimizer applied from there,
   * so no buffer of the whole batch's gradients is written.
   */
  void update(long[] ids, int[] which, int from, int n, float[] sums, float lr) {
    for (int r = 0; r < n; r++) {
      checkId(ids[which[from + r]], r, "update");
    }
    checkUpdatable();
    if (log != null) {
      throw new IllegalStateException("Cannot update shard " + index + " from the heap: it has a write-ahead log (" + log.dir() + ")");
    }
    long number = updateNumber.getAndIncrement();
    long sink = 0;
    for (int r = 0; r < n; r++) {
      sink += touchRow(partitioner.positionOf(ids[which[from + r]]));
    }
    touched = sink;
    long[] stateRow = new long[stateAddress.length];
    boolean compact = valueType.isCompact();
    try (ArrowBuf scratch = allocator.buffer(compact ? 2 * rowBytes : rowBytes)) {
      long g = scratch.memoryAddress();
      long wide = compact ? g + rowBytes : 0;
      java.nio.FloatBuffer grad = scratch.nioBuffer(0, (int) rowBytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
      for (int r = 0; r < n; r++) {
        int u = which[from + r];
        long pos = partitioner.positionOf(ids[u]);
        grad.put(0, sums, u * dim, dim);
        ReentrantLock lock = stripes[(int) (pos & (STRIPES - 1))];
        lock.lock();
        try {
          applyRow(pos, g, lr, stateRow, wide, number);
        } finally {
          lock.unlock();
        }
      }
    }
    updateRows.add(n);
    updateRequests.increment();
  }

  /**
   * Loads one word of every cache line of the rows of {@code ids[0..n)} and of their optimizer
   * state: the loads are independent, so the CPU overlaps their cache misses, where the update loop
   * (a lock, a fence, per row) takes them one row at a time.
   */
  private void touch(long idAddress, int n) {
    long sink = 0;
    for (int i = 0; i < n; i++) {
      sink += touchRow(partitioner.positionOf(MemoryUtil.getLong(idAddress + 8L * i)));
    }
    touched = sink;
  }

  /** {@link #touch}'s loads for the row at {@code pos}; returns their sum. */
  private long touchRow(long pos) {
    long sink = 0;
    long at = embAddress + pos * storedRowBytes;
    for (long o = 0; o < storedRowBytes; o += 64) {
      sink += MemoryUtil.getShort(at + o);
    }
    for (int k = 0; k < stateAddress.length; k++) {
      long width = stateColumns.get(k).width() * 4L;
      long st = stateAddress[k] + pos * width;
      for (long o = 0; o < width; o += 64) {
        sink += MemoryUtil.getInt(st + o);
      }
    }
    return sink;
  }

  /**
   * Applies the optimizer to the row at {@code pos}. A 16-bit row is widened into {@code scratch}
   * (C float32), updated there and narrowed back with stochastic rounding, its random bits from
   * {@code updateNumber} and {@code pos}.
   */
  private void applyRow(long pos, long g, float lr, long[] stateRow, long scratch, long updateNumber) {
    if (!valueType.isTrainable()) {
      throw new IllegalStateException("Cannot update shard " + index + ": its rows are " + valueType);
    }
    for (int k = 0; k < stateRow.length; k++) {
      stateRow[k] = stateAddress[k] + pos * stateColumns.get(k).width() * 4L;
    }
    if (!valueType.isCompact()) {
      optimizer.apply(embAddress + pos * rowBytes, g, stateRow, dim, lr);
      return;
    }
    long at = embAddress + pos * storedRowBytes;
    valueType.decode(at, scratch, 1, dim);
    optimizer.apply(scratch, g, stateRow, dim, lr);
    HalfFloats.encodeStochastic(valueType, scratch, at, dim, HalfFloats.mix64(updateNumber * 0x9e3779b97f4a7c15L ^ pos));
  }

  // ------------------------------------------------------------------ nearest

  /** A shard's answer to a search: {@code count} ids with their similarities, best first. */
  record TopHits(long[] ids, float[] similarities, int count) {}

  /**
   * Validates a search (k in [1, {@code maxK}], every query value finite, the query not zero: else
   * INVALID_ARGUMENT) and answers this shard's top-k without {@code exclude} (-1: none).
   */
  TopHits search(float[] query, int k, int maxK, long exclude) {
    if (k < 1 || k > maxK) {
      throw ShardErrors.invalid("Cannot search: k=" + k + " (must be in [1, " + maxK + "])");
    }
    double norm = 0;
    for (int c = 0; c < query.length; c++) {
      if (!Float.isFinite(query[c])) {
        throw ShardErrors.invalid("Cannot search: query value " + c + " is " + query[c] + " (must be finite)");
      }
      norm += (double) query[c] * query[c];
    }
    if (norm == 0) {
      throw ShardErrors.invalid("Cannot search: the query vector is zero (cosine similarity is undefined)");
    }
    long[] ids = new long[(int) Math.min(k, rows)];
    float[] sims = new float[ids.length];
    int found = nearest(query, ids.length, exclude, ids, sims);
    return new TopHits(ids, sims, found);
  }

  /**
   * Exact cosine top-k of this shard for {@code query} (norm {@code > 0}), skipping {@code exclude}
   * (-1: none). Fills {@code outIds} / {@code outSims} best first; returns how many.
   */
  int nearest(float[] query, int k, long exclude, long[] outIds, float[] outSims) {
    double qn = 0;
    for (float q : query) {
      qn += (double) q * q;
    }
    qn = Math.sqrt(qn);
    TopK top = new TopK(k);
    boolean compact = valueType.isCompact();
    float[] row = compact ? new float[dim] : null;
    for (long pos = 0; pos < rows; pos++) {
      long id = partitioner.idAt(index, pos);
      if (id == exclude) {
        continue;
      }
      long at = embAddress + pos * storedRowBytes;
      if (compact) {
        readRow(pos, row);
      }
      double dot = 0;
      double rn = 0;
      for (int c = 0; c < dim; c++) {
        float x = compact ? row[c] : Optimizer.get(at + 4L * c);
        dot += (double) x * query[c];
        rn += (double) x * x;
      }
      float sim = rn == 0 ? 0f : (float) (dot / (qn * Math.sqrt(rn)));
      top.offer(id, sim);
    }
    return top.drainBestFirst(outIds, outSims);
  }

  // ------------------------------------------------------------------ snapshot

  /**
   * Writes every row and its optimizer state to {@code writer} (see {@link #writeTo}), finishes the
   * file and returns its manifest entry. With a write-ahead log: first deletes the log segments
   * that an earlier snapshot, now seen committed, makes unnecessary; starts a new segment at the
   * first chunk; and once the file is written appends and forces its BASE record ({@code dir} and
   * {@code version} name the table it belongs to), so that the log can be replayed on top of it.
   */
  TableManifest.ShardEntry snapshotTo(ShardWriter writer, BufferAllocator scratch, String dir, long version) throws IOException {
    synchronized (snapshotLock) {
      if (log != null) {
        log.confirmCommitted();
      }
      long[] seqs = writeTo(writer, scratch);
      TableManifest.ShardEntry entry = writer.finish();
      if (log != null) {
        ShardLog.Base base = new ShardLog.Base(ShardLog.Origin.of(version, entry), dir, chunkRows(), seqs);
        sequencer.lock();
        try {
          log.appendBase(base);
        } finally {
          sequencer.unlock();
        }
        log.sync(true);
        log.baseWritten(base);
      }
      return entry;
    }
  }

  /**
   * Writes every row and its optimizer state to {@code writer}, chunk by chunk. Each chunk is copied
   * into a staging buffer while holding every stripe lock, so each row of the file is the state
   * after a whole number of updates (with matching optimizer state); lookups never wait, and
   * updates wait at most for one chunk copy. Rows of different chunks may come from different
   * moments. With a write-ahead log the copy also holds the sequencer, and the update number at each
   * chunk copy is returned (chunk i reflects exactly the updates numbered below it); else null.
   */
  private long[] writeTo(ShardWriter writer, BufferAllocator scratch) throws IOException {
    int chunk = chunkRows();
    long[] seqs = log == null ? null : new long[(int) Math.max(1, (rows + chunk - 1) / chunk)];
    if (seqs != null && rows == 0) {
      sequencer.lock();
      try {
        log.rotate();
        seqs[0] = log.nextSeq();
      } finally {
        sequencer.unlock();
      }
    }
    try (ArrowBuf embStage = scratch.buffer(chunk * storedRowBytes)) {
      ArrowBuf[] stateStage = new ArrowBuf[state.length];
      try {
        for (int i = 0; i < state.length; i++) {
          stateStage[i] = scratch.buffer(chunk * stateColumns.get(i).width() * 4L);
        }
        for (long from = 0; from < rows; from += chunk) {
          int n = (int) Math.min(chunk, rows - from);
          if (seqs != null) {
            sequencer.lock();
          }
          try {
            if (seqs != null) {
              if (from == 0) {
                log.rotate();
              }
              seqs[(int) (from / chunk)] = log.nextSeq();
            }
            lockAll();
            try {
              embStage.setBytes(0, embeddings, from * storedRowBytes, n * storedRowBytes);
              for (int i = 0; i < state.length; i++) {
                long w = stateColumns.get(i).width() * 4L;
                stateStage[i].setBytes(0, state[i], from * w, n * w);
              }
            } finally {
              unlockAll();
            }
          } finally {
            if (seqs != null) {
              sequencer.unlock();
            }
          }
          writer.appendStored(embStage, 0, n, stateStage);
        }
      } finally {
        for (ArrowBuf b : stateStage) {
          if (b != null) {
            b.close();
          }
        }
      }
    }
    return seqs;
  }

  /** Rows per snapshot chunk: a record batch of the shard file. */
  private int chunkRows() {
    return TableFormat.batchRows(dim, valueType, stateWidth());
  }

  private int stateWidth() {
    int w = 0;
    for (TableManifest.StateColumn c : stateColumns) {
      w += c.width();
    }
    return w;
  }

  private void lockAll() {
    for (ReentrantLock l : stripes) {
      l.lock();
    }
  }

  private void unlockAll() {
    for (int i = STRIPES - 1; i >= 0; i--) {
      stripes[i].unlock();
    }
  }

  /** Closes the log (forcing what it holds), then frees the rows. */
  @Override
  public void close() {
    if (log != null) {
      try {
        log.close();
      } catch (IOException e) {
        org.slf4j.LoggerFactory.getLogger(HostedShard.class).warn("Cannot close {} cleanly: {}", log, e.toString());
      }
    }
    for (ArrowBuf s : state) {
      s.close();
    }
    embeddings.close();
    allocator.close();
  }
}
