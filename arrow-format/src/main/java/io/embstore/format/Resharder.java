package io.embstore.format;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.channels.SeekableByteChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.zip.CRC32C;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;

/**
 * Writes a table's rows into a new table with another number of shards or another partitioner,
 * streaming: the input shards are read in id order, each holding one record batch, and every row
 * is copied (embedding and optimizer state columns, bit for bit) into the output shard that the
 * new partitioning assigns it, each output shard holding one record batch. Off-heap memory is one
 * batch (about {@value TableFormat#TARGET_BATCH_BYTES} bytes) per input and per output shard; the
 * heap holds neither rows nor the vocabulary, whose file is copied byte for byte. Input and
 * output may be on different storages. The input's checksums are checked as it is read; the
 * output is committed only after every input file's checksum matched.
 *
 * <p>With {@link Options#valueType} set to another type than the input's, the embeddings are
 * converted on the way ({@code embstore convert}): decoded to float32 (exactly from 16 bits, as
 * code * scale + bias from int8) and narrowed with round to nearest even ({@link HalfFloats}) or
 * quantized row by row ({@link Int8Rows}); with the same type they are copied bit for bit.
 *
 * <p>The manifest keeps V, C, the value type (unless converted), the optimizer (state columns, step) and the properties of the
 * input, records {@code reshard.source} (the input's location and table version) and is version 1
 * of the new table.
 */
public final class Resharder {
  private Resharder() {}

  /**
   * What to reshard.
   *
   * @param shards P of the output; 0 keeps the input's
   * @param partitioner {@code modulo} or {@code range}; null keeps the input's
   * @param valueType the output's value type; null keeps the input's
   * @param progress receives a line every few seconds, or null
   */
  public record Options(
      TableLocation input, TableLocation output, int shards, String partitioner, ValueType valueType, PrintWriter progress) {
    public Options(TableLocation input, TableLocation output, int shards, String partitioner, PrintWriter progress) {
      this(input, output, shards, partitioner, null, progress);
    }
  }

  /** Runs the reshard; returns the committed manifest of the new table. */
  public static TableManifest run(Options o, BufferAllocator parent) throws IOException {
    Table in = Table.open(o.input());
    TableManifest m = in.manifest();
    Partitioner from = m.partitioner();
    String name = o.partitioner() == null ? from.name() : o.partitioner();
    boolean convert = o.valueType() != null && o.valueType() != m.valueType();
    int shards = o.shards() == 0 && convert ? m.numShards() : o.shards();
    if (shards < 1) {
      throw new IllegalArgumentException("Cannot reshard " + o.input() + ": shards=" + o.shards() + " (must be at least 1)");
    }
    ValueType type = o.valueType() == null ? m.valueType() : o.valueType();
    Partitioner to = Partitioner.of(name, m.rows(), shards); // validates name and P <= V first
    TableManifest.Builder spec = TableManifest.builder()
        .rows(m.rows())
        .dim(m.dim())
        .valueType(type)
        .partitioner(to.name())
        .optimizer(m.optimizer())
        .properties(m.properties())
        .property(convert ? "convert.source" : "reshard.source", o.input().uri() + " (table version " + m.tableVersion() + ", " + from.numShards() + " " + from.name() + " shards"
            + (convert ? ", " + m.valueType() : "") + ")")
        .createdBy(convert ? "embstore convert" : "embstore reshard");
    try (BufferAllocator allocator = parent.newChildAllocator("reshard", 0, Long.MAX_VALUE);
        TableWriter w = TableWriter.create(o.output(), spec, shards, allocator)) {
      if (m.hasVocabulary()) {
        w.copyVocabulary(in);
      }
      copyRows(in, w, to, allocator, o.progress());
      return w.commit();
    }
  }

