package io.embstore.format.convert;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The NumPy {@code .npy} header, versions 1.0, 2.0 and 3.0: magic {@code \x93NUMPY}, major and
 * minor version, header length (uint16 little-endian for 1.0, uint32 for 2.0 and 3.0), then a
 * Python dict literal with {@code descr}, {@code fortran_order} and {@code shape}, padded with
 * spaces and ended by a newline so that the data starts at a multiple of 64 bytes.
 *
 * <p>Only what embstore stores is accepted: a 2-D, C-order, little-endian float32 array ({@code
 * '<f4'}). {@link #write} produces exactly the bytes NumPy 1.24+ writes for such an array (keys
 * sorted, the spare space for growing the first axis), so an import followed by an export gives
 * back the file NumPy wrote.
 */
final class Npy {
  static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
  static final String FLOAT32_LE = "<f4";
  static final String FLOAT16_LE = "<f2";
  /** NumPy aligns the start of the data to this many bytes. */
  static final int ALIGN = 64;
  /** NumPy leaves room for the first axis to grow to this many digits. */
  private static final int GROWTH_AXIS_MAX_DIGITS = 21;
  /** Longest header accepted (NumPy refuses headers above 10,000 bytes by default). */
  static final int MAX_HEADER_BYTES = 1 << 20;

  final long rows;
  final int cols;
  /** Bytes before the data: magic, version, length and dict. */
  final int headerBytes;

  private Npy(long rows, int cols, int headerBytes) {
    this.rows = rows;
    this.cols = cols;
    this.headerBytes = headerBytes;
  }

  long dataBytes() {
    return rows * cols * 4L;
  }

