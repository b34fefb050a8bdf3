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
 * not loaded as a whole, but written in pieces ({@link #pieceWriter}) and read a file at a time
 * ({@link Table#forEachVocabularyToken}).
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

  /** Writes the vocabulary as one file (Arrow IPC file format); returns its manifest entry. */
  TableManifest.FileEntry write(TableLocation dir, String name, BufferAllocator parent) throws IOException {
    try (TokenWriter w = new TokenWriter(dir, name, 0, parent)) {
      for (int i = 0; i < tokens.length; i++) {
        w.add(tokens[i], counts[i]);
      }
      return w.finish();
    }
  }

  /**
   * Starts piece {@code piece} of a vocabulary written in pieces for table version {@code
   * tableVersion} of the table in {@code dir}: the file {@link TableFormat#vocabPieceFileName}, with
   * the tokens of ids {@code firstId, firstId + 1, ...} in order. Pieces are written in parallel
   * (each by its own writer, e.g. one per Spark task) and committed by a manifest that lists them in
   * id order ({@link TableWriter#vocabularyFiles}). A file of the same name left by a writer of that
   * version that never committed is deleted first.
   */
  public static TokenWriter pieceWriter(Path dir, int piece, long tableVersion, long firstId, BufferAllocator parent)
      throws IOException {
    return pieceWriter(TableLocation.of(dir), piece, tableVersion, firstId, parent);
  }

  /** {@link #pieceWriter(Path, int, long, long, BufferAllocator)} on any storage. */
  public static TokenWriter pieceWriter(TableLocation dir, int piece, long tableVersion, long firstId, BufferAllocator parent)
      throws IOException {
    if (piece < 0 || piece > 99_999) {
      throw new IllegalArgumentException("Cannot write vocabulary piece " + piece + ": must be in 0..99999");
    }
    String name = TableFormat.vocabPieceFileName(piece, tableVersion);
    TableWriter.removeUncommitted(dir, name, tableVersion);
    return new TokenWriter(dir, name, firstId, parent);
  }

  /**
   * Writes one vocabulary file, streaming: tokens are added in id order and go out in record
   * batches of at most {@value TableFormat#MAX_BATCH_ROWS} rows, so memory is one batch whatever the
   * number of tokens. Closing a writer that did not {@link #finish} deletes its file.
   */
  public static final class TokenWriter implements AutoCloseable {
    private final TableLocation dir;
    private final String name;
    private final long firstId;
    private final BufferAllocator allocator;
    private final VectorSchemaRoot root;
    private final TableLocation.Output channel;
    private final Checksums.ChecksumChannel out;
    private final ArrowFileWriter writer;
    private final BigIntVector id;
    private final VarCharVector token;
    private final BigIntVector count;
    private long rows;
    private int inBatch;
    private boolean finished;

    TokenWriter(TableLocation dir, String name, long firstId, BufferAllocator parent) throws IOException {
      this.dir = dir;
      this.name = name;
      this.firstId = firstId;
      BufferAllocator a = parent.newChildAllocator("vocab-writer", 0, Long.MAX_VALUE);
      VectorSchemaRoot r = null;
      TableLocation.Output ch = null;
      try {
        r = VectorSchemaRoot.create(TableFormat.vocabSchema(), a);
        ch = dir.create(name);
        this.out = new Checksums.ChecksumChannel(ch);
        this.writer = new ArrowFileWriter(r, null, out);
        writer.start();
      } catch (IOException | RuntimeException e) {
        if (r != null) {
          r.close();
        }
        if (ch != null) {
          ch.close();
          dir.deleteIfExists(name);
        }
        a.close();
        throw e;
      }
      this.allocator = a;
      this.root = r;
      this.channel = ch;
      this.id = (BigIntVector) root.getVector(0);
      this.token = (VarCharVector) root.getVector(1);
      this.count = (BigIntVector) root.getVector(2);
      root.allocateNew();
    }

    /** The file's name in its table directory. */
    public String file() {
      return name;
    }

    /** Adds the token of the next id; tokens must be non-empty (uniqueness is the caller's). */
    public void add(String t, long c) throws IOException {
      if (t == null || t.isEmpty()) {
        throw new IllegalArgumentException("Cannot write vocabulary " + name + ": token at id " + (firstId + rows) + " is empty");
      }
      id.setSafe(inBatch, firstId + rows);
      token.setSafe(inBatch, t.getBytes(StandardCharsets.UTF_8));
      count.setSafe(inBatch, c);
      inBatch++;
      rows++;
      if (inBatch == TableFormat.MAX_BATCH_ROWS) {
        flush();
      }
    }

    /** Tokens added so far. */
    public long rows() {
      return rows;
    }

    private void flush() throws IOException {
      if (inBatch > 0) {
        root.setRowCount(inBatch);
        writer.writeBatch();
        root.allocateNew();
        inBatch = 0;
      }
    }

    /** Writes the last batch and the footer, forces the file to disk; returns its manifest entry. */
    public TableManifest.FileEntry finish() throws IOException {
      if (rows == 0) {
        throw new IllegalStateException("Cannot finish vocabulary file " + dir.describe(name) + ": no tokens (a vocabulary file holds at least one)");
      }
      flush();
      writer.end();
      // Before the writer's close, which closes the channel (and would turn an upload's failure on
      // an object store into a RuntimeException).
      channel.sync();
      channel.close();
      finished = true;
      return new TableManifest.FileEntry(name, rows, out.bytes(), out.crc());
    }

    @Override
    public void close() throws IOException {
      try {
        writer.close();
      } catch (RuntimeException e) {
        // after a failed write Arrow's writer can fail again on close; the file goes below
        if (finished) {
          throw e;
        }
      } finally {
        root.close();
        channel.close();
        allocator.close();
        if (!finished) {
          dir.deleteIfExists(name);
        }
      }
    }
  }

  /** Receives the rows of a vocabulary file in id order. */
  @FunctionalInterface
  public interface TokenConsumer {
    void accept(long id, String token, long count) throws IOException;
  }

  /**
   * Reads vocabulary file {@code file} (ids from {@code firstId}), checking its length, checksum,
   * format, schema, ids and non-empty tokens, one record batch at a time.
   */
  static void readFile(TableLocation dir, TableManifest.FileEntry entry, long firstId, BufferAllocator parent,
      TokenConsumer consumer) throws IOException {
    try (TokenReader r = new TokenReader(dir, entry, firstId, parent)) {
      while (r.next()) {
        consumer.accept(r.id(), r.token(), r.count());
      }
    }
  }

  /**
   * Reads one vocabulary file row by row with one record batch in memory ({@link
   * Table#vocabularyReader}): {@link #next} advances, then {@link #id}, {@link #token} and {@link
   * #count} describe the row. Checks as {@link Table#verify} does, and fails with {@link
   * TableFormatException} naming the file.
   */
  public static final class TokenReader implements AutoCloseable {
    /** The file, for messages. */
    private final String file;
    private final long firstId;
    private final long expected;
    private final BufferAllocator allocator;
    private final SeekableByteChannel channel;
    private final ArrowFileReader reader;
    private VectorSchemaRoot root;
    private int row;
    private int rows;
    private long next;
    private String token;
    private long count;

    TokenReader(TableLocation dir, TableManifest.FileEntry entry, long firstId, BufferAllocator parent) throws IOException {
      ShardReader.checkFile(dir, entry.file(), entry.bytes(), entry.crc32c(), true);
      this.file = dir.describe(entry.file());
      this.firstId = firstId;
      this.expected = entry.rows();
      BufferAllocator a = parent.newChildAllocator("vocab-reader", 0, Long.MAX_VALUE);
      SeekableByteChannel ch = null;
      ArrowFileReader r = null;
      try {
        ch = dir.openSequential(entry.file());
        r = new ArrowFileReader(ch, a);
        VectorSchemaRoot vsr = r.getVectorSchemaRoot();
        Map<String, String> meta = vsr.getSchema().getCustomMetadata();
        if (meta == null || !TableFormat.VOCAB_FORMAT_NAME.equals(meta.get(TableFormat.META_FORMAT))) {
          throw new TableFormatException("Cannot read " + file + ": not an embstore vocabulary file");
        }
        TableFormat.checkVersion(file, Integer.parseInt(meta.get(TableFormat.META_VERSION)));
        if (!vsr.getSchema().getFields().equals(TableFormat.vocabSchema().getFields())) {
          throw new TableFormatException("Cannot read " + file + ": schema " + vsr.getSchema() + ", expected " + TableFormat.vocabSchema());
        }
        long fileSize = ch.size();
        for (org.apache.arrow.vector.ipc.message.ArrowBlock b : r.getRecordBlocks()) {
          if (b.getOffset() < 0 || b.getMetadataLength() <= 0 || b.getBodyLength() < 0
              || b.getOffset() + b.getMetadataLength() + b.getBodyLength() > fileSize) {
            throw new TableFormatException("Cannot read " + file + ": a record batch lies outside the file of " + fileSize + " bytes");
          }
        }
        this.root = vsr;
      } catch (IOException | RuntimeException e) {
        try {
          if (r != null) {
            r.close();
          } else if (ch != null) {
            ch.close();
          }
        } finally {
          a.close();
        }
        throw e instanceof TableFormatException t ? t : new TableFormatException("Cannot read " + file + ": " + e, e);
      }
      this.allocator = a;
      this.channel = ch;
      this.reader = r;
    }

    /** Moves to the next row; false at the end of the file (after checking the row count). */
    public boolean next() throws IOException {
      try {
        while (row == rows) {
          if (!reader.loadNextBatch()) {
            if (next != expected) {
              throw new TableFormatException("Cannot read " + file + ": " + next + " rows, the manifest says " + expected);
            }
            return false;
          }
          // Offsets of the token column must lie inside its data: a damaged offset would make
          // VarCharVector.get allocate a huge array.
          org.apache.arrow.vector.util.ValueVectorUtility.validateFull(root);
          row = 0;
          rows = root.getRowCount();
        }
        BigIntVector id = (BigIntVector) root.getVector(0);
        if (next >= expected || id.get(row) != firstId + next) {
          throw new TableFormatException("Cannot read " + file + ": row " + next + " has id " + id.get(row) + ", expected "
              + (firstId + next) + " (ids " + firstId + ".." + (firstId + expected - 1) + ")");
        }
        byte[] bytes = ((VarCharVector) root.getVector(1)).get(row);
        if (bytes.length == 0) {
          throw new TableFormatException("Cannot read " + file + ": token at id " + (firstId + next) + " is empty");
        }
        token = new String(bytes, StandardCharsets.UTF_8);
        count = ((BigIntVector) root.getVector(2)).get(row);
        row++;
        next++;
        return true;
      } catch (TableFormatException e) {
        throw e;
      } catch (IOException | RuntimeException e) {
        throw new TableFormatException("Cannot read " + file + ": " + e, e);
      }
    }

    public long id() {
      return firstId + next - 1;
    }

    public String token() {
      return token;
    }

    public long count() {
      return count;
    }

    @Override
    public void close() throws IOException {
      try {
        reader.close();
      } finally {
        channel.close();
        allocator.close();
      }
    }
  }

  /** Reads every file of the vocabulary of {@code m} in {@code dir} into one vocabulary (on the heap). */
  static Vocabulary read(TableLocation dir, TableManifest m, BufferAllocator parent) throws IOException {
    String[] tokens = new String[Math.toIntExact(m.rows())];
    long[] counts = new long[tokens.length];
    List<TableManifest.FileEntry> files = m.vocabularyFiles();
    for (int f = 0; f < files.size(); f++) {
      readFile(dir, files.get(f), m.vocabularyFirstId(f), parent, (id, t, c) -> {
        tokens[(int) id] = t;
        counts[(int) id] = c;
      });
    }
    try {
      return new Vocabulary(tokens, counts);
    } catch (IllegalArgumentException e) {
      throw new TableFormatException("Cannot read the vocabulary of " + dir + " (" + files.size() + " files): " + e.getMessage(), e);
    }
  }

  /**
   * Reads every file of the vocabulary of {@code m} in {@code dir} without holding its tokens: each
   * file's checks as {@link #readFile}, and tokens unique across all files, found with one 64-bit
   * hash per token (8 bytes per token on the heap; tokens whose hashes collide are compared
   * exactly in a second pass). Returns one report line per file.
   */
  static List<String> verify(TableLocation dir, TableManifest m, BufferAllocator parent) throws IOException {
    List<TableManifest.FileEntry> files = m.vocabularyFiles();
    List<String> report = new ArrayList<>();
    boolean unique = m.rows() <= Integer.MAX_VALUE - 8;
    long[] hashes = unique ? new long[(int) m.rows()] : null;
    for (int f = 0; f < files.size(); f++) {
      TableManifest.FileEntry e = files.get(f);
      long first = m.vocabularyFirstId(f);
      readFile(dir, e, first, parent, (id, t, c) -> {
        if (hashes != null) {
          hashes[(int) id] = hash(t);
        }
      });
      report.add(e.file() + ": ok (" + e.rows() + " tokens" + (files.size() == 1 ? "" : ", ids " + first + ".." + (first + e.rows() - 1)) + ")");
    }
    if (hashes == null) {
      report.add("vocabulary: " + m.rows() + " tokens, too many to check for duplicates here");
      return report;
    }
    Arrays.sort(hashes);
    java.util.Set<Long> repeated = new java.util.HashSet<>();
    for (int i = 1; i < hashes.length; i++) {
      if (hashes[i] == hashes[i - 1]) {
        repeated.add(hashes[i]);
      }
    }
    if (!repeated.isEmpty()) {
      Map<String, Long> seen = new HashMap<>();
      for (int f = 0; f < files.size(); f++) {
        TableManifest.FileEntry e = files.get(f);
        String file = dir.describe(e.file());
        readFile(dir, e, m.vocabularyFirstId(f), parent, (id, t, c) -> {
          if (repeated.contains(hash(t))) {
            Long previous = seen.putIfAbsent(t, id);
            if (previous != null) {
              throw new TableFormatException("Cannot read " + file + ": duplicate token '" + t + "' at ids " + previous + " and " + id);
            }
          }
        });
      }
    }
    return report;
  }

  /** FNV-1a over the UTF-16 units, then SplitMix64's finaliser. */
  private static long hash(String t) {
    long h = 0xcbf29ce484222325L;
    for (int i = 0; i < t.length(); i++) {
      h = (h ^ t.charAt(i)) * 0x100000001b3L;
    }
    h = (h ^ (h >>> 30)) * 0xBF58476D1CE4E5B9L;
    h = (h ^ (h >>> 27)) * 0x94D049BB133111EBL;
    return h ^ (h >>> 31);
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
