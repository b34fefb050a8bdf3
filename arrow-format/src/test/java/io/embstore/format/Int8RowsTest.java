package io.embstore.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;

/** The bulk and heap forms of {@link Int8Rows} agree with the per-row form, and refuse what it refuses. */
class Int8RowsTest {
  static final int ROWS = 50;
  static final int DIM = 9;

  @Test
  void bulkEncodeAndEveryDecodeAgree() {
    float[] m = TestMatrices.random(ROWS, DIM, 21);
    try (BufferAllocator allocator = new RootAllocator();
        ArrowBuf src = allocator.buffer(ROWS * DIM * 4L);
        ArrowBuf stored = allocator.buffer(ROWS * (DIM + 8L));
        ArrowBuf one = allocator.buffer(DIM + 8L);
        ArrowBuf decoded = allocator.buffer(ROWS * DIM * 4L)) {
      for (int i = 0; i < m.length; i++) {
        src.setFloat(4L * i, m[i]);
      }
      ValueType.INT8.encode(src.memoryAddress(), stored.memoryAddress(), ROWS, DIM);
      ValueType.INT8.decode(stored.memoryAddress(), decoded.memoryAddress(), ROWS, DIM);
      byte[] wire = new byte[ROWS * (DIM + 8)];
      stored.getBytes(0, wire);
      byte[] fromWire = new byte[ROWS * DIM * 4];
      Int8Rows.decode(wire, 0, fromWire, 0, ROWS, DIM);
      float[] row = new float[DIM];
      for (int r = 0; r < ROWS; r++) {
        System.arraycopy(m, r * DIM, row, 0, DIM);
        assertThat(Int8Rows.encodeRow(row, one.memoryAddress(), DIM)).isEqualTo(Int8Rows.OK);
        for (int b = 0; b < DIM + 8; b++) {
          assertThat(one.getByte(b)).as("row %d byte %d", r, b).isEqualTo(stored.getByte(r * (DIM + 8L) + b));
        }
        double bound = Int8TableTest.bound(m, r, DIM);
        for (int c = 0; c < DIM; c++) {
          int at = (r * DIM + c) * 4;
          float x = decoded.getFloat(at);
          int wireBits = (fromWire[at] & 0xff) | (fromWire[at + 1] & 0xff) << 8 | (fromWire[at + 2] & 0xff) << 16 | (fromWire[at + 3] & 0xff) << 24;
          assertThat(wireBits).isEqualTo(Float.floatToRawIntBits(x));
          assertThat((double) Math.abs(x - m[r * DIM + c])).isLessThanOrEqualTo(bound);
        }
      }

      src.setFloat(4L * (DIM + 2), Float.NaN);
      assertThatThrownBy(() -> ValueType.INT8.encode(src.memoryAddress(), stored.memoryAddress(), ROWS, DIM))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("Cannot quantize row 1 to int8: column 2 is NaN (int8 rows need finite values)");
      // HalfFloats converts values, not rows: int8 is refused there instead of being misread.
      assertThatThrownBy(() -> HalfFloats.decode(ValueType.INT8, stored.memoryAddress(), decoded.memoryAddress(), DIM))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("Cannot convert int8 values one at a time (use ValueType.encode or decode: rows)");
      assertThatThrownBy(() -> HalfFloats.encodeStochastic(ValueType.INT8, src.memoryAddress(), stored.memoryAddress(), DIM, 1))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageStartingWith("Cannot convert int8 values one at a time");
    }
  }
}
