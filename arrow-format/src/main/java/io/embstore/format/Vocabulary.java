package io.embstore.format;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.channels.SeekableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowFileReader;
import org.apache.arrow.vector.ipc.ArrowFileWriter;

/**
 * The tokens of a table: token i names id i. Tokens are unique and non-empty; counts are corpus
 * frequencies (0 when unknown). Held on the heap: the vocabulary of a table with billions of ids is
 * not loaded as a whole.
 */
public final class Vocabulary {
  private final String[] tokens;
  private final long[] counts;
  private final Map<String, Integer> ids;

  private Vocabulary(String[] tokens, long[] counts) {
    this.tokens = tokens;
    this.counts = counts;
    this.ids = new HashMap<>(tokens.length * 2);
    for (int i = 0; i < tokens.length; i++) {
      String t = tokens[i];
      if (t == null || t.isEmpty()) {
        throw new IllegalArgumentException("Cannot build vocabulary: token at id " + i + " is empty");
      }
      Integer previous = ids.putIfAbsent(t, i);
      if (previous != null) {
        throw new IllegalArgumentException(
            "Cannot build vocabulary: duplicate token '" + t + "' at ids " + previous + " and " + i);
      }
    }
  }

  /** A vocabulary of {@code tokens}; {@code counts} may be null (all 0). */
  public static Vocabulary of(List<String> tokens, long[] counts) {
    if (counts != null && counts.length != tokens.size()) {
      throw new IllegalArgumentException(
          "Cannot build vocabulary: " + tokens.size() + " tokens but " + counts.length + " counts");
    }
    return new Vocabulary(
        tokens.toArray(new String[0]), counts == null ? new long[tokens.size()] : counts.clone());
  }

