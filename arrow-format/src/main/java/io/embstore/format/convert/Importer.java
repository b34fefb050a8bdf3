package io.embstore.format.convert;

import io.embstore.format.Partitioner;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import io.embstore.format.Tokenizer;
import io.embstore.format.ValueType;
import io.embstore.format.Vocabulary;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.BufferAllocator;

/**
 * Imports a matrix file into a new table, streaming: the rows pass through one staging buffer of
 * about 4 MiB into {@link TableWriter#appendInIdOrder}, so peak heap does not grow with V (the
 * vocabulary, when there is one, is held on the heap: one string per token).
 *
 * <p>Everything that can be checked before the first row is checked before the output directory
 * is created (header, shape, dtype, shards, vocabulary file); a problem found later (a truncated
 * file, a ragged row, a NaN) aborts the writer, which deletes every file it wrote and the
 * directory. Either a complete, committed table exists afterwards or nothing does.
 */
public final class Importer {
  private Importer() {}

  /**
   * What to import and where.
   *
   * @param vocab a token file (one per line, line i = id i) for {@code npy} and {@code
   *     safetensors}; null otherwise
   * @param partitioner {@code modulo} or {@code range}
   * @param output the new table: a local directory, or any storage ({@link TableLocation})
   * @param progress receives a line every few seconds, or null
   * @param tensor the tensor of a {@code safetensors} file (null: its only tensor)
   * @param tokenizer a {@link Tokenizer} name whose vocabulary the table gets and records ({@code
   *     npy}, {@code safetensors}; V must be its size), or null
   * @param valueType the table's value type: float32 rows are narrowed to it (round to nearest
   *     even, or quantized row-wise for int8); values beyond float16's range are refused unless {@code
   *     allowNonFinite}, which int8 refuses
   */
  public record Options(
      ImportFormat format,
      Path input,
      Path vocab,
      int shards,
      String partitioner,
      TableLocation output,
      boolean allowNonFinite,
      PrintWriter progress,
      String tensor,
      String tokenizer,
      ValueType valueType) {
    public Options {
      if (valueType == null) {
        valueType = ValueType.FLOAT32;
      }
    }

    /** Options of a float32 table. */
    public Options(
        ImportFormat format, Path input, Path vocab, int shards, String partitioner, TableLocation output, boolean allowNonFinite,
        PrintWriter progress, String tensor, String tokenizer) {
      this(format, input, vocab, shards, partitioner, output, allowNonFinite, progress, tensor, tokenizer, ValueType.FLOAT32);
    }

    /** Options without a tensor name or a tokenizer. */
    public Options(
        ImportFormat format, Path input, Path vocab, int shards, String partitioner, TableLocation output, boolean allowNonFinite,
        PrintWriter progress) {
      this(format, input, vocab, shards, partitioner, output, allowNonFinite, progress, null, null, ValueType.FLOAT32);
    }
  }

  /** Runs the import; returns the committed manifest. */
  public static TableManifest run(Options o, BufferAllocator allocator) throws IOException {
    if (o.shards() < 1) {
      throw new IllegalArgumentException(
          "Cannot import " + o.input() + ": shards=" + o.shards() + " (must be at least 1)");
    }
    Partitioner.of(o.partitioner(), o.shards(), o.shards()); // validates the name early
    if (o.output().exists()) {
      throw new IllegalArgumentException(
          "Cannot import into " + o.output() + ": it already exists (choose a new directory or remove it)");
    }
    boolean matrixOnly = o.format() == ImportFormat.NPY || o.format() == ImportFormat.SAFETENSORS;
    if (o.vocab() != null && !matrixOnly) {
      throw new IllegalArgumentException(
          "Cannot import " + o.input() + ": --vocab applies to npy and safetensors only (" + o.format() + " files carry their tokens)");
    }
    if (o.tokenizer() != null) {
      if (!matrixOnly) {
        throw new IllegalArgumentException(
            "Cannot import " + o.input() + ": --tokenizer applies to npy and safetensors only (" + o.format() + " files carry their tokens)");
      }
      if (o.vocab() != null) {
        throw new IllegalArgumentException("Cannot import " + o.input() + ": --vocab and --tokenizer " + o.tokenizer() + " both name the tokens (give one)");
      }
      Tokenizer.of(o.tokenizer()); // validates the name early
    }
    if (o.tensor() != null && o.format() != ImportFormat.SAFETENSORS) {
      throw new IllegalArgumentException("Cannot import " + o.input() + ": --tensor applies to safetensors only");
    }
    if (o.valueType() == ValueType.INT8 && o.allowNonFinite()) {
      throw new IllegalArgumentException("Cannot import " + o.input() + " with --dtype int8 and --allow-non-finite"
          + " (int8 rows need finite values: a row's scale and bias are undefined with NaN or infinity)");
    }
    ByteInput.isGzip(o.input()); // fails with a clear message when the input is missing
    switch (o.format()) {
      case NPY:
        return importNpy(o, allocator);
      case WORD2VEC:
        return importText(o, true, allocator);
      case GLOVE:
        return importText(o, false, allocator);
      case WORD2VEC_BIN:
        return importBinary(o, allocator);
      case SAFETENSORS:
        return SafetensorsImport.run(o, allocator);
      default:
        throw new IllegalArgumentException("Cannot import from " + o.format());
    }
  }