  /**
   * Reads and validates the header from {@code in}, which is left at the first data byte.
   *
   * @param file names the input in error messages
   */
  static Npy read(ByteInput in, String file) throws IOException {
    byte[] prefix = new byte[8];
    int got = in.readUpTo(prefix, 0, 8);
    if (got < 8 || !startsWithMagic(prefix)) {
      throw new InputFormatException(
          "Cannot import " + file + ": not a NumPy .npy file (no \\x93NUMPY magic at the start)");
    }
    int major = prefix[6] & 0xff;
    int minor = prefix[7] & 0xff;
    if (major < 1 || major > 3 || minor != 0) {
      throw new InputFormatException(
          "Cannot import " + file + ": .npy format version " + major + "." + minor + " (supported: 1.0, 2.0, 3.0)");
    }
    int lenBytes = major == 1 ? 2 : 4;
    byte[] lenField = new byte[lenBytes];
    if (in.readUpTo(lenField, 0, lenBytes) < lenBytes) {
      throw new InputFormatException("Cannot import " + file + ": .npy header is truncated (file ends in the length field)");
    }
    ByteBuffer lb = ByteBuffer.wrap(lenField).order(ByteOrder.LITTLE_ENDIAN);
    long len = lenBytes == 2 ? lb.getShort() & 0xffff : lb.getInt() & 0xffffffffL;
    if (len > MAX_HEADER_BYTES) {
      throw new InputFormatException(
          "Cannot import " + file + ": .npy header length " + len + " bytes (at most " + MAX_HEADER_BYTES + "; corrupt header)");
    }
    byte[] dict = new byte[(int) len];
    int dictGot = in.readUpTo(dict, 0, dict.length);
    if (dictGot < dict.length) {
      throw new InputFormatException(
          "Cannot import " + file + ": .npy header is truncated (" + dictGot + " of " + len + " header bytes)");
    }
    String text = new String(dict, major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
    Map<String, Object> d;
    try {
      d = new DictParser(text).parse();
    } catch (IllegalArgumentException e) {
      throw new InputFormatException(
          "Cannot import " + file + ": corrupt .npy header (" + e.getMessage() + "): " + abbreviate(text), e);
    }
    for (String key : new String[] {"descr", "fortran_order", "shape"}) {
      if (!d.containsKey(key)) {
        throw new InputFormatException("Cannot import " + file + ": corrupt .npy header (no '" + key + "'): " + abbreviate(text));
      }
    }
    Object descr = d.get("descr");
    if (!FLOAT32_LE.equals(descr)) {
      throw new InputFormatException(
          "Cannot import " + file + ": dtype " + describe(descr) + " (embstore stores little-endian float32 '<f4'; convert with a.astype('<f4'))");
    }
    if (!Boolean.FALSE.equals(d.get("fortran_order"))) {
      throw new InputFormatException(
          "Cannot import " + file + ": fortran_order is " + d.get("fortran_order") + " (rows must be contiguous: save np.ascontiguousarray(a))");
    }
    if (!(d.get("shape") instanceof long[])) {
      throw new InputFormatException("Cannot import " + file + ": corrupt .npy header (shape is not a tuple): " + abbreviate(text));
    }
    long[] shape = (long[]) d.get("shape");
    if (shape.length != 2) {
      throw new InputFormatException(
          "Cannot import " + file + ": shape " + shapeText(shape) + " has rank " + shape.length + " (expected a 2-D matrix (V, C))");
    }
    if (shape[0] < 1) {
      throw new InputFormatException("Cannot import " + file + ": shape " + shapeText(shape) + " has " + shape[0] + " rows (at least 1)");
    }
    if (shape[1] < 1 || shape[1] > io.embstore.format.TableFormat.MAX_DIM) {
      throw new InputFormatException(
          "Cannot import " + file + ": shape " + shapeText(shape) + " has dimension " + shape[1] + " (must be in [1, " + io.embstore.format.TableFormat.MAX_DIM + "])");
    }
    return new Npy(shape[0], (int) shape[1], 8 + lenBytes + (int) len);
  }

  private static boolean startsWithMagic(byte[] b) {
    for (int i = 0; i < MAGIC.length; i++) {
      if (b[i] != MAGIC[i]) {
        return false;
      }
    }
    return true;
  }

  private static String describe(Object v) {
    return v instanceof String ? "'" + v + "'" : String.valueOf(v);
  }

  private static String abbreviate(String s) {
    String t = s.strip();
    return t.length() > 120 ? t.substring(0, 120) + "..." : t;
  }

  static String shapeText(long[] shape) {
    StringBuilder sb = new StringBuilder("(");
    for (int i = 0; i < shape.length; i++) {
      sb.append(i > 0 ? ", " : "").append(shape[i]);
    }
    return sb.append(shape.length == 1 ? ",)" : ")").toString();
  }

  /** The header NumPy writes for a C-order {@code '<f4'} array of {@code rows x cols}. */
  static byte[] write(long rows, int cols) {
    return write(FLOAT32_LE, rows, cols);
  }

  /** The header NumPy writes for a C-order array of dtype {@code descr} ({@code '<f4'}, {@code '<f2'}) of {@code rows x cols}. */
  static byte[] write(String descr, long rows, int cols) {
    String dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + rows + ", " + cols + "), }";
    dict += " ".repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - Long.toString(rows).length()));
    byte[] body = dict.getBytes(StandardCharsets.ISO_8859_1);
    int major = 1;
    int lenBytes = 2;
    int hlen = body.length + 1;
    int padlen = ALIGN - ((MAGIC.length + 2 + lenBytes + hlen) % ALIGN);
    if (hlen + padlen > 0xffff) {
      major = 2;
      lenBytes = 4;
      padlen = ALIGN - ((MAGIC.length + 2 + lenBytes + hlen) % ALIGN);
    }
    ByteBuffer out = ByteBuffer.allocate(MAGIC.length + 2 + lenBytes + hlen + padlen).order(ByteOrder.LITTLE_ENDIAN);
    out.put(MAGIC).put((byte) major).put((byte) 0);
    if (lenBytes == 2) {
      out.putShort((short) (hlen + padlen));
    } else {
      out.putInt(hlen + padlen);
    }
    out.put(body);
    for (int i = 0; i < padlen; i++) {
      out.put((byte) ' ');
    }
    out.put((byte) '\n');
    return out.array();
  }

  /**
   * Parses the Python literal of an .npy header: a dict of string keys to strings, {@code
   * True}/{@code False} and tuples of integers (returned as {@code long[]}).
   */
  static final class DictParser {
    private final String s;
    private int i;

    DictParser(String s) {
      this.s = s;
    }

    Map<String, Object> parse() {
      Map<String, Object> out = new LinkedHashMap<>();
      skip();
      expect('{');
      skip();
      while (peek() != '}') {
        String key = string();
        skip();
        expect(':');
        skip();
        out.put(key, value());
        skip();
        if (peek() == ',') {
          i++;
          skip();
        } else if (peek() != '}') {
          throw new IllegalArgumentException("expected ',' or '}' at offset " + i);
        }
      }
      i++;
      skip();
      if (i != s.length()) {
        throw new IllegalArgumentException("unexpected '" + s.charAt(i) + "' after the dict at offset " + i);
      }
      return out;
    }

    private Object value() {
      char c = peek();
      if (c == '\'' || c == '"') {
        return string();
      }
      if (c == '(') {
        return tuple();
      }
      if (s.startsWith("True", i)) {
        i += 4;
        return Boolean.TRUE;
      }
      if (s.startsWith("False", i)) {
        i += 5;
        return Boolean.FALSE;
      }
      throw new IllegalArgumentException("unexpected '" + c + "' at offset " + i);
    }

    private long[] tuple() {
      expect('(');
      long[] values = new long[0];
      skip();
      while (peek() != ')') {
        int start = i;
        while (i < s.length() && Character.isDigit(s.charAt(i))) {
          i++;
        }
        if (start == i) {
          throw new IllegalArgumentException("expected a number in the shape at offset " + i);
        }
        values = java.util.Arrays.copyOf(values, values.length + 1);
        try {
          values[values.length - 1] = Long.parseLong(s.substring(start, i));
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("shape value " + s.substring(start, i) + " is too large", e);
        }
        if (i < s.length() && s.charAt(i) == 'L') {
          i++; // Python 2 long suffix
        }
        skip();
        if (peek() == ',') {
          i++;
          skip();
        } else if (peek() != ')') {
          throw new IllegalArgumentException("expected ',' or ')' in the shape at offset " + i);
        }
      }
      i++;
      return values;
    }

    private String string() {
      char q = peek();
      if (q != '\'' && q != '"') {
        throw new IllegalArgumentException("expected a quoted key at offset " + i);
      }
      int end = s.indexOf(q, i + 1);
      if (end < 0) {
        throw new IllegalArgumentException("unterminated string at offset " + i);
      }
      String v = s.substring(i + 1, end);
      i = end + 1;
      return v;
    }

    private void skip() {
      while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
        i++;
      }
    }

    private char peek() {
      if (i >= s.length()) {
        throw new IllegalArgumentException("header ends early at offset " + i);
      }
      return s.charAt(i);
    }

    private void expect(char c) {
      if (peek() != c) {
        throw new IllegalArgumentException("expected '" + c + "' at offset " + i + ", found '" + s.charAt(i) + "'");
      }
      i++;
    }
  }
}
