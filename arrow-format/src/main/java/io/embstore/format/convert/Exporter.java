package io.embstore.format.convert;

import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.ValueType;
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
    return run(format, tableDir, output, tensor, ValueType.FLOAT32, parent);
  }

  /**
   * {@link #run(ExportFormat, TableLocation, Path, String, BufferAllocator)} writing values of
   * {@code dtype}: float32 (every table's rows widened exactly), or float16 (npy {@code '<f2'},
   * safetensors F16) and bfloat16 (safetensors BF16), narrowed with round to nearest even, which
   * gives back the stored bits of a table of that type. word2vec files hold float32 only, and npy
   * has no bfloat16.
   */
  public static long run(ExportFormat format, TableLocation tableDir, Path output, String tensor, ValueType dtype, BufferAllocator parent)
      throws IOException {
    if (dtype == ValueType.INT8) {
      throw new IllegalArgumentException("Cannot export with --dtype int8 (export writes float32, float16 or bfloat16 values;"
          + " an int8 table exports decoded to float32 by default)");
    }
    if (dtype != ValueType.FLOAT32) {
      if (format == ExportFormat.WORD2VEC || format == ExportFormat.WORD2VEC_BIN) {
        throw new IllegalArgumentException("Cannot export to " + format.cliName() + " with --dtype " + dtype + " (word2vec files hold float32 values; export to npy or safetensors)");
      }
      if (format == ExportFormat.NPY && dtype == ValueType.BFLOAT16) {
        throw new IllegalArgumentException("Cannot export to npy with --dtype bfloat16 (NumPy has no bfloat16 dtype; use float16 or float32, or export to safetensors)");
      }
    }
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
            writeMatrix(table, ch, Npy.write(dtype == ValueType.FLOAT16 ? Npy.FLOAT16_LE : Npy.FLOAT32_LE, table.manifest().rows(), table.manifest().dim()), dtype, allocator);
            break;
          case SAFETENSORS:
            Safetensors.Dtype st = dtype == ValueType.FLOAT16 ? Safetensors.Dtype.F16 : dtype == ValueType.BFLOAT16 ? Safetensors.Dtype.BF16 : Safetensors.Dtype.F32;
            writeMatrix(table, ch, Safetensors.header(tensorName, st, table.manifest().rows(), table.manifest().dim()), dtype, allocator);
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

  /** Writes {@code header}, then every row in id order as little-endian values of {@code dtype} (npy and safetensors). */
  private static void writeMatrix(Table table, FileChannel ch, byte[] header, ValueType dtype, BufferAllocator allocator) throws IOException {
    TableManifest m = table.manifest();
    writeFully(ch, ByteBuffer.wrap(header));
    long rowBytes = m.dim() * 4L;
    long outRowBytes = dtype.rowBytes(m.dim());
    long capacity = Math.max(outRowBytes, STAGING_BYTES / outRowBytes * outRowBytes);
    try (ArrowBuf staging = allocator.buffer(capacity)) {
      long[] fill = {0};
      table.forEachRowInIdOrder(
          allocator,
          false,
          (firstId, rows, buf, offset) -> {
            if (dtype.isCompact()) {
              // Narrowed row by row run into the staging buffer (bulk, from raw addresses).
              long done = 0;
              while (done < rows) {
                long n = Math.min(rows - done, (capacity - fill[0]) / outRowBytes);
                dtype.encode(buf.memoryAddress() + offset + done * rowBytes, staging.memoryAddress() + fill[0], n, m.dim());
                fill[0] += n * outRowBytes;
                done += n;
                if (fill[0] + outRowBytes > capacity) {
                  writeFully(ch, staging.nioBuffer(0, (int) fill[0]));
                  fill[0] = 0;
                }
              }
              return;
            }
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