  static TableWriter create(Options o, long rows, int dim, BufferAllocator allocator)
      throws IOException {
    TableWriter w =
        TableWriter.create(
            o.output(),
            TableManifest.builder().rows(rows).dim(dim).partitioner(o.partitioner()).valueType(o.valueType()),
            o.shards(),
            allocator);
    w.createdBy("embstore import --from " + o.format().cliName());
    w.property("import.source", o.input().getFileName().toString());
    if (o.tokenizer() != null) {
      w.property(Tokenizer.PROPERTY, o.tokenizer());
    }
    return w;
  }

  // ------------------------------------------------------------------ npy

  private static TableManifest importNpy(Options o, BufferAllocator allocator) throws IOException {
    String file = o.input().toString();
    try (ByteInput in = ByteInput.open(o.input())) {
      Npy h = Npy.read(in, file);
      long expected = h.headerBytes + h.dataBytes();
      if (!in.compressed()) {
        long size = Files.size(o.input());
        if (size < expected) {
          throw truncated(file, h, size - h.headerBytes);
        }
        if (size > expected) {
          throw new InputFormatException(
              "Cannot import " + file + ": " + (size - expected) + " bytes after the data of shape " + shape(h) + " (expected a file of " + expected + " bytes)");
        }
      }
      Vocabulary vocab = tokens(o, h.rows);
      try (TableWriter w = create(o, h.rows, h.cols, allocator)) {
        w.vocabulary(vocab);
        RowSink sink = new RowSink(w, file, o.allowNonFinite(), vocab == null ? null : vocab::token, o.progress());
        int rowBytes = h.cols * 4;
        long left = h.rows;
        while (left > 0) {
          int k = (int) Math.min(sink.roomRows(), left);
          int got = read(in, file, sink.buffer(), k * rowBytes);
          if (got < k * rowBytes) {
            throw truncated(file, h, in.position() - h.headerBytes);
          }
          sink.added(k);
          left -= k;
        }
        sink.flush();
        if (in.compressed() && in.read() >= 0) {
          throw new InputFormatException(
              "Cannot import " + file + ": data continues after the " + h.dataBytes() + " bytes of shape " + shape(h));
        }
        return w.commit();
      }
    }
  }

  private static int read(ByteInput in, String file, ByteBuffer dst, int len) throws IOException {
    return in.readInto(dst, len);
  }

  private static InputFormatException truncated(String file, Npy h, long have) {
    return new InputFormatException(
        "Cannot import "
            + file
            + ": truncated: shape "
            + shape(h)
            + " needs "
            + h.dataBytes()
            + " data bytes, the file has "
            + Math.max(0, have));
  }

  private static String shape(Npy h) {
    return "(" + h.rows + ", " + h.cols + ")";
  }

  /**
   * The vocabulary of a matrix file without tokens: from {@code --vocab}, from {@code --tokenizer}
   * (whose size must be {@code rows}), or null.
   */
  static Vocabulary tokens(Options o, long rows) throws IOException {
    if (o.tokenizer() != null) {
      Tokenizer t = Tokenizer.of(o.tokenizer());
      if (t.vocabularySize() != rows) {
        throw new InputFormatException(
            "Cannot import " + o.input() + ": the matrix has " + rows + " rows, --tokenizer " + t.name() + " has " + t.vocabularySize() + " token ids (V must be " + t.vocabularySize() + ")");
      }
      return t.vocabulary();
    }
    return o.vocab() == null ? null : readVocab(o.vocab(), rows);
  }

  private static Vocabulary readVocab(Path file, long rows) throws IOException {
    Vocabulary v;
    try {
      v = Vocabulary.readTokenFile(file);
    } catch (IllegalArgumentException e) {
      throw new InputFormatException("Cannot import vocabulary " + file + ": " + e.getMessage(), e);
    }
    if (v.size() != rows) {
      throw new InputFormatException(
          "Cannot import vocabulary " + file + ": " + v.size() + " lines, the matrix has " + rows + " rows (one token per line, line i = id i)");
    }
    return v;
  }