  /** Reads a token file: UTF-8, one token per line, line i (from 0) is id i. */
  public static Vocabulary readTokenFile(Path file) throws IOException {
    List<String> tokens = new ArrayList<>();
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      String line;
      while ((line = in.readLine()) != null) {
        tokens.add(line);
      }
    }
    try {
      return of(tokens, null);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(e.getMessage() + " in " + file, e);
    }
  }

  public int size() {
    return tokens.length;
  }

  public String token(long id) {
    if (id < 0 || id >= tokens.length) {
      throw new IllegalArgumentException("Cannot name id " + id + ": outside [0, " + tokens.length + ")");
    }
    return tokens[(int) id];
  }

  public long count(long id) {
    return counts[(int) id];
  }

  /** The id of {@code token}, or -1. */
  public int id(String token) {
    Integer id = ids.get(token);
    return id == null ? -1 : id;
  }

  /** The id of {@code token}; throws naming the token when it is unknown. */
  public int requireId(String token) {
    int id = id(token);
    if (id < 0) {
      throw new IllegalArgumentException("Unknown token '" + token + "' (not in the vocabulary of " + tokens.length + " tokens)");
    }
    return id;
  }

  public List<String> tokens() {
    return List.of(tokens);
  }

  public long[] counts() {
    return counts.clone();
  }

  /** Writes the vocabulary file {@code name} in {@code dir} (Arrow IPC file format); returns its manifest entry. */
  TableManifest.FileEntry write(TableLocation dir, String name, BufferAllocator parent) throws IOException {
    int batch = 64 * 1024;
    boolean done = false;
    try (BufferAllocator allocator = parent.newChildAllocator("vocab-writer", 0, Long.MAX_VALUE);
        VectorSchemaRoot root = VectorSchemaRoot.create(TableFormat.vocabSchema(), allocator);
        TableLocation.Output ch = dir.create(name)) {
      Checksums.ChecksumChannel out = new Checksums.ChecksumChannel(ch);
      try (ArrowFileWriter writer = new ArrowFileWriter(root, null, out)) {
        writer.start();
        BigIntVector id = (BigIntVector) root.getVector(0);
        VarCharVector token = (VarCharVector) root.getVector(1);
        BigIntVector count = (BigIntVector) root.getVector(2);
        for (int start = 0; start < tokens.length; start += batch) {
          int n = Math.min(batch, tokens.length - start);
          root.allocateNew();
          for (int i = 0; i < n; i++) {
            id.setSafe(i, start + i);
            token.setSafe(i, tokens[start + i].getBytes(StandardCharsets.UTF_8));
            count.setSafe(i, counts[start + i]);
          }
          root.setRowCount(n);
          writer.writeBatch();
        }
        writer.end();
        // Before the writer's close, which closes the channel (and would turn an upload's failure
        // on an object store into a RuntimeException).
        ch.sync();
        ch.close();
      }
      done = true;
      return new TableManifest.FileEntry(name, tokens.length, out.bytes(), out.crc());
    } finally {
      if (!done) {
        dir.deleteIfExists(name);
      }
    }
  }

  /** Reads a vocabulary file, checking its length, checksum, format and ids. */
  static Vocabulary read(TableLocation dir, TableManifest.FileEntry entry, BufferAllocator parent)
      throws IOException {
    ShardReader.checkFile(dir, entry.file(), entry.bytes(), entry.crc32c(), true);
    String file = dir.describe(entry.file());
    String[] tokens = new String[Math.toIntExact(entry.rows())];
    long[] counts = new long[tokens.length];
    int next = 0;
    try (BufferAllocator allocator = parent.newChildAllocator("vocab-reader", 0, Long.MAX_VALUE);
        SeekableByteChannel ch = dir.openSequential(entry.file());
        ArrowFileReader reader = new ArrowFileReader(ch, allocator)) {
      VectorSchemaRoot root = reader.getVectorSchemaRoot();
      Map<String, String> meta = root.getSchema().getCustomMetadata();
      if (meta == null || !TableFormat.VOCAB_FORMAT_NAME.equals(meta.get(TableFormat.META_FORMAT))) {
        throw new TableFormatException("Cannot read " + file + ": not an embstore vocabulary file");
      }
      TableFormat.checkVersion(file, Integer.parseInt(meta.get(TableFormat.META_VERSION)));
      if (!root.getSchema().getFields().equals(TableFormat.vocabSchema().getFields())) {
        throw new TableFormatException("Cannot read " + file + ": schema " + root.getSchema() + ", expected " + TableFormat.vocabSchema());
      }
      long fileSize = ch.size();
      for (org.apache.arrow.vector.ipc.message.ArrowBlock b : reader.getRecordBlocks()) {
        if (b.getOffset() < 0 || b.getMetadataLength() <= 0 || b.getBodyLength() < 0
            || b.getOffset() + b.getMetadataLength() + b.getBodyLength() > fileSize) {
          throw new TableFormatException("Cannot read " + file + ": a record batch lies outside the file of " + fileSize + " bytes");
        }
      }
      while (reader.loadNextBatch()) {
        // Offsets of the token column must lie inside its data: a damaged offset would make
        // VarCharVector.get allocate a huge array.
        org.apache.arrow.vector.util.ValueVectorUtility.validateFull(root);
        BigIntVector id = (BigIntVector) root.getVector(0);
        VarCharVector token = (VarCharVector) root.getVector(1);
        BigIntVector count = (BigIntVector) root.getVector(2);
        for (int i = 0; i < root.getRowCount(); i++) {
          if (next >= tokens.length || id.get(i) != next) {
            throw new TableFormatException(
                "Cannot read " + file + ": row " + next + " has id " + id.get(i) + ", expected " + next + " of " + tokens.length);
          }
          tokens[next] = new String(token.get(i), StandardCharsets.UTF_8);
          counts[next] = count.get(i);
          next++;
        }
      }
    } catch (TableFormatException e) {
      throw e;
    } catch (IOException | RuntimeException e) {
      throw new TableFormatException("Cannot read " + file + ": " + e, e);
    }
    if (next != tokens.length) {
      throw new TableFormatException("Cannot read " + file + ": " + next + " rows, the manifest says " + tokens.length);
    }
    try {
      return new Vocabulary(tokens, counts);
    } catch (IllegalArgumentException e) {
      throw new TableFormatException("Cannot read " + file + ": " + e.getMessage(), e);
    }
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Vocabulary
        && Arrays.equals(tokens, ((Vocabulary) o).tokens)
        && Arrays.equals(counts, ((Vocabulary) o).counts);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(tokens);
  }
}
