package io.embstore.format;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.util.MemoryUtil;

/**
 * A committed table version: its manifest and the directory holding its files, on any storage
 * ({@link TableLocation}). Opening reads and validates the manifest and checks that every file it
 * names exists with the recorded length; {@link #verify} reads every byte.
 */
public final class Table {
  private final TableLocation dir;
  private final TableManifest manifest;

  private Table(TableLocation dir, TableManifest manifest) {
    this.dir = dir;
    this.manifest = manifest;
  }

  /** Opens the table in the local directory {@code dir}. */
  public static Table open(Path dir) throws IOException {
    return open(TableLocation.of(dir));
  }

  /** Opens the table at {@code uri}: a plain path, {@code file:}, {@code hdfs:}, {@code s3a:}... */
  public static Table open(String uri) throws IOException {
    return open(TableLocation.of(uri));
  }

  /** Opens the table in {@code dir}: manifest checksum and structure, file presence and lengths. */
  public static Table open(TableLocation dir) throws IOException {
    TableManifest m = TableManifest.read(dir);
    for (TableManifest.ShardEntry s : m.shards()) {
      ShardReader.checkFile(dir, s.file(), s.bytes(), s.crc32c(), false);
    }
    for (TableManifest.FileEntry v : m.vocabularyFiles()) {
      ShardReader.checkFile(dir, v.file(), v.bytes(), v.crc32c(), false);
    }
    return new Table(dir, m);
  }

  /** Where the table lives. */
  public TableLocation location() {
    return dir;
  }

  public TableManifest manifest() {
    return manifest;
  }

  /** Opens shard {@code index} for reading, optionally checking its CRC-32C first. */
  public ShardReader openShard(int index, BufferAllocator allocator, boolean verifyChecksum)
      throws IOException {
    return ShardReader.open(dir, manifest, index, allocator, verifyChecksum);
  }

  /**
   * The vocabulary (checksums verified), every file of it on the heap, or null when the table has
   * none. A vocabulary too large for one heap is read file by file with {@link
   * #forEachVocabularyToken}.
   */
  public Vocabulary vocabulary(BufferAllocator allocator) throws IOException {
    if (!manifest.hasVocabulary()) {
      return null;
    }
    return Vocabulary.read(dir, manifest, allocator);
  }

  /**
   * Reads the whole of shard {@code index} into row-major buffers (see {@link
   * ShardReader#readFully}) in one pass over the file: its CRC-32C is computed from the bytes as
   * they are read and checked at the end, so the file is read once instead of twice (a checksum
   * pass, then the data), which halves the reads of a shard server loading from HDFS or S3. On a
   * mismatch nothing read may be used: the call throws.
   */
  public void readShardFully(int index, BufferAllocator allocator, ArrowBuf embeddings, ArrowBuf... state)
      throws IOException {
    ShardReader.readFullyChecked(dir, manifest, index, allocator, false, embeddings, state);
  }

  /**
   * {@link #readShardFully} with the embeddings as stored: C values of the table's {@link
   * ValueType} per row, bit for bit (2 bytes a value for a 16-bit table).
   */
  public void readShardStored(int index, BufferAllocator allocator, ArrowBuf embeddings, ArrowBuf... state)
      throws IOException {
    ShardReader.readFullyChecked(dir, manifest, index, allocator, true, embeddings, state);
  }

  /**
   * Reads the rows that partitioning {@code target} (same V, any number of shards or partitioner)
   * puts in the shards {@code into} has buffers for, scanning each shard file of the table once,
   * batch by batch, checksums checked as they are read. The rows of target shard t go to {@code
   * into[t][0]} (embeddings, row-major, at the target position) and its state columns to {@code
   * into[t][1..]} (in manifest order, as many as given); {@code into[t] == null} skips shard t.
   * This is how a shard server hosts a table with another shard count than it was written with.
   */
  public void readRepartitioned(Partitioner target, ArrowBuf[][] into, BufferAllocator allocator) throws IOException {
    readRepartitioned(target, into, allocator, false);
  }

