package io.embstore.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.storage.S3Fixture;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * On S3 the manifest commit is one conditional PUT: {@code If-Match} the etag of the manifest the
 * writer checked, or {@code If-None-Match: *} for a new table. A second writer that commits between
 * another's check and PUT makes that PUT fail (HTTP 412) instead of being silently replaced: here
 * the race is staged by committing with the etag of a manifest that has changed since.
 */
class S3ConditionalCommitTest {
  @TempDir Path dir;

  @Test
  void aCommitBasedOnAReplacedManifestIsRefused() throws Exception {
    S3Fixture s3 = S3Fixture.shared();
    try (BufferAllocator allocator = new RootAllocator()) {
      TableStorage storage = s3.storage();
      String uri = "s3a://" + S3Fixture.BUCKET + "/cas-" + dir.getFileName() + "/t";
      HadoopLocation loc = (HadoopLocation) storage.location(uri);
      TestMatrices.write(loc, TestMatrices.random(100, 4, 1), 100, 4, 2, "modulo", allocator);
      FileSystem fs = FileSystem.get(java.net.URI.create(uri), s3.conf());
      FileStatus seenByA = fs.getFileStatus(new org.apache.hadoop.fs.Path(uri + "/manifest.json"));

      // Writer B commits version 2 after A has read version 1's manifest...
      TableManifest v1 = Table.open(loc).manifest();
      TableWriter.commit(loc, v1.toBuilder().tableVersion(2).property("writer", "B").build());
      // ...so A's PUT of its version 2, conditional on the etag A saw, fails and B's stays.
      byte[] a = v1.toBuilder().tableVersion(2).property("writer", "A").build().toJson();
      assertThatThrownBy(() -> loc.writeInPlace(a, seenByA))
          .isInstanceOf(FileAlreadyExistsException.class)
          .hasMessageContaining("Cannot commit " + uri + ": the manifest changed since it was read (another writer committed first)");
      assertThat(Table.open(loc).manifest().properties()).containsEntry("writer", "B");

      // A new table's PUT carries If-None-Match: a manifest already there is never replaced by it.
      assertThatThrownBy(() -> loc.writeInPlace(a, null))
          .isInstanceOf(FileAlreadyExistsException.class)
          .hasMessageContaining("another writer committed first");
      assertThat(Table.open(loc).manifest().properties()).containsEntry("writer", "B");
    }
  }
}
