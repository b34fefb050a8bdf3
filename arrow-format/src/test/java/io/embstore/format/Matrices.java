package io.embstore.format;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/** Writes small test inputs: npy files (with any header dict) and word2vec / GloVe files. */
public final class Matrices {
  private Matrices() {}

  public static byte[] le(float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return b.array();
  }

  /** An .npy version 1.0 file with the given header dict and data bytes. */
  public static Path npy(Path file, String dict, byte[] data) throws IOException {
    byte[] body = dict.getBytes(StandardCharsets.ISO_8859_1);
    int hlen = body.length + 1;
    int pad = 64 - ((10 + hlen) % 64);
    ByteBuffer b = ByteBuffer.allocate(10 + hlen + pad + data.length).order(ByteOrder.LITTLE_ENDIAN);
    b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0});
    b.putShort((short) (hlen + pad));
    b.put(body);
    for (int i = 0; i < pad; i++) {
      b.put((byte) ' ');
    }
    b.put((byte) '\n');
    b.put(data);
    Files.write(file, b.array());
    return file;
  }

  public static String dict(String descr, boolean fortran, String shape) {
    return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': " + shape + ", }";
  }

  /** A float32 matrix as a valid npy file. */
  public static Path npy(Path file, float[] m, long rows, int dim) throws IOException {
    return npy(file, dict("<f4", false, "(" + rows + ", " + dim + ")"), le(m));
  }

  /** word2vec text: header (unless null), then token and values per line. */
  public static Path text(Path file, String header, String[] tokens, float[] m, int dim) throws IOException {
    StringBuilder sb = new StringBuilder();
    if (header != null) {
      sb.append(header).append('\n');
    }
    for (int r = 0; r < tokens.length; r++) {
      sb.append(tokens[r]);
      for (int c = 0; c < dim; c++) {
        sb.append(' ').append(String.format(Locale.ROOT, "%s", m[r * dim + c]));
      }
      sb.append('\n');
    }
    Files.writeString(file, sb.toString(), StandardCharsets.UTF_8);
    return file;
  }

  public static String[] tokens(int n) {
    String[] t = new String[n];
    for (int i = 0; i < n; i++) {
      t[i] = "tok" + i;
    }
    return t;
  }

  /** A safetensors file: the length of {@code json} padded with spaces to a multiple of 8, the JSON, then {@code data}. */
  public static Path safetensors(Path file, String json, byte[] data) throws IOException {
    byte[] h = json.getBytes(StandardCharsets.UTF_8);
    byte[] padded = java.util.Arrays.copyOf(h, (h.length + 7) / 8 * 8);
    java.util.Arrays.fill(padded, h.length, padded.length, (byte) ' ');
    return safetensors(file, padded.length, padded, data);
  }

  /** A safetensors file with any length field: {@code declared}, then {@code header} and {@code data} as they are. */
  public static Path safetensors(Path file, long declared, byte[] header, byte[] data) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(declared).put(header).put(data);
    Files.write(file, b.array());
    return file;
  }
}
