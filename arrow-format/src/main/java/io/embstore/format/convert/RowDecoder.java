package io.embstore.format.convert;

import java.nio.ByteBuffer;

/**
 * Turns the little-endian values of a source file into the table's float32 rows, exactly: {@link
 * #F32} copies, {@link #F16} (IEEE 754 binary16) and {@link #BF16} (bfloat16) widen, and every
 * 16-bit value, subnormals, infinities and NaN payloads included, has one float32 of the same
 * value. The importer reads {@link #sourceBytes} per value into a staging buffer and decodes a
 * batch of rows at a time; a table that stores 16-bit rows would take the source bytes of {@code
 * F16}/{@code BF16} as they are instead of decoding them.
 */
enum RowDecoder {
  F32(4) {
    @Override
    void decode(ByteBuffer src, ByteBuffer dst, int values) {
      ByteBuffer part = src.duplicate();
      part.limit(part.position() + values * 4);
      dst.put(part);
      src.position(src.position() + values * 4);
    }
  },
  F16(2) {
    @Override
    void decode(ByteBuffer src, ByteBuffer dst, int values) {
      for (int i = 0; i < values; i++) {
        dst.putFloat(f16ToFloat(src.getShort() & 0xffff));
      }
    }
  },
  BF16(2) {
    @Override
    void decode(ByteBuffer src, ByteBuffer dst, int values) {
      for (int i = 0; i < values; i++) {
        dst.putInt((src.getShort() & 0xffff) << 16);
      }
    }
  };

  private final int sourceBytes;

  RowDecoder(int sourceBytes) {
    this.sourceBytes = sourceBytes;
  }

  /** Bytes of one value in the source. */
  int sourceBytes() {
    return sourceBytes;
  }

  /**
   * Decodes {@code values} values from {@code src} (little-endian, at its position) into float32
   * at {@code dst}'s position (little-endian); both positions advance.
   */
  abstract void decode(ByteBuffer src, ByteBuffer dst, int values);

  /** The float32 of the binary16 bits {@code h}: the same value (sign, subnormals, infinities, NaN payload kept). */
  static float f16ToFloat(int h) {
    return io.embstore.format.HalfFloats.float16ToFloat((short) h);
  }
}
