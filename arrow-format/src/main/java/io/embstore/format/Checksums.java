package io.embstore.format;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.NonWritableChannelException;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.SeekableByteChannel;
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
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      return crc32c(ch);
    }
  }

  /** CRC-32C and length of the bytes of {@code ch} from its position to its end, in 1 MiB reads. */
  static long[] crc32c(ReadableByteChannel ch) throws IOException {
    CRC32C crc = new CRC32C();
    ByteBuffer buf = ByteBuffer.allocateDirect(READ_CHUNK);
    long length = 0;
    while (ch.read(buf.clear()) >= 0) {
      buf.flip();
      length += buf.remaining();
      crc.update(buf);
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

  /**
   * A read channel that computes the CRC-32C of a whole file from the reads passing through it, in
   * whatever order the reader makes them, without reading the file twice. It tracks the prefix
   * {@code [0, covered)} checksummed so far: a read that continues or overlaps the prefix extends
   * it; a read that starts a little after it (up to {@value #GAP} bytes: the padding and schema
   * message Arrow's file reader skips) first checksums the gap with an extra read; a read far
   * ahead (Arrow's footer, read first) leaves the prefix as it is. {@link #finish} checksums what
   * was never read through (the footer) and returns the CRC of the whole file.
   */
  static final class TrackingChannel implements SeekableByteChannel {
    static final int GAP = 64 * 1024;
    private final SeekableByteChannel in;
    private final CRC32C crc = new CRC32C();
    private long covered;

    TrackingChannel(SeekableByteChannel in) {
      this.in = in;
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
      long at = in.position();
      if (at > covered && at - covered <= GAP) {
        fill(at);
        in.position(at);
      }
      int start = dst.position();
      int n = in.read(dst);
      if (n > 0 && at <= covered && at + n > covered) {
        ByteBuffer view = dst.duplicate();
        view.position(start + (int) (covered - at)).limit(start + n);
        crc.update(view);
        covered = at + n;
      }
      return n;
    }

    /** Checksums {@code [covered, to)} by reading it. */
    private void fill(long to) throws IOException {
      ByteBuffer buf = ByteBuffer.allocate((int) Math.min(READ_CHUNK, to - covered));
      in.position(covered);
      while (covered < to) {
        buf.clear().limit((int) Math.min(buf.capacity(), to - covered));
        int n = in.read(buf);
        if (n < 0) {
          throw new java.io.EOFException("file ended at byte " + covered + " of " + to);
        }
        buf.flip();
        crc.update(buf);
        covered += n;
      }
    }

    /** The CRC-32C of the whole file: the bytes not read through the channel are read now. */
    int finish() throws IOException {
      long size = in.size();
      if (covered < size) {
        fill(size);
      }
      return (int) crc.getValue();
    }

    @Override
    public int write(ByteBuffer src) {
      throw new NonWritableChannelException();
    }

    @Override
    public long position() throws IOException {
      return in.position();
    }

    @Override
    public SeekableByteChannel position(long p) throws IOException {
      in.position(p);
      return this;
    }

    @Override
    public long size() throws IOException {
      return in.size();
    }

    @Override
    public SeekableByteChannel truncate(long size) {
      throw new NonWritableChannelException();
    }

    @Override
    public boolean isOpen() {
      return in.isOpen();
    }

    @Override
    public void close() throws IOException {
      in.close();
    }
  }
}
