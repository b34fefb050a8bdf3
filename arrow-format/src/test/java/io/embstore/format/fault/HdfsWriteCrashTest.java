package io.embstore.format.fault;

import io.embstore.format.storage.MiniHdfs;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

/**
 * The write crash test on a real HDFS (MiniDFSCluster in this JVM; the killed writer is a child
 * JVM, an HDFS client like any other): shard files {@code hsync}ed before the manifest, the
 * manifest renamed over the old one with overwrite in the NameNode. A killed writer's open files
 * keep their lease until it expires; the next writer deletes them by name (HDFS lets a client delete
 * a file another client is writing) and the commit's listing removes the rest.
 */
class HdfsWriteCrashTest extends WriteCrashContract {
  @TempDir static Path hdfsDir;
  static MiniHdfs hdfs;

  @BeforeAll
  static void startHdfs() throws Exception {
    hdfs = MiniHdfs.start(hdfsDir);
  }

  @AfterAll
  static void stopHdfs() {
    if (hdfs != null) {
      hdfs.close();
    }
  }

  @Override
  String location(String name) {
    return hdfs.uri("/crash-" + tmp.getFileName() + "/" + name);
  }

  @Override
  int kills() {
    return 12;
  }
}
