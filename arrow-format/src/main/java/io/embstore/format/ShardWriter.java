package io.embstore.format;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.util.MemoryUtil;
import org.apache.arrow.util.AutoCloseables;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.ipc.ArrowFileWriter;

/**
 * Writes one shard file: rows in position order (ascending id), in record batches of {@link
 * TableFormat#batchRows} rows, checksumming the bytes as they are written. {@link #finish()} returns
 * the manifest entry; {@link #close()} without {@code finish()} deletes the partial file.
 *
 * <p>Rows are given as float32 ({@link #append(ByteBuffer, int)}, {@link #append(ArrowBuf, long,
 * int, ArrowBuf...)}) and stored in the table's {@link ValueType}, narrowed with {@link
 * HalfFloats#encode} (round to nearest even) for a 16-bit table, quantized row by row ({@link
 * Int8Rows}) for an int8 table, which refuses a row with a NaN or an infinity naming its id; or
 * already in the stored type
 * ({@link #appendStored}), copied as they are (a conversion or a reshard of a 16-bit table).
 *
 * <p>Memory: one record batch (about {@value TableFormat#TARGET_BATCH_BYTES} bytes) off-heap, from a
 * child of the given allocator; heap use does not depend on the number of rows.
 */
public final class ShardWriter implements AutoCloseable {
  private final TableLocation dir;
  private final String name;
  private final String file;
  private final int shard;
  private final Partitioner partitioner;
  private final int dim;
  private final ValueType valueType;
  private final int[] stateWidths;
  private final int batchRows;
  /** Bytes of one float32 input row. */
  private final long rowBytes;
  /** Bytes of one stored row. */
  private final long storedRowBytes;
  private final BufferAllocator allocator;
  private final VectorSchemaRoot root;
  private final BigIntVector ids;
  private final ArrowBuf embData;
  private final ArrowBuf[] stateData;
  private final TableLocation.Output channel;
  private final Checksums.ChecksumChannel checksummed;
  private final ArrowFileWriter writer;
  private final long expectedRows;
  private long written;
  private int pending;
  private boolean finished;
  private boolean closed;

  /**
   * Creates {@code file} (which must not exist) for shard {@code shard} of a table partitioned by
   * {@code partitioner}, with dimension {@code dim} and the given optimizer state columns.
   */
  public static ShardWriter create(
      Path file,
      int shard,
      Partitioner partitioner,
      int dim,
      List<TableManifest.StateColumn> stateColumns,
      BufferAllocator parent)
      throws IOException {
    Path dir = file.toAbsolutePath().getParent();
    return create(TableLocation.of(dir), file.getFileName().toString(), shard, partitioner, dim, ValueType.FLOAT32, stateColumns, parent);
  }

  /** Creates file {@code name} in {@code dir} (which must not exist there); see {@link #create(Path, int, Partitioner, int, List, BufferAllocator)}. */
  public static ShardWriter create(
      TableLocation dir,
      String name,
      int shard,
      Partitioner partitioner,
      int dim,
      List<TableManifest.StateColumn> stateColumns,
      BufferAllocator parent)
      throws IOException {
    return new ShardWriter(dir, name, shard, partitioner, dim, ValueType.FLOAT32, stateColumns, parent);
  }

  /** Creates file {@code name} in {@code dir} for a table whose embeddings are of {@code type}. */
  public static ShardWriter create(
      TableLocation dir,
      String name,
      int shard,
      Partitioner partitioner,
      int dim,
      ValueType type,
      List<TableManifest.StateColumn> stateColumns,
      BufferAllocator parent)
      throws IOException {
    return new ShardWriter(dir, name, shard, partitioner, dim, type, stateColumns, parent);
  }

