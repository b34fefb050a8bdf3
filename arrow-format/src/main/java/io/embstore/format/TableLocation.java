package io.embstore.format;

import java.io.IOException;
import java.nio.channels.SeekableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;
import java.util.List;

/**
 * Where a table lives: a directory on the local disk ({@code /data/t}, {@code file:///data/t}) or
 * in a Hadoop {@code FileSystem} ({@code hdfs://nn:8020/t}, {@code s3a://bucket/t}, any scheme
 * Hadoop knows). Every reader and writer of the format goes through this type, so the format code
 * is the same on every storage; what differs is how bytes are read and written and how a manifest
 * is committed (see {@link #commitManifest} and {@code docs/format.md}).
 *
 * <p>Local directories use {@code java.nio} only ({@code FileChannel}, {@code force}, an atomic
 * rename and a directory fsync): no Hadoop class is loaded for a local table. Other schemes go
 * through Hadoop's {@code FileSystem} with the configuration of the {@link TableStorage} that made
 * the location.
 *
 * <p>File arguments are plain names inside the directory (no {@code /}); the directory itself may
 * be missing until a writer creates it.
 */
public abstract class TableLocation {
  TableLocation() {}

  /** The table at {@code uri} (a plain path or a URI), with {@link TableStorage#defaults()}. */
  public static TableLocation of(String uri) {
    return TableStorage.defaults().location(uri);
  }

  /** The table in the local directory {@code dir}. */
  public static TableLocation of(Path dir) {
    return new LocalLocation(dir);
  }

  /** The location as given (a path for a local directory, the URI otherwise). */
  public abstract String uri();

  @Override
  public String toString() {
    return uri();
  }

  /** Whether this is a local directory (read and written with {@code java.nio}). */
  public abstract boolean isLocal();

  /**
   * The local directory.
   *
   * @throws UnsupportedOperationException when the table is not on the local disk
   */
  public Path localPath() {
    throw new UnsupportedOperationException("Cannot use " + uri() + " as a local path: it is not on the local disk");
  }

  /** The directory {@code name} inside this one (e.g. a training run's {@code _context} table). */
  public abstract TableLocation resolve(String name);

  /** How {@code name} in this directory is named in messages. */
  public abstract String describe(String name);

  /** Whether a committed manifest is there, i.e. whether this is a table. */
  public boolean hasManifest() throws IOException {
    return exists(TableFormat.MANIFEST_FILE);
  }

  /** Whether the directory exists. */
  public abstract boolean exists() throws IOException;

  /** Whether the directory exists and holds nothing. */
  public abstract boolean isEmptyDirectory() throws IOException;

  /** Whether something (a file or a directory) exists under this path that is not a directory. */
  public abstract boolean isFile() throws IOException;

  /** Whether file {@code name} exists in the directory. */
  public abstract boolean exists(String name) throws IOException;

  /**
   * The length of file {@code name}.
   *
   * @throws java.nio.file.NoSuchFileException when it is missing
   */
  public abstract long size(String name) throws IOException;

  /** Names of the entries of the directory (empty when it does not exist). */
  public abstract List<String> list() throws IOException;

  /** Creates the directory (and its parents) if missing. */
  public abstract void createDirectories() throws IOException;

  /** Deletes file {@code name} if it exists; returns whether it did. */
  public abstract boolean deleteIfExists(String name) throws IOException;

  /** Deletes the directory if it exists and is empty. */
  public abstract void deleteDirectoryIfEmpty() throws IOException;

  /**
   * Opens file {@code name} for reading at any position.
   *
   * @throws java.nio.file.NoSuchFileException when it is missing
   */
  public abstract SeekableByteChannel openRead(String name) throws IOException;

  /**
   * Opens file {@code name} for reading from start to end (a whole-file scan: object stores read
   * it in one request). The default is {@link #openRead}.
   */
  public SeekableByteChannel openSequential(String name) throws IOException {
    return openRead(name);
  }

  /** Every byte of file {@code name} (small files: manifests). */
  public abstract byte[] readAllBytes(String name) throws IOException;

  /**
   * Creates file {@code name}, which must not exist ({@link java.nio.file.FileAlreadyExistsException}
   * otherwise). Bytes written become durable with {@link Output#sync()}; {@link Output#close()}
   * completes the file (on object stores the upload happens there).
   */
  public abstract Output create(String name) throws IOException;

  /**
   * Makes {@code bytes} the content of {@code manifest.json}, atomically: a reader sees the old or
   * the new manifest, never a mix, and a crash leaves one of the two. Local disk: a temporary file,
   * forced, renamed over the manifest, the directory forced. HDFS and other file systems with an
   * atomic rename: a temporary file, {@code hsync}ed, renamed with overwrite. Object stores (no
   * rename): one PUT of the whole object, conditional where the store supports it (on the etag of
   * the manifest replaced, or on its absence), so that a second writer's commit fails instead of
   * replacing a manifest it did not read.
   *
   * <p>Every storage first checks that the committed manifest (if any) is older than {@code
   * version} and fails with {@link java.nio.file.FileAlreadyExistsException} otherwise: a commit
   * never replaces the same or a newer version. On object stores that check and the PUT are one
   * atomic step; elsewhere a second writer can still slip in between (one writer per table).
   *
   * @param version the table version of {@code bytes}
   */
  public abstract void commitManifest(byte[] bytes, long version) throws IOException;

  /** Copies file {@code name} of {@code from} here under {@code as} (streaming). */
  public void copyFrom(TableLocation from, String name, String as) throws IOException {
    try (SeekableByteChannel in = from.openSequential(name)) {
      Output out = create(as);
      try (out) {
        java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocateDirect(1 << 20);
        while (in.read(buf.clear()) >= 0) {
          buf.flip();
          while (buf.hasRemaining()) {
            out.write(buf);
          }
        }
        out.sync();
      } catch (IOException | RuntimeException e) {
        try {
          deleteIfExists(as);
        } catch (IOException suppressed) {
          e.addSuppressed(suppressed);
        }
        throw e;
      }
    }
  }

  /**
   * The committed version, or 0 when there is no manifest; read fresh, for the check in {@link
   * #commitManifest} that a commit only ever replaces an older version.
   */
  long committedVersion() throws IOException {
    if (!hasManifest()) {
      return 0;
    }
    return TableManifest.read(this).tableVersion();
  }

  /** Throws when the committed manifest is at {@code version} or newer (another writer committed). */
  void checkNewer(long version) throws IOException {
    long committed = committedVersion();
    if (committed >= version) {
      throw new java.nio.file.FileAlreadyExistsException(
          describe(TableFormat.MANIFEST_FILE), null,
          "Cannot commit table version " + version + " of " + uri() + ": version " + committed + " is already committed (another writer?)");
    }
  }

  /** A file being written. */
  public interface Output extends WritableByteChannel {
    /** Makes the bytes written so far durable (fsync, {@code hsync}); a no-op where close does it. */
    void sync() throws IOException;
  }
}
