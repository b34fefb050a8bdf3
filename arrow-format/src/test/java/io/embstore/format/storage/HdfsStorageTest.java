package io.embstore.format.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.embstore.format.Matrices;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TestMatrices;
import java.nio.file.Path;
import java.security.PrivilegedExceptionAction;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.security.UserGroupInformation;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The storage contract on a real HDFS (MiniDFSCluster: NameNode and DataNode in this JVM, on
 * 127.0.0.1), plus HDFS's own bad input: an unreachable NameNode, an unknown scheme, a directory
 * the user may not write, each an error naming the URI, nothing left behind (the commands' one-line
 * errors on HDFS: deploy's {@code HdfsCommandsIT}).
 */
class HdfsStorageTest extends TableStorageContract {
  static MiniHdfs hdfs;
  private static int n;

  @BeforeAll
  static void startHdfs() throws Exception {
    hdfs = MiniHdfs.shared();
  }

  @Override
  String table(String name) {
    return hdfs.uri("/tables/" + name + "-" + (n++));
  }

  @Test
  void anUnreachableNameNodeFailsInOneLineNamingTheUri() throws Exception {
    // Port 1 on loopback: nothing listens there, so every connection is refused at once.
    String uri = "hdfs://127.0.0.1:1/t";
    long t0 = System.nanoTime();
    Throwable e = catchThrowable(() -> Table.open(uri).verify(allocator));
    long millis = (System.nanoTime() - t0) / 1_000_000;
    assertThat(messages(e)).startsWith("Cannot reach " + uri + ": ").contains("Connection refused");
    System.out.printf("verify of %s failed after %d ms: %s%n", uri, millis, messages(e));
  }

  @Test
  void anUnknownSchemeIsOneLine() {
    assertThatThrownBy(() -> Table.open("nosuchfs://host/t").verify(allocator))
        .satisfies(e -> assertThat(messages(e)).startsWith("Cannot open table nosuchfs://host/t: unknown storage scheme 'nosuchfs'"));
  }

  @Test
  void aDirectoryWithoutWritePermissionIsRefusedAndNothingIsLeft() throws Exception {
    FileSystem fs = hdfs.fileSystem();
    org.apache.hadoop.fs.Path locked = new org.apache.hadoop.fs.Path("/locked");
    fs.mkdirs(locked);
    fs.setPermission(locked, new FsPermission((short) 0755));
    Path npy = Matrices.npy(tmp.resolve("m.npy"), TestMatrices.random(10, 2, 1), 10, 2);
    String uri = hdfs.uri("/locked/t");
    // Another user than the one who started HDFS (its superuser, whom permissions do not stop).
    UserGroupInformation alice = UserGroupInformation.createRemoteUser("alice");
    Throwable e = alice.doAs((PrivilegedExceptionAction<Throwable>) () -> catchThrowable(() -> importNpy(npy, null, 2, uri)));
    assertThat(messages(e)).startsWith("Cannot create " + uri + ": ").contains("Permission denied").contains("user=alice");
    assertThat(fs.listStatus(locked)).isEmpty();
    assertThat(TableLocation.of(uri).exists()).isFalse();
  }
}