  // ------------------------------------------------------------------ text

  private static BufferedReader reader(Path file) throws IOException {
    return new BufferedReader(new InputStreamReader(ByteInput.openStream(file), StandardCharsets.UTF_8), 1 << 16);
  }

  /** Collects tokens in id order, rejecting duplicates with both line numbers. */
  private static final class Tokens {
    final List<String> list = new ArrayList<>();
    final Map<String, Long> lines = new HashMap<>();

    /** {@code unit} is "line" (text) or "row" (binary), for the message. */
    void add(String token, String unit, long at, String file) throws InputFormatException {
      Long previous = lines.putIfAbsent(token, at);
      if (previous != null) {
        throw new InputFormatException(
            "Cannot import " + file + ": " + unit + " " + at + ": duplicate token '" + token + "' (first at " + unit + " " + previous + ")");
      }
      list.add(token);
    }

    String at(long id) {
      return id < list.size() ? list.get((int) id) : null;
    }
  }

  private static TableManifest importText(Options o, boolean header, BufferAllocator allocator) throws IOException {
    String file = o.input().toString();
    long rows;
    int dim;
    long lineNo = 0;
    if (header) {
      try (BufferedReader r = reader(o.input())) {
        String first = r.readLine();
        long[] vc = parseHeader(first, file);
        rows = vc[0];
        dim = (int) vc[1];
      }
    } else {
      // GloVe has no header: the first pass counts rows and takes C from the first line.
      long count = 0;
      int c = -1;
      try (BufferedReader r = reader(o.input())) {
        String line;
        while ((line = r.readLine()) != null) {
          if (line.isBlank()) {
            continue;
          }
          if (c < 0) {
            c = countFields(line) - 1;
          }
          count++;
        }
      }
      if (count == 0) {
        throw new InputFormatException("Cannot import " + file + ": no rows (empty GloVe file)");
      }
      if (c < 1) {
        throw new InputFormatException("Cannot import " + file + ": line 1 has no values (expected 'token v1 ... vC')");
      }
      rows = count;
      dim = c;
    }
    checkDim(file, dim);
    Tokens tokens = new Tokens();
    try (BufferedReader r = reader(o.input());
        TableWriter w = create(o, rows, dim, allocator)) {
      if (header) {
        r.readLine();
        lineNo = 1;
      }
      RowSink sink = new RowSink(w, file, o.allowNonFinite(), tokens::at, o.progress());
      long row = 0;
      String line;
      while ((line = r.readLine()) != null) {
        lineNo++;
        if (line.isBlank()) {
          if (row < rows) {
            throw new InputFormatException("Cannot import " + file + ": line " + lineNo + " is empty (expected 'token v1 ... v" + dim + "')");
          }
          continue;
        }
        if (row == rows) {
          throw new InputFormatException(
              "Cannot import " + file + ": line " + lineNo + ": more rows than the header's " + rows);
        }
        parseLine(line, lineNo, dim, file, tokens, sink.buffer());
        sink.added(1);
        row++;
      }
      if (row < rows) {
        throw new InputFormatException(
            "Cannot import " + file + ": the header says " + rows + " rows, the file has " + row);
      }
      sink.flush();
      w.vocabulary(Vocabulary.of(tokens.list, null));
      return w.commit();
    }
  }

  private static long[] parseHeader(String first, String file) throws InputFormatException {
    String[] parts = first == null ? new String[0] : first.trim().split("\\s+");
    long rows;
    long dim;
    try {
      if (parts.length != 2) {
        throw new NumberFormatException();
      }
      rows = Long.parseLong(parts[0]);
      dim = Long.parseLong(parts[1]);
    } catch (NumberFormatException e) {
      throw new InputFormatException(
          "Cannot import " + file + ": line 1 is '" + (first == null ? "" : abbreviate(first)) + "', expected the word2vec header 'ROWS DIM'");
    }
    if (rows < 1) {
      throw new InputFormatException("Cannot import " + file + ": the header says " + rows + " rows (at least 1)");
    }
    checkDim(file, dim);
    return new long[] {rows, dim};
  }

  private static void checkDim(String file, long dim) throws InputFormatException {
    if (dim < 1 || dim > io.embstore.format.TableFormat.MAX_DIM) {
      throw new InputFormatException(
          "Cannot import " + file + ": dimension " + dim + " (must be in [1, " + io.embstore.format.TableFormat.MAX_DIM + "])");
    }
  }

  private static String abbreviate(String s) {
    return s.length() > 60 ? s.substring(0, 60) + "..." : s;
  }

  private static boolean isSpace(char c) {
    return c == ' ' || c == '\t' || c == '\r';
  }