  private ShardWriter(
      TableLocation dir,
      String name,
      int shard,
      Partitioner partitioner,
      int dim,
      ValueType type,
      List<TableManifest.StateColumn> stateColumns,
      BufferAllocator parent)
      throws IOException {
    if (shard < 0 || shard >= partitioner.numShards()) {
      throw new IllegalArgumentException(
          "Cannot write shard " + shard + ": outside [0, " + partitioner.numShards() + ")");
    }
    this.dir = dir;
    this.name = name;
    this.file = dir.describe(name);
    this.shard = shard;
    this.partitioner = partitioner;
    this.dim = dim;
    this.valueType = type;
    this.expectedRows = partitioner.shardRows(shard);
    this.stateWidths = stateColumns.stream().mapToInt(TableManifest.StateColumn::width).toArray();
    int stateWidth = 0;
    for (int w : stateWidths) {
      stateWidth += w;
    }
    this.batchRows = TableFormat.batchRows(dim, type, stateWidth);
    this.rowBytes = dim * 4L;
    this.storedRowBytes = type.rowBytes(dim);
    BufferAllocator child = null;
    VectorSchemaRoot r = null;
    TableLocation.Output ch = null;
    try {
      child = parent.newChildAllocator("shard-writer-" + shard + "-" + name, 0, Long.MAX_VALUE);
      r = VectorSchemaRoot.create(TableFormat.shardSchema(dim, type, shard, partitioner, stateColumns), child);
      ch = dir.create(name);
    } catch (IOException | RuntimeException e) {
      closeQuietly(e, r, child, ch);
      throw e;
    }
    this.allocator = child;
    this.root = r;
    this.channel = ch;
    this.ids = (BigIntVector) root.getVector(0);
    ids.allocateNew(batchRows);
    this.embData = type == ValueType.INT8
        ? allocateBinary((org.apache.arrow.vector.FixedSizeBinaryVector) root.getVector(1))
        : allocateList((FixedSizeListVector) root.getVector(1), dim);
    this.stateData = new ArrowBuf[stateWidths.length];
    for (int i = 0; i < stateWidths.length; i++) {
      stateData[i] = allocateList((FixedSizeListVector) root.getVector(2 + i), stateWidths[i]);
    }
    this.checksummed = new Checksums.ChecksumChannel(channel);
    this.writer = new ArrowFileWriter(root, null, checksummed);
    writer.start();
  }

  private ArrowBuf allocateList(FixedSizeListVector list, int width) {
    list.setInitialCapacity(batchRows);
    list.allocateNew();
    BaseFixedWidthVector data = (BaseFixedWidthVector) list.getDataVector();
    if (data.getValueCapacity() < (long) batchRows * width) {
      data.setInitialCapacity(batchRows * width);
      data.allocateNew();
    }
    // Every value is non-null; the buffers are reused for every batch, so set the bits once.
    list.getValidityBuffer().setOne(0, list.getValidityBuffer().capacity());
    data.getValidityBuffer().setOne(0, data.getValidityBuffer().capacity());
    return data.getDataBuffer();
  }

  /** The int8 column: one fixed-size binary value (C + 8 bytes) per row. */
  private ArrowBuf allocateBinary(org.apache.arrow.vector.FixedSizeBinaryVector rows) {
    rows.setInitialCapacity(batchRows);
    rows.allocateNew();
    rows.getValidityBuffer().setOne(0, rows.getValidityBuffer().capacity());
    return rows.getDataBuffer();
  }

  public int shard() {
    return shard;
  }

  public long rowsWritten() {
    return written + pending;
  }

  public long expectedRows() {
    return expectedRows;
  }

  /**
   * Appends {@code count} rows of little-endian float32 embeddings from {@code src} (its position
   * advances by {@code count * C * 4}); optimizer state columns are zero.
   */
  public void append(ByteBuffer src, int count) throws IOException {
    append(src, count, false);
  }

  /**
   * Appends {@code count} rows already in the table's value type (C little-endian values of it a
   * row) from {@code src}, bit for bit (its position advances); optimizer state columns are zero.
   */
  public void appendStored(ByteBuffer src, int count) throws IOException {
    append(src, count, true);
  }

  private void append(ByteBuffer src, int count, boolean stored) throws IOException {
    checkRoom(count);
    int rowBytes = (int) (stored ? storedRowBytes : dim * 4L);
    if (src.remaining() < (long) count * rowBytes) {
      throw new IllegalArgumentException(
          "Cannot append " + count + " rows: buffer holds " + src.remaining() + " bytes, need " + (long) count * rowBytes);
    }
    while (count > 0) {
      int n = Math.min(count, batchRows - pending);
      int at = src.position();
      if (stored || !valueType.isCompact()) {
        embData.setBytes(pending * storedRowBytes, src, at, n * rowBytes);
      } else if (src.isDirect()) {
        encodeRows(MemoryUtil.getByteBufferAddress(src) + at, n);
      } else {
        encodeHeap(src, at, n);
      }
      src.position(at + n * rowBytes);
      for (int i = 0; i < stateData.length; i++) {
        stateData[i].setZero((long) pending * stateWidths[i] * 4, (long) n * stateWidths[i] * 4);
      }
      advance(n);
      count -= n;
    }
  }

