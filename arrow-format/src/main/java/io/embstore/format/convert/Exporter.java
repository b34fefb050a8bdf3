package io.embstore.format.convert;

import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.Vocabulary;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.UUID;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;

/**
 * Exports a table to a matrix file, streaming rows in id order ({@link Table#forEachRowInIdOrder}).
 * The file is written under a temporary name next to the output and renamed when complete, so a
 * failed export leaves no file behind. npy and safetensors export copy rows with bulk memory copies into one
 * off-heap staging buffer that is written with {@link FileChannel#write}; no value is boxed.
 *
 * <p>word2vec files need a token per row: the table's vocabulary, or the decimal id when the table
 * has none.
 */
public final class Exporter {
  private static final int STAGING_BYTES = 8 << 20;
  /** The tensor name of a safetensors export when none is given. */
  public static final String DEFAULT_TENSOR = "embedding";

  private Exporter() {}

  /** Exports the table in the local directory {@code tableDir} to {@code output}; returns its size. */
  public static long run(ExportFormat format, Path tableDir, Path output, BufferAllocator parent)
      throws IOException {
    return run(format, TableLocation.of(tableDir), output, null, parent);
  }

  /**
   * Exports the table at {@code tableDir} (any storage) to the local file {@code output} (which must
   * not exist); returns its size. {@code tensor}: the name of the safetensors tensor (null: {@value
   * #DEFAULT_TENSOR}; other formats take none).
   */
  public static long run(ExportFormat format, TableLocation tableDir, Path output, String tensor, BufferAllocator parent)
      throws IOException {
    if (tensor != null && format != ExportFormat.SAFETENSORS) {
      throw new IllegalArgumentException("Cannot export to " + format + ": --tensor applies to safetensors only");
    }
    String tensorName = tensor == null ? DEFAULT_TENSOR : tensor;
    if (format == ExportFormat.SAFETENSORS) {
      Safetensors.checkName(tensorName);
    }
    if (Files.exists(output)) {
      throw new IllegalArgumentException(
          "Cannot export to " + output + ": it already exists (choose a new file or remove it)");
    }
    Table table = Table.open(tableDir);
    Path dir = output.toAbsolutePath().getParent();
    Path tmp = dir.resolve("." + output.getFileName() + ".tmp-" + UUID.randomUUID());
    try (BufferAllocator allocator = parent.newChildAllocator("export", 0, Long.MAX_VALUE)) {
      try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        switch (format) {
          case NPY:
            writeMatrix(table, ch, Npy.write(table.manifest().rows(), table.manifest().dim()), allocator);
            break;
          case SAFETENSORS:
            writeMatrix(table, ch, Safetensors.header(tensorName, table.manifest().rows(), table.manifest().dim()), allocator);
            break;
          case WORD2VEC:
          case WORD2VEC_BIN:
            writeWord2Vec(table, ch, format == ExportFormat.WORD2VEC_BIN, allocator);
            break;
          default:
            throw new IllegalArgumentException("Cannot export to " + format);
        }
        ch.force(true);
      }
      Files.move(tmp, output, StandardCopyOption.ATOMIC_MOVE);
      return Files.size(output);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  /** Writes {@code header}, then every row in id order as little-endian float32 (npy and safetensors). */
  private static void writeMatrix(Table table, FileChannel ch, byte[] header, BufferAllocator allocator) throws IOException {
    TableManifest m = table.manifest();
    writeFully(ch, ByteBuffer.wrap(header));
    long rowBytes = m.dim() * 4L;
    long capacity = Math.max(rowBytes, STAGING_BYTES / rowBytes * rowBytes);
    try (ArrowBuf staging = allocator.buffer(capacity)) {
      long[] fill = {0};
      table.forEachRowInIdOrder(
          allocator,
          false,
          (firstId, rows, buf, offset) -> {
            long bytes = rows * rowBytes;
            long at = offset;
            while (bytes > 0) {
              long n = Math.min(bytes, capacity - fill[0]);
              staging.setBytes(fill[0], buf, at, n);
              fill[0] += n;
              at += n;
              bytes -= n;
              if (fill[0] == capacity) {
                writeFully(ch, staging.nioBuffer(0, (int) fill[0]));
                fill[0] = 0;
              }
            }
          });
      writeFully(ch, staging.nioBuffer(0, (int) fill[0]));
    }
  }

  private static void writeWord2Vec(Table table, FileChannel ch, boolean binary, BufferAllocator allocator)
      throws IOException {
    TableManifest m = table.manifest();
    Vocabulary vocab = table.vocabulary(allocator);
    int dim = m.dim();
    OutputStream out = new BufferedOutputStream(Channels.newOutputStream(ch), 1 << 20);
    out.write((m.rows() + " " + dim + "\n").getBytes(StandardCharsets.US_ASCII));
    byte[] row = new byte[dim * 4];
    ByteBuffer rowView = ByteBuffer.wrap(row).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    StringBuilder line = new StringBuilder();
    table.forEachRowInIdOrder(
        allocator,
        false,
        (firstId, rows, buf, offset) -> {
          for (int r = 0; r < rows; r++) {
            long id = firstId + r;
            String token = vocab == null ? Long.toString(id) : vocab.token(id);
            checkToken(token, id);
            long base = offset + (long) r * dim * 4;
            if (binary) {
              out.write(token.getBytes(StandardCharsets.UTF_8));
              out.write(' ');
              buf.getBytes(base, row, 0, row.length);
              out.write(row);
              out.write('\n');
            } else {
              line.setLength(0);
              line.append(token);
              buf.getBytes(base, row, 0, row.length);
              for (int c = 0; c < dim; c++) {
                line.append(' ').append(Float.toString(rowView.getFloat(c * 4)));
              }
              line.append('\n');
              out.write(line.toString().getBytes(StandardCharsets.UTF_8));
            }
          }
        });
    out.flush();
  }

  private static void checkToken(String token, long id) {
    for (int i = 0; i < token.length(); i++) {
      char c = token.charAt(i);
      if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
        throw new IllegalArgumentException(
            "Cannot export id " + id + ": token '" + token + "' contains whitespace (word2vec files separate tokens with spaces)");
      }
    }
  }

  private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
    while (b.hasRemaining()) {
      ch.write(b);
    }
  }
}
