package io.embstore.format.convert;

import io.embstore.format.TableWriter;
import io.embstore.format.ValueType;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Locale;
import java.util.function.LongFunction;

/**
 * The import side of every converter: rows are put into one direct staging buffer (about {@value
 * #TARGET_BYTES} bytes), checked for non-finite values and handed to {@link
 * TableWriter#appendInIdOrder} a buffer at a time. Heap use does not depend on the number of rows.
 */
final class RowSink {
  static final int TARGET_BYTES = 4 << 20;
  private static final long PROGRESS_NANOS = 5_000_000_000L;
  /** Exponent bits of two float32 values in one little-endian long. */
  private static final long EXP2 = 0x7f8000007f800000L;
  private static final long CARRY2 = 0x0080000000800000L;
  private static final long SIGN2 = 0x8000000080000000L;
  /** The float32 bits of 65,520: from there on, float16 rounds to infinity. */
  private static final int FLOAT16_OVERFLOW_BITS = 0x477ff000;

  private final TableWriter writer;
  /** Whether rows arrive in the table's 16-bit type (copied as they are) instead of float32. */
  private final boolean stored;
  private final String file;
  private final boolean allowNonFinite;
  private final LongFunction<String> tokenOf;
  private final PrintWriter progress;
  private final int rowBytes;
  private final int dim;
  private final ByteBuffer staging;
  private final long totalRows;
  private final long started = System.nanoTime();
  private long lastReport = started;
  private int pending;

  RowSink(
      TableWriter writer,
      String file,
      boolean allowNonFinite,
      LongFunction<String> tokenOf,
      PrintWriter progress) {
    this(writer, file, allowNonFinite, tokenOf, progress, false);
  }

  /**
   * A sink whose rows are float32 ({@code stored} false) or already in the table's value type
   * ({@code stored}: C values of it a row, handed to {@link TableWriter#appendStoredInIdOrder}).
   */
  RowSink(
      TableWriter writer,
      String file,
      boolean allowNonFinite,
      LongFunction<String> tokenOf,
      PrintWriter progress,
      boolean stored) {
    this.stored = stored;
    this.writer = writer;
    this.file = file;
    this.allowNonFinite = allowNonFinite;
    this.tokenOf = tokenOf;
    this.progress = progress;
    this.dim = writer.dim();
    this.rowBytes = (int) (stored ? writer.valueType().rowBytes(dim) : dim * 4L);
    this.totalRows = writer.partitioner().numRows();
    int rows = Math.max(1, TARGET_BYTES / rowBytes);
    this.staging = ByteBuffer.allocateDirect(rows * rowBytes).order(ByteOrder.LITTLE_ENDIAN);
  }

  /** The staging buffer; put whole rows at its position, then call {@link #added}. */
  ByteBuffer buffer() {
    return staging;
  }

  /** Rows that still fit into the staging buffer (at least 1). */
  int roomRows() {
    return staging.remaining() / rowBytes;
  }

  /** Id of the next row to be added. */
  long nextId() {
    return writer.nextId() + pending;
  }

  /** Records that {@code rows} rows were put into the buffer; flushes when it is full. */
  void added(int rows) throws IOException {
    pending += rows;
    if (staging.remaining() < rowBytes) {
      flush();
    }
  }

  /** Hands the buffered rows to the table writer. */
  void flush() throws IOException {
    if (pending == 0) {
      return;
    }
    staging.flip();
    if (stored) {
      if (!allowNonFinite) {
        checkFinite16();
      }
      writer.appendStoredInIdOrder(staging, pending);
    } else {
      if (!allowNonFinite) {
        checkFinite();
        if (writer.valueType() == ValueType.FLOAT16) {
          checkFloat16Range();
        }
      }
      writer.appendInIdOrder(staging, pending);
    }
    staging.clear();
    pending = 0;
    long now = System.nanoTime();
    if (progress != null && now - lastReport >= PROGRESS_NANOS) {
      lastReport = now;
      long done = writer.nextId();
      double secs = (now - started) / 1e9;
      progress.printf(
          Locale.ROOT,
          "embstore import: progress %,d of %,d rows (%.0f%%), %.0f MB/s%n",
          done,
          totalRows,
          100.0 * done / totalRows,
          done * rowBytes / 1e6 / secs);
      progress.flush();
    }
  }

  /**
   * A float16 table stores values from 65,520 up (in magnitude) as infinity: refused like a
   * non-finite value, naming the value and the limit.
   */
  private void checkFloat16Range() throws InputFormatException {
    int bytes = pending * rowBytes;
    for (int i = 0; i < bytes; i += 4) {
      if ((staging.getInt(i) & 0x7fffffff) >= FLOAT16_OVERFLOW_BITS) {
        long id = writer.nextId() + i / rowBytes;
        String token = tokenOf == null ? null : tokenOf.apply(id);
        throw new InputFormatException(
            "Cannot import " + file + ": row " + id + (token == null ? "" : " ('" + token + "')") + ", column " + (i % rowBytes) / 4
                + " is " + staging.getFloat(i) + ", beyond float16's largest value 65504 (it would be stored as infinity;"
                + " use --dtype bfloat16 or float32, or pass --allow-non-finite to keep it)");
      }
    }
  }

  /** {@link #checkFinite} of 16-bit rows: exponent bits all ones is a NaN or an infinity. */
  private void checkFinite16() throws InputFormatException {
    boolean half = writer.valueType() == ValueType.FLOAT16;
    int mask = half ? 0x7c00 : 0x7f80;
    int bytes = pending * rowBytes;
    for (int i = 0; i < bytes; i += 2) {
      short h = staging.getShort(i);
      if ((h & mask) == mask) {
        float f = half ? io.embstore.format.HalfFloats.float16ToFloat(h) : io.embstore.format.HalfFloats.bfloat16ToFloat(h);
        long id = writer.nextId() + i / rowBytes;
        String token = tokenOf == null ? null : tokenOf.apply(id);
        throw new InputFormatException("Cannot import " + file + ": row " + id + (token == null ? "" : " ('" + token + "')") + ", column "
            + (i % rowBytes) / 2 + " is " + f + " (non-finite values are rejected; pass --allow-non-finite to keep them)");
      }
    }
  }

  private void checkFinite() throws InputFormatException {
    int bytes = pending * rowBytes;
    int i = 0;
    // Two values per step: a value is NaN or infinite when its 8 exponent bits are all ones.
    for (; i + 8 <= bytes; i += 8) {
      long v = staging.getLong(i);
      if ((((v & EXP2) + CARRY2) & SIGN2) != 0) {
        break;
      }
    }
    for (; i + 4 <= bytes; i += 4) {
      float f = staging.getFloat(i);
      if (!Float.isFinite(f)) {
        long id = writer.nextId() + i / rowBytes;
        int column = (i % rowBytes) / 4;
        String token = tokenOf == null ? null : tokenOf.apply(id);
        throw new InputFormatException(
            "Cannot import "
                + file
                + ": row "
                + id
                + (token == null ? "" : " ('" + token + "')")
                + ", column "
                + column
                + " is "
                + f
                + (writer.valueType() == ValueType.INT8
                    ? " (non-finite values are rejected; int8 rows cannot hold them)"
                    : " (non-finite values are rejected; pass --allow-non-finite to keep them)"));
      }
    }
  }
}
