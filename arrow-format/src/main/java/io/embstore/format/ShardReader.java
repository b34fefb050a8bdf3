package io.embstore.format;

import java.io.IOException;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.util.AutoCloseables;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.ipc.ArrowFileReader;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Reads one shard file batch by batch, checking it against its manifest entry: size and CRC-32C
 * (when asked), format name and version, dimension, shard index, partitioner, state columns, and
 * that the ids are exactly the shard's ids in order. Every mismatch is a {@link
 * TableFormatException} naming the file, the expected and the actual value.
 *
 * <p>The buffers returned by {@link #embeddings()}, {@link #storedEmbeddings()} and {@link
 * #state(int)} are views of the current batch, valid until the next {@link #loadNextBatch()}. {@link
 * #embeddings()} is always float32: the rows of a 16-bit table are widened (exactly) into a buffer
 * the reader owns, once per batch and only when asked.
 */
public final class ShardReader implements AutoCloseable {
  private final String file;
  private final TableManifest manifest;
  private final int shard;
  private final BufferAllocator allocator;
  private final SeekableByteChannel channel;
  /** The channel when the CRC-32C is computed from the reads ({@link #openTracked}), else null. */
  private final Checksums.TrackingChannel tracking;
  private final ArrowFileReader reader;
  private final VectorSchemaRoot root;
  private final Partitioner partitioner;
  private final long expectedRows;
  private final ValueType valueType;
  /** Float32 rows of the current batch of a 16-bit table (null until first needed). */
  private ArrowBuf decoded;
  private boolean decodedCurrent;
  private long batchStart;
  private int batchRows;
  private long rowsRead;

  /**
   * Opens shard {@code shard} of the table in {@code dir} described by {@code manifest}.
   *
   * @param verifyChecksum read the whole file once first and compare its CRC-32C with the manifest
   */
  public static ShardReader open(
      Path dir, TableManifest manifest, int shard, BufferAllocator parent, boolean verifyChecksum)
      throws IOException {
    return open(TableLocation.of(dir), manifest, shard, parent, verifyChecksum);
  }

  /**
   * Opens shard {@code shard} of the table in {@code dir} described by {@code manifest}.
   *
   * @param verifyChecksum read the whole file once first and compare its CRC-32C with the manifest
   */
  public static ShardReader open(
      TableLocation dir, TableManifest manifest, int shard, BufferAllocator parent, boolean verifyChecksum)
      throws IOException {
    TableManifest.ShardEntry entry = entry(manifest, shard);
    checkFile(dir, entry.file(), entry.bytes(), entry.crc32c(), verifyChecksum);
    return new ShardReader(dir, entry.file(), manifest, shard, parent, false);
  }

  private static TableManifest.ShardEntry entry(TableManifest manifest, int shard) {
    if (shard < 0 || shard >= manifest.numShards()) {
      throw new IllegalArgumentException(
          "Cannot open shard " + shard + ": the table has shards 0.." + (manifest.numShards() - 1));
    }
    return manifest.shard(shard);
  }

  /**
   * {@link #readFully} of a whole shard in one pass, its CRC-32C computed from the bytes as Arrow
   * reads them ({@link Checksums.TrackingChannel}) and compared at the end. When the file is
   * corrupt, the checksum mismatch is what is reported, even if Arrow or the id check failed first.
   */
  static void readFullyChecked(
      TableLocation dir, TableManifest manifest, int shard, BufferAllocator parent, boolean stored, ArrowBuf embeddings, ArrowBuf... state)
      throws IOException {
    try (ShardReader r = openTracked(dir, manifest, shard, parent)) {
      try {
        if (stored) {
          r.readFullyStored(embeddings, state);
        } else {
          r.readFully(embeddings, state);
        }
      } catch (IOException | RuntimeException e) {
        throw r.corruptOr(e);
      }
      r.checkTrackedChecksum();
    }
  }

  /**
   * Opens shard {@code shard} with its CRC-32C computed from the reads of the batches: read every
   * batch, then {@link #checkTrackedChecksum()}; a failure while reading goes through {@link
   * #corruptOr}, which reports the checksum mismatch when there is one.
   */
  static ShardReader openTracked(TableLocation dir, TableManifest manifest, int shard, BufferAllocator parent)
      throws IOException {
    TableManifest.ShardEntry entry = entry(manifest, shard);
    checkFile(dir, entry.file(), entry.bytes(), entry.crc32c(), false);
    try {
      return new ShardReader(dir, entry.file(), manifest, shard, parent, true);
    } catch (IOException | RuntimeException e) {
      // A damaged schema or footer: report the checksum when it is the cause.
      try {
        checkFile(dir, entry.file(), entry.bytes(), entry.crc32c(), true);
      } catch (TableFormatException corrupt) {
        corrupt.addSuppressed(e);
        throw corrupt;
      }
      throw e;
    }
  }

  /** After the last batch of a tracked reader: the file's CRC-32C must be the manifest's. */
  void checkTrackedChecksum() throws IOException {
    int expected = manifest.shard(shard).crc32c();
    int actual = tracking.finish();
    if (actual != expected) {
      throw mismatch(file, expected, actual);
    }
  }

  /** The checksum mismatch of a tracked reader's file if it has one, else {@code e} itself. */
  IOException corruptOr(Exception e) throws IOException {
    try {
      checkTrackedChecksum();
    } catch (TableFormatException corrupt) {
      corrupt.addSuppressed(e);
      return corrupt;
    }
    if (e instanceof RuntimeException r) {
      throw r;
    }
    return (IOException) e;
  }

  private static TableFormatException mismatch(String file, int expected, int actual) {
    return new TableFormatException(
        "Cannot open "
            + file
            + ": checksum mismatch (manifest crc32c:"
            + Checksums.hex(expected)
            + ", file crc32c:"
            + Checksums.hex(actual)
            + "): the file is corrupt");
  }

  /** Checks a file's existence, length and (optionally) CRC-32C against the manifest. */
  static void checkFile(TableLocation dir, String name, long bytes, int crc32c, boolean verifyChecksum) throws IOException {
    String file = dir.describe(name);
    long size;
    try {
      size = dir.size(name);
    } catch (NoSuchFileException e) {
      throw new TableFormatException("Cannot open " + file + ": file is missing", e);
    }
    if (size != bytes) {
      throw new TableFormatException(
          "Cannot open " + file + ": length is " + size + " bytes, the manifest says " + bytes + " (truncated or replaced)");
    }
    if (verifyChecksum) {
      int actual;
      try (SeekableByteChannel ch = dir.openSequential(name)) {
        actual = (int) Checksums.crc32c(ch)[0];
      }
      if (actual != crc32c) {
        throw mismatch(file, crc32c, actual);
      }
    }
  }

  private ShardReader(
      TableLocation dir, String name, TableManifest manifest, int shard, BufferAllocator parent, boolean track)
      throws IOException {
    this.file = dir.describe(name);
    this.manifest = manifest;
    this.shard = shard;
    this.partitioner = manifest.partitioner();
    this.expectedRows = partitioner.shardRows(shard);
    this.valueType = manifest.valueType();
    BufferAllocator child = null;
    SeekableByteChannel ch = null;
    ArrowFileReader r = null;
    try {
      child = parent.newChildAllocator("shard-reader-" + shard + "-" + name, 0, Long.MAX_VALUE);
      ch = dir.openRead(name);
      if (track) {
        ch = new Checksums.TrackingChannel(ch);
      }
      r = new ArrowFileReader(ch, child);
      VectorSchemaRoot vsr;
      try {
        vsr = r.getVectorSchemaRoot();
      } catch (IOException | RuntimeException e) {
        throw new TableFormatException("Cannot open " + file + ": not a readable Arrow IPC file (" + e + ")", e);
      }
      checkSchema(vsr.getSchema());
      checkBlocks(r, ch.size());
      this.root = vsr;
    } catch (IOException | RuntimeException e) {
      try {
        AutoCloseables.close(r, ch, child);
      } catch (Exception suppressed) {
        e.addSuppressed(suppressed);
      }
      throw e;
    }
    this.allocator = child;
    this.channel = ch;
    this.tracking = track ? (Checksums.TrackingChannel) ch : null;
    this.reader = r;
  }

  /**
   * Every record batch the footer lists must lie inside the file: Arrow allocates a block's length
   * before reading it, so a damaged length would otherwise ask for petabytes (OutOfMemoryError).
   */
  private void checkBlocks(ArrowFileReader r, long fileSize) throws TableFormatException {
    List<org.apache.arrow.vector.ipc.message.ArrowBlock> blocks;
    try {
      blocks = r.getRecordBlocks();
    } catch (IOException | RuntimeException e) {
      throw new TableFormatException("Cannot open " + file + ": unreadable footer (" + e + ")", e);
    }
    for (org.apache.arrow.vector.ipc.message.ArrowBlock b : blocks) {
      if (b.getOffset() < 0
          || b.getMetadataLength() <= 0
          || b.getBodyLength() < 0
          || b.getOffset() + b.getMetadataLength() + b.getBodyLength() > fileSize
          || b.getOffset() + b.getMetadataLength() + b.getBodyLength() < 0) {
        throw new TableFormatException(
            "Cannot open " + file + ": record batch at offset " + b.getOffset() + " (metadata " + b.getMetadataLength() + " bytes, body " + b.getBodyLength() + " bytes) lies outside the file of " + fileSize + " bytes");
      }
    }
  }

  private void checkSchema(Schema schema) throws TableFormatException {
    Map<String, String> meta = schema.getCustomMetadata();
    String format = meta == null ? null : meta.get(TableFormat.META_FORMAT);
    if (!TableFormat.SHARD_FORMAT_NAME.equals(format)) {
      throw new TableFormatException(
          "Cannot open " + file + ": format is '" + format + "', expected '" + TableFormat.SHARD_FORMAT_NAME + "'");
    }
    TableFormat.checkVersion(file, intMeta(meta, TableFormat.META_VERSION));
    expectMeta(meta, TableFormat.META_DIM, manifest.dim());
    expectMeta(meta, TableFormat.META_SHARD, shard);
    expectMeta(meta, TableFormat.META_NUM_SHARDS, manifest.numShards());
    expectMeta(meta, TableFormat.META_ROWS, manifest.rows());
    String part = meta.get(TableFormat.META_PARTITIONER);
    if (!partitioner.name().equals(part)) {
      throw new TableFormatException(
          "Cannot open " + file + ": partitioner is '" + part + "', the manifest says '" + partitioner.name() + "'");
    }
    List<Field> fields = schema.getFields();
    List<TableManifest.StateColumn> state = manifest.stateColumns();
    if (fields.size() != 2 + state.size()) {
      throw new TableFormatException(
          "Cannot open " + file + ": " + fields.size() + " columns, expected " + (2 + state.size()) + " (id, embedding" + (state.isEmpty() ? "" : ", state columns " + state) + ")");
    }
    Field id = fields.get(0);
    if (!TableFormat.ID_COLUMN.equals(id.getName()) || !new ArrowType.Int(64, true).equals(id.getType())) {
      throw new TableFormatException(
          "Cannot open " + file + ": first column is " + id + ", expected id: Int(64, signed)");
    }
    String type = meta.get(TableFormat.META_VALUE_TYPE);
    if (type != null && !type.equals(valueType.label())) {
      throw new TableFormatException(
          "Cannot open " + file + ": metadata " + TableFormat.META_VALUE_TYPE + " is '" + type + "', the manifest says " + valueType.label());
    }
    if (!valueType.matches(fields.get(1), manifest.dim())) {
      throw new TableFormatException(
          "Cannot open " + file + ": column " + fields.get(1) + ", expected " + TableFormat.EMBEDDING_COLUMN + ": " + valueType.describe(manifest.dim()));
    }
    for (int i = 0; i < state.size(); i++) {
      checkList(fields.get(2 + i), state.get(i).name(), state.get(i).width());
    }
  }

  private void checkList(Field field, String name, int width) throws TableFormatException {
    boolean ok =
        name.equals(field.getName())
            && field.getType() instanceof ArrowType.FixedSizeList
            && ((ArrowType.FixedSizeList) field.getType()).getListSize() == width
            && field.getChildren().size() == 1
            && new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE).equals(field.getChildren().get(0).getType());
    if (!ok) {
      throw new TableFormatException(
          "Cannot open " + file + ": column " + field + ", expected " + name + ": FixedSizeList<float32>[" + width + "]");
    }
  }

  private int intMeta(Map<String, String> meta, String key) throws TableFormatException {
    String v = meta.get(key);
    try {
      return Integer.parseInt(v);
    } catch (NumberFormatException e) {
      throw new TableFormatException("Cannot open " + file + ": metadata " + key + " is '" + v + "', not an integer", e);
    }
  }

  private void expectMeta(Map<String, String> meta, String key, long expected) throws TableFormatException {
    String v = meta.get(key);
    if (!Long.toString(expected).equals(v)) {
      throw new TableFormatException(
          "Cannot open " + file + ": metadata " + key + " is '" + v + "', the manifest says " + expected);
    }
  }

  /** The file, as named in messages. */
  public String file() {
    return file;
  }

  public int shard() {
    return shard;
  }

  /** Rows of this shard. */
  public long rows() {
    return expectedRows;
  }

  /**
   * Loads the next record batch, checking its ids.
   *
   * @return false at the end of the file (after checking that every row was read)
   */
  public boolean loadNextBatch() throws IOException {
    batchStart = rowsRead;
    boolean loaded;
    try {
      loaded = reader.loadNextBatch();
    } catch (IOException | RuntimeException e) {
      throw new TableFormatException("Cannot read " + file + " at row " + rowsRead + ": " + e, e);
    }
    if (!loaded) {
      batchRows = 0;
      if (rowsRead != expectedRows) {
        throw new TableFormatException(
            "Cannot read " + file + ": " + rowsRead + " rows, the manifest says " + expectedRows);
      }
      return false;
    }
    int n = root.getRowCount();
    if (rowsRead + n > expectedRows) {
      throw new TableFormatException(
          "Cannot read " + file + ": more than " + expectedRows + " rows (the manifest's count)");
    }
    BigIntVector ids = (BigIntVector) root.getVector(0);
    ArrowBuf idBuf = ids.getDataBuffer();
    for (int i = 0; i < n; i++) {
      long expected = partitioner.idAt(shard, rowsRead + i);
      long actual = idBuf.getLong((long) i * 8);
      if (actual != expected) {
        throw new TableFormatException(
            "Cannot read " + file + ": row " + (rowsRead + i) + " has id " + actual + ", expected " + expected + " (" + partitioner.describeShard(shard) + ")");
      }
    }
    if (valueType == ValueType.INT8) {
      checkBytes(root.getVector(1).getName(), ((BaseFixedWidthVector) root.getVector(1)).getDataBuffer().capacity(), n, manifest.rowBytes());
    } else {
      checkLength((FixedSizeListVector) root.getVector(1), n, manifest.dim(), valueType.bytes());
    }
    for (int i = 0; i < manifest.stateColumns().size(); i++) {
      checkLength((FixedSizeListVector) root.getVector(2 + i), n, manifest.stateColumns().get(i).width(), 4);
    }
    decodedCurrent = false;
    batchRows = n;
    rowsRead += n;
    return true;
  }

  private void checkLength(FixedSizeListVector list, int rows, int width, int valueBytes) throws TableFormatException {
    checkBytes(list.getName(), list.getDataVector().getDataBuffer().capacity(), rows, (long) width * valueBytes);
  }

  private void checkBytes(String column, long have, int rows, long rowBytes) throws TableFormatException {
    long need = rows * rowBytes;
    if (have < need) {
      throw new TableFormatException(
          "Cannot read " + file + ": column " + column + " holds " + have + " bytes for " + rows + " rows, need " + need);
    }
  }

  /** Position (row index in the shard) of the current batch's first row. */
  public long batchStart() {
    return batchStart;
  }

  /** Rows in the current batch. */
  public int batchRows() {
    return batchRows;
  }

  /** The table's value type: what {@link #storedEmbeddings()} holds. */
  public ValueType valueType() {
    return valueType;
  }

  /**
   * The current batch's embeddings: row-major float32, C values per row (widened from the stored
   * type of a 16-bit table, exactly; decoded from an int8 table's codes, scale and bias).
   */
  public ArrowBuf embeddings() {
    ArrowBuf stored = storedEmbeddings();
    if (!valueType.isCompact()) {
      return stored;
    }
    if (!decodedCurrent) {
      long need = (long) batchRows * manifest.dim() * 4;
      if (decoded == null || decoded.capacity() < need) {
        if (decoded != null) {
          decoded.close();
          decoded = null;
        }
        decoded = allocator.buffer(Math.max(need, 4));
      }
      valueType.decode(stored.memoryAddress(), decoded.memoryAddress(), batchRows, manifest.dim());
      decodedCurrent = true;
    }
    return decoded;
  }

  /**
   * The current batch's embeddings as stored: row-major, C values of {@link #valueType()} per row
   * (int8: C + 8 bytes a row, {@link Int8Rows}).
   */
  public ArrowBuf storedEmbeddings() {
    if (valueType == ValueType.INT8) {
      return ((BaseFixedWidthVector) root.getVector(1)).getDataBuffer();
    }
    return ((BaseFixedWidthVector) ((FixedSizeListVector) root.getVector(1)).getDataVector()).getDataBuffer();
  }

  /** The current batch's state column {@code column} (in manifest order), row-major float32. */
  public ArrowBuf state(int column) {
    return ((BaseFixedWidthVector) ((FixedSizeListVector) root.getVector(2 + column)).getDataVector()).getDataBuffer();
  }

  /**
   * Reads the whole shard into row-major buffers of at least rows x width x 4 bytes each: the
   * embeddings (as float32) into {@code embeddings} and state column i into {@code state[i]}.
   */
  public void readFully(ArrowBuf embeddings, ArrowBuf... state) throws IOException {
    long rowBytes = manifest.dim() * 4L;
    while (loadNextBatch()) {
      if (valueType.isCompact()) {
        if (embeddings.capacity() < (batchStart + batchRows) * rowBytes) {
          throw new IllegalArgumentException("Cannot read " + file + ": the buffer holds " + embeddings.capacity() + " bytes, need " + (batchStart + batchRows) * rowBytes);
        }
        // Widened straight into the destination: no staging copy.
        valueType.decode(storedEmbeddings().memoryAddress(), embeddings.memoryAddress() + batchStart * rowBytes, batchRows, manifest.dim());
      } else {
        embeddings.setBytes(batchStart * rowBytes, embeddings(), 0, batchRows * rowBytes);
      }
      for (int i = 0; i < state.length; i++) {
        long w = manifest.stateColumns().get(i).width() * 4L;
        state[i].setBytes(batchStart * w, state(i), 0, batchRows * w);
      }
    }
  }

  /**
   * Reads the whole shard as stored: the embeddings into {@code embeddings} (at least rows x C x the
   * value type's size bytes, row-major, bit for bit) and state column i into {@code state[i]}.
   */
  public void readFullyStored(ArrowBuf embeddings, ArrowBuf... state) throws IOException {
    long rowBytes = manifest.rowBytes();
    while (loadNextBatch()) {
      embeddings.setBytes(batchStart * rowBytes, storedEmbeddings(), 0, batchRows * rowBytes);
      for (int i = 0; i < state.length; i++) {
        long w = manifest.stateColumns().get(i).width() * 4L;
        state[i].setBytes(batchStart * w, state(i), 0, batchRows * w);
      }
    }
  }

  /** Closes every reader of {@code readers}, all of them even when one fails. */
  static void closeAll(java.util.List<ShardReader> readers) throws IOException {
    try {
      AutoCloseables.close(readers);
    } catch (IOException | RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IOException(e);
    }
  }

  @Override
  public void close() throws IOException {
    try {
      AutoCloseables.close(decoded, reader, channel, allocator);
    } catch (IOException | RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IOException("Cannot close " + file, e);
    }
  }
}