  /**
   * {@link #readRepartitioned(Partitioner, ArrowBuf[][], BufferAllocator)}, with the embeddings as
   * stored (the table's value type, bit for bit) when {@code stored}, else as float32.
   */
  public void readRepartitioned(Partitioner target, ArrowBuf[][] into, BufferAllocator allocator, boolean stored) throws IOException {
    Partitioner p = manifest.partitioner();
    if (target.numRows() != p.numRows() || into.length != target.numShards()) {
      throw new IllegalArgumentException("Cannot read " + dir + " (" + p.numRows() + " rows) into " + into.length
          + " buffers of " + target.numShards() + " shards of " + target.numRows() + " rows");
    }
    long rowBytes = stored ? manifest.rowBytes() : manifest.dim() * 4L;
    for (int s = 0; s < p.numShards(); s++) {
      try (ShardReader r = ShardReader.openTracked(dir, manifest, s, allocator)) {
        try {
          while (r.loadNextBatch()) {
            ArrowBuf emb = stored ? r.storedEmbeddings() : r.embeddings();
            for (int i = 0; i < r.batchRows(); i++) {
              long id = p.idAt(s, r.batchStart() + i);
              ArrowBuf[] dst = into[target.shardOf(id)];
              if (dst == null) {
                continue;
              }
              long at = target.positionOf(id);
              dst[0].setBytes(at * rowBytes, emb, i * rowBytes, rowBytes);
              for (int c = 1; c < dst.length; c++) {
                long w = manifest.stateColumns().get(c - 1).width() * 4L;
                dst[c].setBytes(at * w, r.state(c - 1), i * w, w);
              }
            }
          }
        } catch (IOException | RuntimeException e) {
          throw r.corruptOr(e);
        }
        r.checkTrackedChecksum();
      }
    }
  }

  /**
   * Opens vocabulary file {@code file} (an index into the manifest's {@code vocabularyFiles}) for
   * reading row by row, checksum verified, in id order, one record batch in memory at a time.
   */
  public Vocabulary.TokenReader vocabularyReader(int file, BufferAllocator allocator) throws IOException {
    java.util.List<TableManifest.FileEntry> files = manifest.vocabularyFiles();
    if (file < 0 || file >= files.size()) {
      throw new IllegalArgumentException("Cannot read vocabulary file " + file + ": the table has " + files.size());
    }
    TableManifest.FileEntry e = files.get(file);
    return new Vocabulary.TokenReader(dir, e, manifest.vocabularyFirstId(file), allocator);
  }

  /**
   * Streams vocabulary file {@code file} (an index into the manifest's {@code vocabularyFiles}),
   * checksum verified, in id order, one record batch in memory at a time.
   */
  public void forEachVocabularyToken(int file, BufferAllocator allocator, Vocabulary.TokenConsumer consumer)
      throws IOException {
    try (Vocabulary.TokenReader r = vocabularyReader(file, allocator)) {
      while (r.next()) {
        consumer.accept(r.id(), r.token(), r.count());
      }
    }
  }

  /** Reads the row of {@code id} into {@code out} (C floats) by scanning its shard. */
  public void readRow(long id, float[] out, BufferAllocator allocator) throws IOException {
    Partitioner p = manifest.partitioner();
    if (!p.contains(id)) {
      throw new IllegalArgumentException("Cannot read id " + id + ": outside [0, " + p.numRows() + ")");
    }
    long pos = p.positionOf(id);
    try (ShardReader r = openShard(p.shardOf(id), allocator, false)) {
      while (r.loadNextBatch()) {
        if (pos < r.batchStart() + r.batchRows()) {
          ArrowBuf buf = r.embeddings();
          long base = (pos - r.batchStart()) * manifest.dim() * 4L;
          for (int c = 0; c < manifest.dim(); c++) {
            out[c] = buf.getFloat(base + 4L * c);
          }
          return;
        }
      }
    }
    throw new TableFormatException("Cannot read id " + id + ": not found in its shard");
  }

  /** Receives runs of consecutive ids whose rows lie back to back in one buffer. */
  @FunctionalInterface
  public interface RowRunConsumer {
    /**
     * @param firstId id of the first row of the run
     * @param rows number of rows
     * @param buf row-major float32 values, C per row, valid only during the call
     * @param offset byte offset of the first row in {@code buf}
     */
    void accept(long firstId, int rows, ArrowBuf buf, long offset) throws IOException;
  }