  private long storedAddress(long row) {
    return embData.memoryAddress() + row * storedRowBytes;
  }

  /**
   * Encodes {@code n} float32 rows at {@code src} into the pending rows from {@code pending} on; an
   * int8 row that cannot be quantized is refused naming its id.
   */
  private void encodeRows(long src, int n) {
    if (valueType != ValueType.INT8) {
      HalfFloats.encode(valueType, src, storedAddress(pending), (long) n * dim);
      return;
    }
    for (int r = 0; r < n; r++) {
      int failed = Int8Rows.encodeRow(src + r * rowBytes, storedAddress(pending + r), dim);
      if (failed != Int8Rows.OK) {
        throw notQuantizable(pending + r, Int8Rows.why(src + r * rowBytes, dim, failed));
      }
    }
  }

  private IllegalArgumentException notQuantizable(long pendingRow, String why) {
    long id = partitioner.idAt(shard, written + pendingRow);
    return new IllegalArgumentException("Cannot write id " + id + " to an int8 table: " + why);
  }

  /** Narrows {@code n} float32 rows of a heap buffer (little-endian) from byte {@code at}. */
  private void encodeHeap(ByteBuffer src, int at, int n) {
    ByteBuffer le = src.duplicate().order(java.nio.ByteOrder.LITTLE_ENDIAN);
    if (valueType == ValueType.INT8) {
      float[] row = new float[dim];
      for (int r = 0; r < n; r++) {
        for (int c = 0; c < dim; c++) {
          row[c] = le.getFloat(at + 4 * (r * dim + c));
        }
        int failed = Int8Rows.encodeRow(row, storedAddress(pending + r), dim);
        if (failed != Int8Rows.OK) {
          throw notQuantizable(pending + r, Int8Rows.why(row, dim, failed));
        }
      }
      return;
    }
    long out = storedAddress(pending);
    for (int i = 0; i < n * dim; i++) {
      float f = le.getFloat(at + 4 * i);
      MemoryUtil.putShort(out + 2L * i, valueType == ValueType.FLOAT16 ? HalfFloats.toFloat16(f) : HalfFloats.toBfloat16(f));
    }
  }

  /**
   * Appends rows {@code [fromRow, fromRow + count)} of row-major float32 buffers: {@code embeddings}
   * holds C values per row, {@code state[i]} the width of state column i per row.
   */
  public void append(ArrowBuf embeddings, long fromRow, int count, ArrowBuf... state)
      throws IOException {
    append(embeddings, fromRow, count, false, state);
  }

  /**
   * Appends rows {@code [fromRow, fromRow + count)} whose embeddings are already in the table's
   * value type ({@code embeddings} holds C values of that type per row), copied bit for bit;
   * {@code state[i]} holds float32 state as in {@link #append(ArrowBuf, long, int, ArrowBuf...)}.
   */
  public void appendStored(ArrowBuf embeddings, long fromRow, int count, ArrowBuf... state)
      throws IOException {
    append(embeddings, fromRow, count, true, state);
  }

  private void append(ArrowBuf embeddings, long fromRow, int count, boolean stored, ArrowBuf... state)
      throws IOException {
    checkRoom(count);
    if (state.length != stateData.length) {
      throw new IllegalArgumentException(
          "Cannot append: " + state.length + " state buffers given, the shard has " + stateData.length + " state columns");
    }
    long rowBytes = dim * 4L;
    while (count > 0) {
      int n = Math.min(count, batchRows - pending);
      if (stored || !valueType.isCompact()) {
        embData.setBytes(pending * storedRowBytes, embeddings, fromRow * storedRowBytes, n * storedRowBytes);
      } else {
        encodeRows(embeddings.memoryAddress() + fromRow * rowBytes, n);
      }
      for (int i = 0; i < stateData.length; i++) {
        long w = stateWidths[i] * 4L;
        stateData[i].setBytes(pending * w, state[i], fromRow * w, n * w);
      }
      advance(n);
      fromRow += n;
      count -= n;
    }
  }

