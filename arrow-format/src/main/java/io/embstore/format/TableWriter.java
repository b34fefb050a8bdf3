package io.embstore.format;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.util.MemoryUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes a table version: a new table ({@link #create}) or the next version of an existing one
 * ({@link #nextVersion}), on any storage ({@link TableLocation}). Shard files are written first, the
 * manifest last and atomically ({@link #commit(TableLocation, TableManifest)}); closing a writer
 * that did not commit deletes every file it wrote (and the directory, if it created it), so a failed
 * write leaves nothing behind.
 *
 * <p>Rows arrive either in id order for the whole table ({@link #appendInIdOrder}, used by import)
 * or shard by shard ({@link #shard(int)}, used by snapshots and checkpoints). Shards of a new version
 * that are not written keep the previous version's file.
 */
public final class TableWriter implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(TableWriter.class);

  private final TableLocation dir;
  private final boolean createdDir;
  private final TableManifest.Builder manifest;
  private final Partitioner partitioner;
  private final int dim;
  private final ValueType valueType;
  private final long version;
  private final List<TableManifest.StateColumn> stateColumns;
  private final BufferAllocator allocator;
  private final ShardWriter[] writers;
  private final boolean[] written;
  private final List<String> files = new ArrayList<>();
  private Vocabulary vocabulary;
  /** A table whose vocabulary files are copied into this version (instead of {@link #vocabulary}). */
  private Table vocabularySource;
  /** A vocabulary written in pieces into this version's directory (instead of {@link #vocabulary}). */
  private List<TableManifest.FileEntry> vocabularyFiles;
  private long nextId;
  private boolean committed;

  private TableWriter(
      TableLocation dir, boolean createdDir, TableManifest.Builder manifest, TableManifest shape, BufferAllocator allocator) {
    this.dir = dir;
    this.createdDir = createdDir;
    this.manifest = manifest;
    this.partitioner = shape.partitioner();
    this.dim = shape.dim();
    this.valueType = shape.valueType();
    this.version = shape.tableVersion();
    this.stateColumns = shape.stateColumns();
    this.allocator = allocator;
    this.writers = new ShardWriter[partitioner.numShards()];
    this.written = new boolean[partitioner.numShards()];
  }

  /**
   * Starts a new table in {@code dir}, which must not exist or be an empty directory.
   *
   * @param spec rows, dim, partitioner, optimizer, created and properties of the table; its shard
   *     list is ignored except for its size, given by {@code numShards}
   */
  public static TableWriter create(
      Path dir, long rows, int dim, int numShards, String partitioner, BufferAllocator allocator)
      throws IOException {
    return create(TableLocation.of(dir), TableManifest.builder().rows(rows).dim(dim).partitioner(partitioner), numShards, allocator);
  }

  /** Starts a new table in the local directory {@code dir} from a builder that has rows, dim and partitioner set. */
  public static TableWriter create(
      Path dir, TableManifest.Builder spec, int numShards, BufferAllocator allocator) throws IOException {
    return create(TableLocation.of(dir), spec, numShards, allocator);
  }

  /** Starts a new table in {@code dir} (any storage) from a builder that has rows, dim and partitioner set. */
  public static TableWriter create(
      TableLocation dir, TableManifest.Builder spec, int numShards, BufferAllocator allocator) throws IOException {
    if (numShards < 1) {
      throw new IllegalArgumentException("Cannot create table " + dir + ": shards=" + numShards + " (must be at least 1)");
    }
    TableManifest.Builder b = spec.tableVersion(1);
    TableManifest shape = withPlaceholderShards(b, numShards);
    boolean created = false;
    if (dir.exists()) {
      if (!dir.isEmptyDirectory()) {
        throw new FileAlreadyExistsException(
            dir.toString(), null, "Cannot create table: output " + dir + " already exists (choose a new directory or remove it)");
      }
    } else {
      dir.createDirectories();
      created = true;
    }
    return new TableWriter(dir, created, b, shape, allocator);
  }

  /** Starts version {@code base.tableVersion() + 1} of the table in the local directory {@code dir}. */
  public static TableWriter nextVersion(Path dir, TableManifest base, BufferAllocator allocator) {
    return nextVersion(TableLocation.of(dir), base, allocator);
  }

  /** Starts version {@code base.tableVersion() + 1} of the table in {@code dir}. */
  public static TableWriter nextVersion(TableLocation dir, TableManifest base, BufferAllocator allocator) {
    TableManifest.Builder b = base.toBuilder().tableVersion(base.tableVersion() + 1);
    TableManifest shape = b.build();
    return new TableWriter(dir, false, b, shape, allocator);
  }

  private static TableManifest withPlaceholderShards(TableManifest.Builder b, int numShards) {
    // Validates rows, dim and partitioner up front, before anything touches the disk.
    Partitioner p = Partitioner.of(b.partitionerName(), b.rowsValue(), numShards);
    List<TableManifest.ShardEntry> shards = new ArrayList<>();
    for (int i = 0; i < numShards; i++) {
      shards.add(new TableManifest.ShardEntry(i, "placeholder", p.shardRows(i), p.minId(i), p.maxId(i), 0, 0));
    }
    return b.shards(shards).build();
  }

  /** Where the table is written. */
  public TableLocation location() {
    return dir;
  }

  public Partitioner partitioner() {
    return partitioner;
  }

  public int dim() {
    return dim;
  }

  /** The value type the rows are stored in. */
  public ValueType valueType() {
    return valueType;
  }

  public long tableVersion() {
    return version;
  }

  /** Sets the vocabulary written with this version; it must have one token per row. */
  public TableWriter vocabulary(Vocabulary v) {
    if (v != null && v.size() != partitioner.numRows()) {
      throw new IllegalArgumentException(
          "Cannot attach vocabulary: " + v.size() + " tokens for a table of " + partitioner.numRows() + " rows");
    }
    this.vocabulary = v;
    this.vocabularyFiles = null;
    this.vocabularySource = null;
    return this;
  }

  /**
   * Commits this version with a vocabulary written in pieces ({@link Vocabulary#pieceWriter} with
   * this writer's {@link #tableVersion}, into {@link #dir}): {@code files} in id order, one token per
   * row in all. The files become this writer's: closed without a commit, it deletes them.
   */
  public TableWriter vocabularyFiles(List<TableManifest.FileEntry> files) throws IOException {
    long total = 0;
    for (TableManifest.FileEntry f : files) {
      this.files.add(f.file());
      ShardReader.checkFile(dir, f.file(), f.bytes(), f.crc32c(), false);
      total += f.rows();
    }
    if (total != partitioner.numRows()) {
      throw new IllegalArgumentException("Cannot attach vocabulary: " + files.size() + " files of " + total
          + " tokens for a table of " + partitioner.numRows() + " rows");
    }
    this.vocabularyFiles = List.copyOf(files);
    this.vocabulary = null;
    this.vocabularySource = null;
    return this;
  }

  /**
   * Copies the vocabulary files of {@code source} (same V) into this version at commit, byte for
   * byte with their checksums checked: no token is loaded on the heap.
   */
  public TableWriter copyVocabulary(Table source) {
    TableManifest m = source.manifest();
    if (!m.hasVocabulary() || m.rows() != partitioner.numRows()) {
      throw new IllegalArgumentException("Cannot copy the vocabulary of " + source.location() + ": "
          + (!m.hasVocabulary() ? "it has none" : m.rows() + " tokens for a table of " + partitioner.numRows() + " rows"));
    }
    this.vocabularySource = source;
    this.vocabulary = null;
    this.vocabularyFiles = null;
    return this;
  }

  /** Sets a free-form property of the manifest. */
  public TableWriter property(String key, String value) {
    manifest.property(key, value);
    return this;
  }

  /** Sets the optimizer step recorded in the manifest (the table must have an optimizer). */
  public TableWriter optimizerStep(long step) {
    TableManifest.Optimizer o = manifest.optimizerValue();
    if (o == null) {
      throw new IllegalStateException("Cannot set optimizer step: the table has no optimizer");
    }
    manifest.optimizer(new TableManifest.Optimizer(o.name(), o.params(), o.stateColumns(), step));
    return this;
  }

  /** Sets created.by / created.at of the manifest. */
  public TableWriter createdBy(String by) {
    manifest.createdBy(by);
    return this;
  }

  /** The writer of shard {@code index}, opened on first use. */
  public ShardWriter shard(int index) throws IOException {
    if (index < 0 || index >= writers.length) {
      throw new IllegalArgumentException("Cannot write shard " + index + ": the table has shards 0.." + (writers.length - 1));
    }
    if (writers[index] == null) {
      String file = TableFormat.shardFileName(index, version);
      removeLeftover(file);
      files.add(file);
      writers[index] = ShardWriter.create(dir, file, index, partitioner, dim, valueType, stateColumns, allocator);
      written[index] = true;
    }
    return writers[index];
  }

  /**
   * Appends {@code count} rows of little-endian float32 (C values each) for ids {@code nextId ..
   * nextId + count - 1}, routing each to its shard; every shard is written.
   */
  public void appendInIdOrder(ByteBuffer src, int count) throws IOException {
    appendInIdOrder(src, count, false);
  }

  /**
   * {@link #appendInIdOrder} of rows already in the table's value type ({@link #valueType}: C
   * little-endian values of it a row, C + 8 bytes for int8), copied bit for bit: a 16-bit source of the table's own type
   * needs no float32 in between.
   */
  public void appendStoredInIdOrder(ByteBuffer src, int count) throws IOException {
    appendInIdOrder(src, count, true);
  }

  private void appendInIdOrder(ByteBuffer src, int count, boolean stored) throws IOException {
    if (nextId + count > partitioner.numRows()) {
      throw new IllegalArgumentException(
          "Cannot append " + count + " rows at id " + nextId + ": the table has " + partitioner.numRows() + " rows");
    }
    int rowBytes = (int) (stored ? valueType.rowBytes(dim) : dim * 4L);
    boolean contiguous = partitioner.numShards() == 1 || Partitioner.RANGE.equals(partitioner.name());
    boolean interleavedDirect = !contiguous && src.isDirect();
    if ((stored || interleavedDirect) && src.remaining() < count * (long) rowBytes) {
      throw new IllegalArgumentException("Cannot append: buffer holds " + src.remaining() + " bytes, need " + count * (long) rowBytes);
    }
    if (interleavedDirect) {
      // Interleaved shards (modulo): one row to each in turn, straight from the buffer's memory.
      long address = MemoryUtil.getByteBufferAddress(src) + src.position();
      for (int i = 0; i < count; i++) {
        shard(partitioner.shardOf(nextId)).appendRow(address + (long) i * rowBytes, stored, null);
        nextId++;
      }
      src.position(src.position() + count * rowBytes);
      return;
    }
    while (count > 0) {
      int s = partitioner.shardOf(nextId);
      int n = contiguous ? (int) Math.min(count, partitioner.shardRows(s) - partitioner.positionOf(nextId)) : 1;
      if (stored) {
        shard(s).appendStored(src, n);
      } else {
        shard(s).append(src, n);
      }
      nextId += n;
      count -= n;
      if (src.remaining() < count * (long) rowBytes) {
        throw new IllegalArgumentException("Cannot append: buffer ended with " + count + " rows to go");
      }
    }
  }

  /** Rows appended so far through {@link #appendInIdOrder}. */
  public long nextId() {
    return nextId;
  }

  /**
   * Finishes every shard written, writes the vocabulary, and commits the manifest.
   *
   * @throws IllegalStateException when a new table has a shard that was never written
   */
  public TableManifest commit() throws IOException {
    for (int i = 0; i < writers.length; i++) {
      if (writers[i] == null) {
        if (createdDirOrNew()) {
          throw new IllegalStateException("Cannot commit " + dir + ": shard " + i + " was never written");
        }
        continue;
      }
      manifest.setShard(writers[i].finish());
    }
    if (vocabulary != null) {
      String file = TableFormat.vocabFileName(version);
      removeLeftover(file);
      files.add(file);
      manifest.vocabulary(vocabulary.write(dir, file, allocator));
    } else if (vocabularySource != null) {
      List<TableManifest.FileEntry> from = vocabularySource.manifest().vocabularyFiles();
      List<TableManifest.FileEntry> copied = new ArrayList<>();
      for (int i = 0; i < from.size(); i++) {
        String file = from.size() == 1 ? TableFormat.vocabFileName(version) : TableFormat.vocabPieceFileName(i, version);
        removeLeftover(file);
        files.add(file);
        copied.add(Resharder.copyChecked(vocabularySource.location(), from.get(i), dir, file));
      }
      manifest.vocabularyFiles(copied);
    } else if (vocabularyFiles != null) {
      manifest.vocabularyFiles(vocabularyFiles);
    }
    TableManifest m = manifest.build();
    commit(dir, m);
    committed = true;
    return m;
  }

  private void removeLeftover(String file) throws IOException {
    removeUncommitted(dir, file, version);
  }

  /** {@link #removeUncommitted(TableLocation, String, long)} in a local directory. */
  public static void removeUncommitted(Path dir, Path file, long version) throws IOException {
    removeUncommitted(TableLocation.of(dir), file.getFileName().toString(), version);
  }

  /**
   * Deletes file {@code name}, a data file of table version {@code version} about to be written in
   * {@code dir}, if a writer of that same version was killed before its commit and left it behind:
   * no committed manifest can name a file of a version newer than the committed one, so it is
   * garbage. Every writer of version-named files (table writers, shard-server snapshots) calls this
   * before creating one.
   *
   * @throws FileAlreadyExistsException when the committed manifest already is at {@code version} or
   *     later (another writer got there first, or the caller's base version was stale)
   */
  public static void removeUncommitted(TableLocation dir, String name, long version) throws IOException {
    if (!dir.exists(name)) {
      return;
    }
    long committed = dir.committedVersion();
    if (committed >= version) {
      throw new FileAlreadyExistsException(
          dir.describe(name), null, "Cannot write table version " + version + " of " + dir + ": version " + committed + " is already committed");
    }
    LOG.info("Deleting {}: left by a writer of version {} that never committed", dir.describe(name), version);
    dir.deleteIfExists(name);
  }

  private boolean createdDirOrNew() {
    return version == 1;
  }

  /** {@link #commit(TableLocation, TableManifest)} in a local directory. */
  public static void commit(Path dir, TableManifest m) throws IOException {
    commit(TableLocation.of(dir), m);
  }

  /**
   * Atomically makes {@code m} the manifest of the table in {@code dir} ({@link
   * TableLocation#commitManifest}: a rename on local disks and HDFS, a conditional PUT on object
   * stores), then deletes data files of older versions that {@code m} no longer references, and
   * temporary manifests left by killed writers, found by listing the directory.
   */
  public static void commit(TableLocation dir, TableManifest m) throws IOException {
    dir.commitManifest(m.toJson(), m.tableVersion());
    deleteUnreferenced(dir, m);
  }

  private static void deleteUnreferenced(TableLocation dir, TableManifest m) {
    Set<String> keep = new HashSet<>();
    m.shards().forEach(s -> keep.add(s.file()));
    m.vocabularyFiles().forEach(v -> keep.add(v.file()));
    try {
      for (String name : dir.list()) {
        boolean stale = TableFormat.isDataFileName(name) && !keep.contains(name) && versionOf(name) < m.tableVersion();
        boolean staleTmp = name.startsWith(TableFormat.MANIFEST_FILE + ".tmp-");
        if (stale || staleTmp) {
          dir.deleteIfExists(name);
        }
      }
    } catch (IOException e) {
      LOG.warn("Cannot delete unreferenced files of {}: {}", dir, e.toString());
    }
  }

  private static long versionOf(String name) {
    int v = name.lastIndexOf("-v");
    return Long.parseLong(name.substring(v + 2, name.length() - ".arrow".length()));
  }

  /** Without a commit: deletes every file this writer wrote, and the directory if it made it. */
  @Override
  public void close() throws IOException {
    IOException failure = null;
    for (ShardWriter w : writers) {
      if (w != null) {
        try {
          w.close();
        } catch (IOException | RuntimeException e) {
          // After a failed write (e.g. disk full) Arrow's writer fails again writing its footer on
          // close, as a RuntimeException: keep closing the other shards and deleting the files.
          failure = e instanceof IOException ? (IOException) e : new IOException(e);
        }
      }
    }
    if (!committed) {
      for (String f : files) {
        dir.deleteIfExists(f);
      }
      if (createdDir) {
        dir.deleteDirectoryIfEmpty();
      }
    }
    if (failure != null && committed) {
      throw failure;
    }
  }
}