  static int countFields(String line) {
    int n = 0;
    int i = 0;
    int len = line.length();
    while (i < len) {
      while (i < len && isSpace(line.charAt(i))) {
        i++;
      }
      if (i < len) {
        n++;
      }
      while (i < len && !isSpace(line.charAt(i))) {
        i++;
      }
    }
    return n;
  }

  /** Parses {@code token v1 ... vC} into the token list and {@code out} (C float32). */
  private static void parseLine(String line, long lineNo, int dim, String file, Tokens tokens, ByteBuffer out)
      throws InputFormatException {
    int fields = countFields(line);
    if (fields - 1 != dim) {
      throw new InputFormatException(
          "Cannot import " + file + ": line " + lineNo + " has " + (fields - 1) + " values, expected " + dim + " (ragged rows)");
    }
    int len = line.length();
    int i = 0;
    while (isSpace(line.charAt(i))) {
      i++;
    }
    int start = i;
    while (!isSpace(line.charAt(i))) {
      i++;
    }
    tokens.add(line.substring(start, i), "line", lineNo, file);
    for (int c = 0; c < dim; c++) {
      while (isSpace(line.charAt(i))) {
        i++;
      }
      start = i;
      while (i < len && !isSpace(line.charAt(i))) {
        i++;
      }
      out.putFloat(parseFloat(line, start, i, lineNo, c, file));
    }
  }

  private static float parseFloat(String line, int start, int end, long lineNo, int column, String file)
      throws InputFormatException {
    String s = line.substring(start, end);
    try {
      return Float.parseFloat(s);
    } catch (NumberFormatException e) {
      // Python and C print non-finite values as nan / inf / -inf.
      switch (s.toLowerCase(java.util.Locale.ROOT)) {
        case "nan":
        case "-nan":
          return Float.NaN;
        case "inf":
        case "+inf":
        case "infinity":
          return Float.POSITIVE_INFINITY;
        case "-inf":
        case "-infinity":
          return Float.NEGATIVE_INFINITY;
        default:
          throw new InputFormatException(
              "Cannot import " + file + ": line " + lineNo + ", column " + column + ": '" + abbreviate(s) + "' is not a number", e);
      }
    }
  }

  // ------------------------------------------------------------------ word2vec binary

  private static TableManifest importBinary(Options o, BufferAllocator allocator) throws IOException {
    String file = o.input().toString();
    try (ByteInput in = ByteInput.open(o.input())) {
      StringBuilder first = new StringBuilder();
      int b;
      while ((b = in.read()) >= 0 && b != '\n') {
        if (first.length() > 100) {
          break;
        }
        first.append((char) b);
      }
      long[] vc = parseHeader(first.toString(), file);
      long rows = vc[0];
      int dim = (int) vc[1];
      int rowBytes = dim * 4;
      Tokens tokens = new Tokens();
      byte[] token = new byte[256];
      try (TableWriter w = create(o, rows, dim, allocator)) {
        RowSink sink = new RowSink(w, file, o.allowNonFinite(), tokens::at, o.progress());
        for (long row = 0; row < rows; row++) {
          b = in.read();
          while (b == '\n' || b == '\r') {
            b = in.read();
          }
          int n = 0;
          while (b >= 0 && b != ' ') {
            if (n == token.length) {
              if (n >= 1 << 20) {
                throw new InputFormatException("Cannot import " + file + ": row " + row + " has a token longer than 1 MiB (corrupt file)");
              }
              token = java.util.Arrays.copyOf(token, n * 2);
            }
            token[n++] = (byte) b;
            b = in.read();
          }
          if (b < 0) {
            throw new InputFormatException(
                "Cannot import " + file + ": the header says " + rows + " rows, the file has " + row + (n > 0 ? " and a truncated token" : ""));
          }
          String t = new String(token, 0, n, StandardCharsets.UTF_8);
          if (t.isEmpty()) {
            throw new InputFormatException("Cannot import " + file + ": row " + row + " has an empty token");
          }
          tokens.add(t, "row", row, file);
          int got = read(in, file, sink.buffer(), rowBytes);
          if (got < rowBytes) {
            throw new InputFormatException(
                "Cannot import " + file + ": truncated: row " + row + " ('" + t + "') has " + got + " of " + rowBytes + " vector bytes");
          }
          sink.added(1);
        }
        sink.flush();
        while ((b = in.read()) == '\n' || b == '\r') {
          // The original word2vec tool ends every row with a newline.
        }
        if (b >= 0) {
          throw new InputFormatException(
              "Cannot import " + file + ": data continues after the header's " + rows + " rows (wrong row count in the header?)");
        }
        w.vocabulary(Vocabulary.of(tokens.list, null));
        return w.commit();
      }
    }
  }
}
