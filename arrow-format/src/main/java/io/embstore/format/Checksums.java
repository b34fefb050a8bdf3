package io.embstore.format;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Locale;
import java.util.zip.CRC32C;

/** CRC-32C helpers: whole files, byte ranges, and a channel that checksums what passes through. */
public final class Checksums {
  private static final int READ_CHUNK = 1 << 20;

  private Checksums() {}

  public static int crc32c(byte[] bytes, int offset, int length) {
    CRC32C crc = new CRC32C();
    crc.update(bytes, offset, length);
    return (int) crc.getValue();
  }

  /** CRC-32C and length of a whole file, read sequentially in 1 MiB chunks. */
  public static long[] crc32cOfFile(Path file) throws IOException {
    CRC32C crc = new CRC32C();
    ByteBuffer buf = ByteBuffer.allocateDirect(READ_CHUNK);
    long length = 0;
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      while (ch.read(buf.clear()) > 0) {
        buf.flip();
        length += buf.remaining();
        crc.update(buf);
      }
    }
    return new long[] {(int) crc.getValue(), length};
  }

  public static String hex(int crc) {
    return String.format(Locale.ROOT, "%08x", crc);
  }

  static int parseHex(String hex) {
    if (hex.length() != 8) {
      throw new IllegalArgumentException("checksum '" + hex + "' is not 8 hex digits");
    }
    try {
      return (int) Long.parseLong(hex, 16);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("checksum '" + hex + "' is not 8 hex digits", e);
    }
  }

  /** Wraps a channel; every byte written through it goes into a CRC-32C and a byte count. */
  static final class ChecksumChannel implements WritableByteChannel {
    private final WritableByteChannel out;
    private final CRC32C crc = new CRC32C();
    private long bytes;

    ChecksumChannel(WritableByteChannel out) {
      this.out = out;
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      ByteBuffer view = src.duplicate();
      int n = out.write(src);
      view.limit(view.position() + n);
      crc.update(view);
      bytes += n;
      return n;
    }

    int crc() {
      return (int) crc.getValue();
    }

    long bytes() {
      return bytes;
    }

    @Override
    public boolean isOpen() {
      return out.isOpen();
    }

    @Override
    public void close() throws IOException {
      out.close();
    }
  }
}