  private static void copyRows(Table in, TableWriter w, Partitioner to, BufferAllocator allocator, PrintWriter progress)
      throws IOException {
    TableManifest m = in.manifest();
    Partitioner from = m.partitioner();
    int states = m.stateColumns().size();
    // Same type: the stored bits are copied; another type: float32 rows, narrowed by the writer.
    boolean stored = w.valueType() == m.valueType();
    List<ShardReader> readers = new ArrayList<>();
    try {
      for (int s = 0; s < from.numShards(); s++) {
        readers.add(ShardReader.openTracked(in.location(), m, s, allocator));
      }
      ShardWriter[] writers = new ShardWriter[to.numShards()];
      for (int s = 0; s < writers.length; s++) {
        writers[s] = w.shard(s);
      }
      // The current batch of each input shard: its positions [start, end), raw addresses of its
      // embeddings and state columns (rows of interleaved shards are copied one at a time from there).
      ArrowBuf[][] state = new ArrowBuf[readers.size()][states];
      long[] start = new long[readers.size()];
      long[] end = new long[readers.size()];
      long[] embAddress = new long[readers.size()];
      long[][] stateAddress = new long[readers.size()][states];
      long[] rowState = new long[states];
      long[] stateBytes = new long[states];
      for (int c = 0; c < states; c++) {
        stateBytes[c] = m.stateColumns().get(c).width() * 4L;
      }
      long rowBytes = stored ? m.rowBytes() : m.dim() * 4L;
      boolean inRuns = from.numShards() == 1 || Partitioner.RANGE.equals(from.name());
      boolean outRuns = to.numShards() == 1 || Partitioner.RANGE.equals(to.name());
      long rows = m.rows();
      long nextReport = System.nanoTime() + 5_000_000_000L;
      long nextCheck = 1 << 16;
      long id = 0;
      int current = -1;
      try {
        while (id < rows) {
          int s = from.shardOf(id);
          current = s;
          long pos = from.positionOf(id);
          if (pos >= end[s]) {
            ShardReader r = readers.get(s);
            while (pos >= r.batchStart() + r.batchRows()) {
              if (!r.loadNextBatch()) {
                throw new TableFormatException("Cannot read id " + id + ": shard " + s + " of " + in.location() + " ended early");
              }
            }
            start[s] = r.batchStart();
            end[s] = r.batchStart() + r.batchRows();
            embAddress[s] = (stored ? r.storedEmbeddings() : r.embeddings()).memoryAddress();
            for (int c = 0; c < states; c++) {
              state[s][c] = r.state(c);
              stateAddress[s][c] = state[s][c].memoryAddress();
            }
          }
          long inBatch = pos - start[s];
          int t = to.shardOf(id);
          if (inRuns && outRuns) {
            int run = (int) Math.min(Math.min(end[s] - pos, to.shardRows(t) - to.positionOf(id)), rows - id);
            if (stored) {
              writers[t].appendStored(readers.get(s).storedEmbeddings(), inBatch, run, state[s]);
            } else {
              writers[t].append(readers.get(s).embeddings(), inBatch, run, state[s]);
            }
            id += run;
          } else {
            for (int c = 0; c < states; c++) {
              rowState[c] = stateAddress[s][c] + inBatch * stateBytes[c];
            }
            writers[t].appendRow(embAddress[s] + inBatch * rowBytes, stored, rowState);
            id++;
          }
          if (id >= nextCheck) {
            nextCheck = id + (1 << 16);
            if (progress != null && System.nanoTime() > nextReport) {
              progress.printf(Locale.ROOT, "resharded %d of %d rows (%.0f%%)%n", id, rows, 100.0 * id / rows);
              progress.flush();
              nextReport = System.nanoTime() + 5_000_000_000L;
            }
          }
        }
        for (ShardReader r : readers) {
          current = r.shard();
          while (r.loadNextBatch()) {
            // Reaches the end so that the reader checks the row count.
          }
          r.checkTrackedChecksum();
        }
      } catch (IOException | RuntimeException e) {
        if (current < 0) {
          throw e;
        }
        throw readers.get(current).corruptOr(e);
      }
    } finally {
      ShardReader.closeAll(readers);
    }
  }

  /**
   * Checks that every value of {@code table} fits float16: none from 65,520 up in magnitude, which
   * float16 stores as infinity (infinities and NaNs already in the table stay what they are).
   *
   * @throws IllegalArgumentException naming the first such id, column and value, and the limit
   */
  public static void checkFloat16Range(Table table, BufferAllocator parent) throws IOException {
    int dim = table.manifest().dim();
    try (BufferAllocator allocator = parent.newChildAllocator("float16-range-check", 0, Long.MAX_VALUE)) {
      table.forEachRowInIdOrder(allocator, false, (firstId, rows, buf, offset) -> {
        for (long i = 0; i < (long) rows * dim; i++) {
          float f = buf.getFloat(offset + 4 * i);
          if (Float.isFinite(f) && Math.abs(f) >= 65520f) {
            throw new IllegalArgumentException("Cannot convert " + table.location() + " to float16: id " + (firstId + i / dim) + ", column " + (i % dim)
                + " is " + f + ", beyond float16's largest value 65504 (it would be stored as infinity; use bfloat16, or pass --allow-non-finite)");
          }
        }
      });
    }
  }

  /**
   * Copies file {@code entry} of {@code from} to {@code name} in {@code to}, byte for byte,
   * checking its CRC-32C on the way; returns the entry of the copy.
   */
  static TableManifest.FileEntry copyChecked(TableLocation from, TableManifest.FileEntry entry, TableLocation to, String name)
      throws IOException {
    ShardReader.checkFile(from, entry.file(), entry.bytes(), entry.crc32c(), false);
    CRC32C crc = new CRC32C();
    long bytes = 0;
    try (SeekableByteChannel ch = from.openSequential(entry.file())) {
      TableLocation.Output out = to.create(name);
      try (out) {
        ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
        while (ch.read(buf.clear()) >= 0) {
          buf.flip();
          crc.update(buf.duplicate());
          bytes += buf.remaining();
          while (buf.hasRemaining()) {
            out.write(buf);
          }
        }
        out.sync();
        out.close();
        if ((int) crc.getValue() != entry.crc32c() || bytes != entry.bytes()) {
          throw new TableFormatException("Cannot copy " + from.describe(entry.file()) + ": checksum mismatch (manifest crc32c:"
              + Checksums.hex(entry.crc32c()) + ", file crc32c:" + Checksums.hex((int) crc.getValue()) + "): the file is corrupt");
        }
      } catch (IOException | RuntimeException e) {
        try {
          to.deleteIfExists(name);
        } catch (IOException suppressed) {
          e.addSuppressed(suppressed);
        }
        throw e;
      }
    }
    return new TableManifest.FileEntry(name, entry.rows(), bytes, entry.crc32c());
  }
}
