package io.embstore.format.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.Matrices;
import io.embstore.format.Table;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The storage contract on S3: Adobe S3Mock in this JVM, reached through Hadoop's S3AFileSystem
 * (hadoop-aws with the AWS SDK v2 modules), path-style, at the endpoint the test core-site.xml
 * gives the test buckets. No rename there: manifests are committed by one conditional PUT. Plus
 * S3's own bad input: a bucket that does not exist.
 */
class S3StorageTest extends TableStorageContract {
  static final String BUCKET = S3Fixture.BUCKET;
  private static int n;

  @BeforeAll
  static void startS3() throws Exception {
    S3Fixture.shared();
  }

  @Override
  String table(String name) {
    return "s3a://" + BUCKET + "/tables/" + name + "-" + (n++);
  }

  @Test
  void aMissingBucketIsOneLineNamingTheUri() throws Exception {
    Path npy = Matrices.npy(tmp.resolve("m.npy"), io.embstore.format.TestMatrices.random(10, 2, 1), 10, 2);
    String uri = "s3a://no-such-bucket/t";
    assertThatThrownBy(() -> importNpy(npy, null, 2, uri))
        .satisfies(e -> assertThat(messages(e)).startsWith("Cannot reach " + uri + ": ").containsIgnoringCase("bucket"));
    assertThatThrownBy(() -> Table.open(uri).verify(allocator))
        .satisfies(e -> assertThat(messages(e)).startsWith("Cannot reach " + uri + ": "));
  }
}
