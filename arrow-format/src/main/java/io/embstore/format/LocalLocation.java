package io.embstore.format;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** A table directory on the local disk, read and written with {@code java.nio} only. */
final class LocalLocation extends TableLocation {
  private static final Logger LOG = LoggerFactory.getLogger(LocalLocation.class);
  private final Path dir;

  LocalLocation(Path dir) {
    this.dir = dir;
  }

  @Override
  public String uri() {
    return dir.toString();
  }

  @Override
  public boolean isLocal() {
    return true;
  }

  @Override
  public Path localPath() {
    return dir;
  }

  @Override
  public TableLocation resolve(String name) {
    return new LocalLocation(dir.resolve(name));
  }

  @Override
  public String describe(String name) {
    return dir.resolve(name).toString();
  }

  @Override
  public boolean exists() {
    return Files.exists(dir);
  }

  @Override
  public boolean isEmptyDirectory() throws IOException {
    if (!Files.isDirectory(dir)) {
      return false;
    }
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
      return !s.iterator().hasNext();
    }
  }

  @Override
  public boolean isFile() {
    return Files.exists(dir) && !Files.isDirectory(dir);
  }

  @Override
  public boolean exists(String name) {
    return Files.exists(dir.resolve(name));
  }

  @Override
  public long size(String name) throws IOException {
    return Files.size(dir.resolve(name));
  }

  @Override
  public List<String> list() throws IOException {
    List<String> names = new ArrayList<>();
    if (!Files.isDirectory(dir)) {
      return names;
    }
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
      for (Path p : s) {
        names.add(p.getFileName().toString());
      }
    }
    return names;
  }

  @Override
  public void createDirectories() throws IOException {
    Files.createDirectories(dir);
  }

  @Override
  public boolean deleteIfExists(String name) throws IOException {
    return Files.deleteIfExists(dir.resolve(name));
  }

  @Override
  public void deleteDirectoryIfEmpty() throws IOException {
    if (isEmptyDirectory()) {
      Files.deleteIfExists(dir);
    }
  }

  @Override
  public SeekableByteChannel openRead(String name) throws IOException {
    return FileChannel.open(dir.resolve(name), StandardOpenOption.READ);
  }

  @Override
  public byte[] readAllBytes(String name) throws IOException {
    return Files.readAllBytes(dir.resolve(name));
  }

  @Override
  public Output create(String name) throws IOException {
    FileChannel ch = FileChannel.open(dir.resolve(name), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
    return new Output() {
      @Override
      public void sync() throws IOException {
        ch.force(true);
      }

      @Override
      public int write(ByteBuffer src) throws IOException {
        return ch.write(src);
      }

      @Override
      public boolean isOpen() {
        return ch.isOpen();
      }

      @Override
      public void close() throws IOException {
        ch.close();
      }
    };
  }

  /** A temporary file, forced, renamed over the manifest (atomic replace), the directory forced. */
  @Override
  public void commitManifest(byte[] bytes, long version) throws IOException {
    checkNewer(version);
    Path tmp = dir.resolve(TableFormat.MANIFEST_FILE + ".tmp-" + UUID.randomUUID());
    try {
      try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        ByteBuffer b = ByteBuffer.wrap(bytes);
        while (b.hasRemaining()) {
          ch.write(b);
        }
        ch.force(true);
      } catch (IOException e) {
        if (e instanceof java.nio.file.FileSystemException) {
          throw e; // already names the file
        }
        throw new IOException("Cannot write " + tmp + ": " + e.getMessage(), e);
      }
      Files.move(tmp, dir.resolve(TableFormat.MANIFEST_FILE), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } finally {
      Files.deleteIfExists(tmp);
    }
    forceDirectory();
  }

  private void forceDirectory() {
    try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
      ch.force(true);
    } catch (IOException e) {
      // Some file systems cannot open a directory for reading; the rename is still atomic there.
      LOG.debug("Cannot force directory {}: {}", dir, e.toString());
    }
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof LocalLocation l && l.dir.equals(dir);
  }

  @Override
  public int hashCode() {
    return dir.hashCode();
  }
}
