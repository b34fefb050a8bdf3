package io.embstore.shard;

import io.embstore.format.TableLocation;
import io.embstore.format.TableStorage;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * Where a server's {@code snapshot} action may write: one directory and everything below it. On a
 * local disk the requested directory must lie below the root lexically (absolute, normalised) and
 * again with symbolic links resolved, and the real path is what gets written; on cluster storage
 * ({@code hdfs:}, {@code s3a:}, which have no links the server follows) the URI must have the root's
 * scheme and authority and a path at or below the root's. Anything else is UNAUTHORIZED (gRPC
 * PERMISSION_DENIED) and nothing is written.
 */
final class SnapshotRoot {
  private final TableLocation root;
  /** Local roots: the real path (created when missing) and the path as given; null elsewhere. */
  private final Path real;
  private final Path given;

  private SnapshotRoot(TableLocation root, Path real, Path given) {
    this.root = root;
    this.real = real;
    this.given = given;
  }

  static SnapshotRoot of(TableLocation root) throws IOException {
    if (!root.isLocal()) {
      return new SnapshotRoot(root, null, null);
    }
    Path dir = root.localPath().toAbsolutePath().normalize();
    Files.createDirectories(dir);
    return new SnapshotRoot(root, dir.toRealPath(), dir);
  }

  /** {@code dir} (as {@code requested} named it) if it lies below the root, else UNAUTHORIZED. */
  TableLocation confine(String requested, TableLocation dir, TableStorage storage) {
    if (real != null) {
      if (!dir.isLocal()) {
        throw outside(requested);
      }
      Path p = dir.localPath().toAbsolutePath().normalize();
      if (!p.startsWith(real) && !p.startsWith(given)) {
        throw outside(requested);
      }
      Path resolved;
      try {
        resolved = p.toRealPath();
      } catch (NoSuchFileException e) {
        throw ShardErrors.invalid("Cannot snapshot to " + requested + ": no such directory");
      } catch (IOException e) {
        throw ShardErrors.invalid("Cannot snapshot to " + requested + ": " + e.getMessage());
      }
      if (!resolved.startsWith(real)) {
        throw outside(requested + " (" + resolved + ")");
      }
      return storage.location(resolved);
    }
    URI r = URI.create(root.uri()).normalize();
    URI d;
    try {
      d = URI.create(dir.uri()).normalize();
    } catch (IllegalArgumentException e) {
      throw outside(requested);
    }
    String rp = r.getPath() == null ? "/" : r.getPath().endsWith("/") ? r.getPath() : r.getPath() + "/";
    String dp = d.getPath() == null ? "" : d.getPath().endsWith("/") ? d.getPath() : d.getPath() + "/";
    boolean sameStore = r.getScheme() != null && r.getScheme().equalsIgnoreCase(d.getScheme())
        && java.util.Objects.equals(r.getRawAuthority(), d.getRawAuthority());
    if (!sameStore || !dp.startsWith(rp) || dp.contains("/../")) {
      throw outside(requested);
    }
    return dir;
  }

  private RuntimeException outside(String requested) {
    return ShardErrors.unauthorized("Cannot snapshot to " + requested + ": outside " + (real != null ? real : root.uri())
        + " (this server writes snapshots only below it)");
  }
}