  /**
   * Streams every row in id order, 0 to V-1, holding one record batch per shard in memory. With the
   * range partitioner (or one shard) runs are whole batches; with modulo, whose consecutive ids lie
   * in different shards, the rows are gathered (one memory copy each, from raw addresses) into a
   * staging buffer of about {@value TableFormat#TARGET_BATCH_BYTES} bytes, handed over as one run.
   */
  public void forEachRowInIdOrder(BufferAllocator allocator, boolean verifyChecksums, RowRunConsumer consumer)
      throws IOException {
    Partitioner p = manifest.partitioner();
    int numShards = p.numShards();
    List<ShardReader> readers = new ArrayList<>(numShards);
    try {
      for (int s = 0; s < numShards; s++) {
        readers.add(openShard(s, allocator, verifyChecksums));
      }
      long rowBytes = manifest.dim() * 4L;
      long id = 0;
      if (numShards > 1 && !Partitioner.RANGE.equals(p.name())) {
        gatherInIdOrder(readers, rowBytes, allocator, consumer);
        id = p.numRows();
      }
      while (id < p.numRows()) {
        int s = p.shardOf(id);
        long pos = p.positionOf(id);
        ShardReader r = readers.get(s);
        while (pos >= r.batchStart() + r.batchRows()) {
          if (!r.loadNextBatch()) {
            throw new TableFormatException("Cannot read id " + id + ": shard " + s + " ended early");
          }
        }
        long inBatch = pos - r.batchStart();
        int run = 1;
        if (numShards == 1 || Partitioner.RANGE.equals(p.name())) {
          run = (int) (r.batchRows() - inBatch);
        }
        consumer.accept(id, run, r.embeddings(), inBatch * rowBytes);
        id += run;
      }
      for (ShardReader r : readers) {
        while (r.loadNextBatch()) {
          // Reaches the end so that the reader checks the row count.
        }
      }
    } finally {
      ShardReader.closeAll(readers);
    }
  }

  /** {@link #forEachRowInIdOrder} for interleaved shards: rows gathered into staged runs. */
  private void gatherInIdOrder(List<ShardReader> readers, long rowBytes, BufferAllocator allocator, RowRunConsumer consumer)
      throws IOException {
    Partitioner p = manifest.partitioner();
    int numShards = p.numShards();
    long[] address = new long[numShards];
    long[] start = new long[numShards];
    long[] end = new long[numShards];
    long stagingRows = Math.max(1, TableFormat.TARGET_BATCH_BYTES / rowBytes);
    try (ArrowBuf staging = allocator.buffer(stagingRows * rowBytes)) {
      long id = 0;
      while (id < p.numRows()) {
        int n = (int) Math.min(stagingRows, p.numRows() - id);
        long out = staging.memoryAddress();
        for (int k = 0; k < n; k++) {
          long row = id + k;
          int s = p.shardOf(row);
          long pos = p.positionOf(row);
          if (pos >= end[s]) {
            ShardReader r = readers.get(s);
            while (pos >= r.batchStart() + r.batchRows()) {
              if (!r.loadNextBatch()) {
                throw new TableFormatException("Cannot read id " + row + ": shard " + s + " ended early");
              }
            }
            address[s] = r.embeddings().memoryAddress();
            start[s] = r.batchStart();
            end[s] = r.batchStart() + r.batchRows();
          }
          MemoryUtil.copyMemory(address[s] + (pos - start[s]) * rowBytes, out, rowBytes);
          out += rowBytes;
        }
        consumer.accept(id, n, staging, 0);
        id += n;
      }
    }
  }

  /**
   * Reads every file of the table: manifest checksum (on open), every shard's length, CRC-32C,
   * schema and ids, and every vocabulary file (streamed; tokens checked unique with 8 bytes of heap
   * per token, see {@link Vocabulary#verify}).
   *
   * @return one line per file checked
   * @throws TableFormatException at the first problem, naming the file
   */
  public List<String> verify(BufferAllocator allocator) throws IOException {
    List<String> report = new ArrayList<>();
    report.add(TableFormat.MANIFEST_FILE + ": ok (table version " + manifest.tableVersion() + ", V=" + manifest.rows() + ", C=" + manifest.dim() + ", P=" + manifest.numShards() + ", " + manifest.partitioner().name() + ")");
    for (int s = 0; s < manifest.numShards(); s++) {
      try (ShardReader r = openShard(s, allocator, true)) {
        long rows = 0;
        while (r.loadNextBatch()) {
          rows += r.batchRows();
        }
        TableManifest.ShardEntry e = manifest.shard(s);
        report.add(e.file() + ": ok (" + rows + " rows, ids " + e.minId() + ".." + e.maxId() + ", crc32c " + Checksums.hex(e.crc32c()) + ")");
      }
    }
    if (manifest.hasVocabulary()) {
      report.addAll(Vocabulary.verify(dir, manifest, allocator));
    }
    return report;
  }
}