  /**
   * Appends one row from raw memory: C float32 at {@code embAddress}, and state column i's width
   * at {@code stateAddress[i]} ({@code stateAddress} null: zeros). The per-row path of writers that
   * interleave shards (modulo) in id order: one bounds check, no per-call allocation.
   */
  void appendRow(long embAddress, long[] stateAddress) throws IOException {
    appendRow(embAddress, false, stateAddress);
  }

  /**
   * {@link #appendRow(long, long[])} with the embedding at {@code embAddress} in the table's value
   * type when {@code stored} (copied bit for bit), else float32.
   */
  void appendRow(long embAddress, boolean stored, long[] stateAddress) throws IOException {
    if (finished || closed || written + pending >= expectedRows) {
      checkRoom(1);
    }
    if (stored || !valueType.isCompact()) {
      MemoryUtil.copyMemory(embAddress, storedAddress(pending), storedRowBytes);
    } else {
      encodeRows(embAddress, 1);
    }
    for (int i = 0; i < stateData.length; i++) {
      long w = stateWidths[i] * 4L;
      if (stateAddress == null) {
        stateData[i].setZero(pending * w, w);
      } else {
        MemoryUtil.copyMemory(stateAddress[i], stateData[i].memoryAddress() + pending * w, w);
      }
    }
    ids.set(pending, partitioner.idAt(shard, written + pending));
    if (++pending == batchRows) {
      flush();
    }
  }

  private void checkRoom(int count) {
    if (finished || closed) {
      throw new IllegalStateException("Cannot append to " + file + ": writer is finished");
    }
    if (count < 0 || rowsWritten() + count > expectedRows) {
      throw new IllegalArgumentException(
          "Cannot append "
              + count
              + " rows to shard "
              + shard
              + ": it has "
              + rowsWritten()
              + " of "
              + expectedRows
              + " rows");
    }
  }

  private void advance(int n) throws IOException {
    long position = written + pending;
    for (int i = 0; i < n; i++) {
      ids.set(pending + i, partitioner.idAt(shard, position + i));
    }
    pending += n;
    if (pending == batchRows) {
      flush();
    }
  }

  private void flush() throws IOException {
    if (pending == 0) {
      return;
    }
    root.setRowCount(pending);
    try {
      writer.writeBatch();
    } catch (IOException e) {
      throw writeFailed(e);
    }
    written += pending;
    pending = 0;
  }

  /**
   * Writes the last batch and the footer, forces the file to disk ({@code hsync} on HDFS) and closes
   * it (on an object store the upload completes there).
   *
   * @return the manifest entry of this shard
   * @throws IllegalStateException when fewer rows than the shard holds were appended
   */
  public TableManifest.ShardEntry finish() throws IOException {
    if (rowsWritten() != expectedRows) {
      throw new IllegalStateException(
          "Cannot finish shard " + shard + ": " + rowsWritten() + " of " + expectedRows + " rows written");
    }
    flush();
    try {
      writer.end();
      channel.sync();
      channel.close();
    } catch (IOException e) {
      throw writeFailed(e);
    }
    finished = true;
    TableManifest.ShardEntry entry =
        new TableManifest.ShardEntry(
            shard,
            name,
            expectedRows,
            partitioner.minId(shard),
            partitioner.maxId(shard),
            checksummed.bytes(),
            checksummed.crc());
    close();
    return entry;
  }

  /** Releases memory; deletes the file unless {@link #finish()} succeeded. */
  @Override
  public void close() throws IOException {
    if (closed) {
      return;
    }
    closed = true;
    try {
      AutoCloseables.close(writer, root, allocator, channel);
    } catch (IOException | RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IOException("Cannot close shard writer for " + file, e);
    } finally {
      if (!finished) {
        dir.deleteIfExists(name);
      }
    }
  }

  /** The OS error (e.g. "No space left on device") does not say which file; this does. */
  private IOException writeFailed(IOException e) {
    if (e instanceof java.nio.file.FileSystemException) {
      return e;
    }
    return new IOException("Cannot write " + file + ": " + e.getMessage(), e);
  }

  private static void closeQuietly(Throwable primary, AutoCloseable... resources) {
    for (AutoCloseable r : resources) {
      if (r != null) {
        try {
          r.close();
        } catch (Exception e) {
          primary.addSuppressed(e);
        }
      }
    }
  }
}
