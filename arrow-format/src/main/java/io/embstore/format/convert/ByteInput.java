package io.embstore.format.convert;

import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * Sequential reads of an input file through one direct buffer, gzip-compressed or not (detected by
 * the gzip magic bytes, so {@code .npy.gz} works without a flag). Bulk reads ({@link #readInto})
 * of a plain file go straight from the channel into the caller's buffer once the read-ahead is
 * drained: the bytes are copied once, by the kernel.
 */
final class ByteInput implements AutoCloseable {
  private static final int BUFFER_BYTES = 1 << 20;

  private final ReadableByteChannel channel;
  private final boolean compressed;
  private final ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER_BYTES);
  private long consumed;
  private boolean eof;

  private ByteInput(ReadableByteChannel channel, boolean compressed) {
    this.channel = channel;
    this.compressed = compressed;
    buf.flip();
  }

  static ByteInput open(Path file) throws IOException {
    if (isGzip(file)) {
      return new ByteInput(Channels.newChannel(openStream(file)), true);
    }
    return new ByteInput(FileChannel.open(file, StandardOpenOption.READ), false);
  }

  /** A buffered stream of the file's bytes, gunzipped when it is gzip-compressed. */
  static InputStream openStream(Path file) throws IOException {
    InputStream raw = Files.newInputStream(file);
    try {
      if (isGzip(file)) {
        return new BufferedInputStream(new Gunzip(file, new GZIPInputStream(raw, 1 << 16)), 1 << 16);
      }
      return new BufferedInputStream(raw, 1 << 16);
    } catch (IOException | RuntimeException e) {
      raw.close();
      throw e;
    }
  }

  /** Turns the decompressor's errors into one that names the file and the offset. */
  private static final class Gunzip extends FilterInputStream {
    private final Path file;
    private long offset;

    Gunzip(Path file, InputStream in) {
      super(in);
      this.file = file;
    }

    @Override
    public int read() throws IOException {
      byte[] one = new byte[1];
      return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      try {
        int n = in.read(b, off, len);
        offset += Math.max(n, 0);
        return n;
      } catch (EOFException | ZipException e) {
        throw new InputFormatException(
            "Cannot import " + file + ": the compressed stream is damaged or truncated after " + offset + " bytes (" + e.getMessage() + ")", e);
      }
    }
  }

  static boolean isGzip(Path file) throws IOException {
    if (!Files.isRegularFile(file)) {
      throw new NoSuchFileException(file.toString(), null, "Cannot import " + file + ": no such file");
    }
    try (InputStream in = Files.newInputStream(file)) {
      return in.read() == 0x1f && in.read() == 0x8b;
    }
  }

  boolean compressed() {
    return compressed;
  }

  /** Bytes consumed so far (of the decompressed stream). */
  long position() {
    return consumed;
  }

  private boolean fill() throws IOException {
    if (eof) {
      return false;
    }
    buf.compact();
    int n;
    try {
      n = channel.read(buf);
    } finally {
      buf.flip();
    }
    if (n < 0) {
      eof = true;
      return false;
    }
    return true;
  }

  /** The next byte (0..255), or -1 at the end. */
  int read() throws IOException {
    while (!buf.hasRemaining()) {
      if (!fill()) {
        return -1;
      }
    }
    consumed++;
    return buf.get() & 0xff;
  }

  /** Reads up to {@code len} bytes; fewer only at the end of the input. */
  int readUpTo(byte[] dst, int off, int len) throws IOException {
    int done = 0;
    while (done < len) {
      if (!buf.hasRemaining() && !fill()) {
        break;
      }
      int n = Math.min(len - done, buf.remaining());
      buf.get(dst, off + done, n);
      done += n;
    }
    consumed += done;
    return done;
  }

  /**
   * Copies {@code len} bytes into {@code dst} at its position (which advances); fewer only at the
   * end of the input.
   */
  int readInto(ByteBuffer dst, int len) throws IOException {
    int done = 0;
    int n = Math.min(len, buf.remaining());
    if (n > 0) {
      ByteBuffer part = buf.duplicate();
      part.limit(part.position() + n);
      dst.put(part);
      buf.position(buf.position() + n);
      done = n;
    }
    if (done < len && !compressed) {
      // Large reads skip the read-ahead buffer.
      int limit = dst.limit();
      dst.limit(dst.position() + (len - done));
      try {
        while (dst.hasRemaining()) {
          int r = channel.read(dst);
          if (r < 0) {
            eof = true;
            break;
          }
          done += r;
        }
      } finally {
        dst.limit(limit);
      }
    } else {
      while (done < len && (buf.hasRemaining() || fill())) {
        int m = Math.min(len - done, buf.remaining());
        ByteBuffer part = buf.duplicate();
        part.limit(part.position() + m);
        dst.put(part);
        buf.position(buf.position() + m);
        done += m;
      }
    }
    consumed += done;
    return done;
  }

  /**
   * Skips {@code n} bytes (the data before a tensor of a safetensors file); returns how many were
   * skipped, fewer only at the end of the input. A plain file moves its channel's position; a
   * compressed stream is read and dropped.
   */
  long skip(long n) throws IOException {
    long done = Math.min(n, buf.remaining());
    buf.position(buf.position() + (int) done);
    if (done < n && !compressed) {
      FileChannel file = (FileChannel) channel;
      long from = file.position();
      long to = Math.min(file.size(), from + (n - done));
      file.position(to);
      done += to - from;
    }
    while (done < n && fill()) {
      int m = (int) Math.min(n - done, buf.remaining());
      buf.position(buf.position() + m);
      done += m;
    }
    consumed += done;
    return done;
  }

  @Override
  public void close() throws IOException {
    channel.close();
  }
}
