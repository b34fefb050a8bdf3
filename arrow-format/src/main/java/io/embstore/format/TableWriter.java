package io.embstore.format;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import org.apache.arrow.memory.BufferAllocator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes a table version: a new table ({@link #create}) or the next version of an existing one
 * ({@link #nextVersion}). Shard files are written first, the manifest last with an atomic rename
 * ({@link #commit(Path, TableManifest)}); closing a writer that did not commit deletes every file it
 * wrote (and the directory, if it created it), so a failed write leaves nothing behind.
 *
 * <p>Rows arrive either in id order for the whole table ({@link #appendInIdOrder}, used by import)
 * or shard by shard ({@link #shard(int)}, used by snapshots and checkpoints). Shards of a new version
 * that are not written keep the previous version's file.
 */
public final class TableWriter implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(TableWriter.class);

  private final Path dir;
  private final boolean createdDir;
  private final TableManifest.Builder manifest;
  private final Partitioner partitioner;
  private final int dim;
  private final long version;
  private final List<TableManifest.StateColumn> stateColumns;
  private final BufferAllocator allocator;
  private final ShardWriter[] writers;
  private final boolean[] written;
  private final List<Path> files = new ArrayList<>();
  private Vocabulary vocabulary;
  private List<TableManifest.FileEntry> vocabularyFiles;
  private long nextId;
  private boolean committed;

  private TableWriter(
      Path dir, boolean createdDir, TableManifest.Builder manifest, TableManifest shape, BufferAllocator allocator) {
    this.dir = dir;
    this.createdDir = createdDir;
    this.manifest = manifest;
    this.partitioner = shape.partitioner();
    this.dim = shape.dim();
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
    return create(dir, TableManifest.builder().rows(rows).dim(dim).partitioner(partitioner), numShards, allocator);
  }

  /** Starts a new table in {@code dir} from a builder that has rows, dim and partitioner set. */
  public static TableWriter create(
      Path dir, TableManifest.Builder spec, int numShards, BufferAllocator allocator) throws IOException {
    if (numShards < 1) {
      throw new IllegalArgumentException("Cannot create table " + dir + ": shards=" + numShards + " (must be at least 1)");
    }
    TableManifest.Builder b = spec.tableVersion(1);
    TableManifest shape = withPlaceholderShards(b, numShards);
    boolean created = false;
    if (Files.exists(dir)) {
      if (!Files.isDirectory(dir) || !isEmpty(dir)) {
        throw new FileAlreadyExistsException(
            dir.toString(), null, "Cannot create table: output " + dir + " already exists (choose a new directory or remove it)");
      }
    } else {
      Files.createDirectories(dir);
      created = true;
    }
    return new TableWriter(dir, created, b, shape, allocator);
  }

  /** Starts version {@code base.tableVersion() + 1} of the table in {@code dir}. */
  public static TableWriter nextVersion(Path dir, TableManifest base, BufferAllocator allocator) {
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

  private static boolean isEmpty(Path dir) throws IOException {
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
      return !s.iterator().hasNext();
    }
  }

  public Path dir() {
    return dir;
  }

  public Partitioner partitioner() {
    return partitioner;
  }

  public int dim() {
    return dim;
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
      Path file = dir.resolve(f.file());
      this.files.add(file);
      ShardReader.checkFile(file, f.bytes(), f.crc32c(), false);
      total += f.rows();
    }
    if (total != partitioner.numRows()) {
      throw new IllegalArgumentException("Cannot attach vocabulary: " + files.size() + " files of " + total
          + " tokens for a table of " + partitioner.numRows() + " rows");
    }
    this.vocabularyFiles = List.copyOf(files);
    this.vocabulary = null;
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
      Path file = dir.resolve(TableFormat.shardFileName(index, version));
      removeLeftover(file);
      files.add(file);
      writers[index] = ShardWriter.create(file, index, partitioner, dim, stateColumns, allocator);
      written[index] = true;
    }
    return writers[index];
  }

  /**
   * Appends {@code count} rows of little-endian float32 (C values each) for ids {@code nextId ..
   * nextId + count - 1}, routing each to its shard; every shard is written.
   */
  public void appendInIdOrder(ByteBuffer src, int count) throws IOException {
    if (nextId + count > partitioner.numRows()) {
      throw new IllegalArgumentException(
          "Cannot append " + count + " rows at id " + nextId + ": the table has " + partitioner.numRows() + " rows");
    }
    int rowBytes = dim * 4;
    boolean contiguous = partitioner.numShards() == 1 || Partitioner.RANGE.equals(partitioner.name());
    while (count > 0) {
      int s = partitioner.shardOf(nextId);
      int n = 1;
      if (contiguous) {
        long left = partitioner.shardRows(s) - partitioner.positionOf(nextId);
        n = (int) Math.min(count, left);
      }
      ShardWriter w = shard(s);
      if (n == 1) {
        w.append(src, 1);
      } else {
        w.append(src, n);
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
      Path file = dir.resolve(TableFormat.vocabFileName(version));
      removeLeftover(file);
      files.add(file);
      manifest.vocabulary(vocabulary.write(file, allocator));
    } else if (vocabularyFiles != null) {
      manifest.vocabularyFiles(vocabularyFiles);
    }
    TableManifest m = manifest.build();
    commit(dir, m);
    committed = true;
    return m;
  }

  private void removeLeftover(Path file) throws IOException {
    removeUncommitted(dir, file, version);
  }

  /**
   * Deletes {@code file}, a data file of table version {@code version} about to be written in
   * {@code dir}, if a writer of that same version was killed before its commit and left it behind:
   * no committed manifest can name a file of a version newer than the committed one, so it is
   * garbage. Every writer of version-named files (table writers, shard-server snapshots) calls this
   * before creating one.
   *
   * @throws FileAlreadyExistsException when the committed manifest already is at {@code version} or
   *     later (another writer got there first, or the caller's base version was stale)
   */
  public static void removeUncommitted(Path dir, Path file, long version) throws IOException {
    if (!Files.exists(file)) {
      return;
    }
    if (Files.exists(dir.resolve(TableFormat.MANIFEST_FILE))) {
      long committed = TableManifest.read(dir).tableVersion();
      if (committed >= version) {
        throw new FileAlreadyExistsException(
            file.toString(), null, "Cannot write table version " + version + " of " + dir + ": version " + committed + " is already committed");
      }
    }
    LOG.info("Deleting {}: left by a writer of version {} that never committed", file, version);
    Files.delete(file);
  }

  private boolean createdDirOrNew() {
    return version == 1;
  }

  /**
   * Atomically makes {@code m} the manifest of the table in {@code dir}: writes a temporary file,
   * forces it, renames it over {@code manifest.json}, forces the directory, then deletes data files
   * of older versions that {@code m} no longer references.
   */
  public static void commit(Path dir, TableManifest m) throws IOException {
    Path tmp = dir.resolve(TableFormat.MANIFEST_FILE + ".tmp-" + UUID.randomUUID());
    try {
      try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        ByteBuffer bytes = ByteBuffer.wrap(m.toJson());
        while (bytes.hasRemaining()) {
          ch.write(bytes);
        }
        ch.force(true);
      } catch (IOException e) {
        if (e instanceof java.nio.file.FileSystemException) {
          throw e; // already names the file
        }
        throw new IOException("Cannot write " + tmp + ": " + e.getMessage(), e);
      }
      Files.move(tmp, dir.resolve(TableFormat.MANIFEST_FILE), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } finally {
      Files.deleteIfExists(tmp);
    }
    forceDirectory(dir);
    deleteUnreferenced(dir, m);
  }

  private static void forceDirectory(Path dir) {
    try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
      ch.force(true);
    } catch (IOException e) {
      // Some file systems cannot open a directory for reading; the rename is still atomic there.
      LOG.debug("Cannot force directory {}: {}", dir, e.toString());
    }
  }

  private static void deleteUnreferenced(Path dir, TableManifest m) {
    Set<String> keep = new HashSet<>();
    m.shards().forEach(s -> keep.add(s.file()));
    m.vocabularyFiles().forEach(v -> keep.add(v.file()));
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
      for (Path p : s) {
        String name = p.getFileName().toString();
        boolean stale = TableFormat.isDataFileName(name) && !keep.contains(name) && versionOf(name) < m.tableVersion();
        boolean staleTmp = name.startsWith(TableFormat.MANIFEST_FILE + ".tmp-");
        if (stale || staleTmp) {
          Files.deleteIfExists(p);
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
      for (Path f : files) {
        Files.deleteIfExists(f);
      }
      if (createdDir && isEmpty(dir)) {
        Files.deleteIfExists(dir);
      }
    }
    if (failure != null && committed) {
      throw failure;
    }
  }
}
