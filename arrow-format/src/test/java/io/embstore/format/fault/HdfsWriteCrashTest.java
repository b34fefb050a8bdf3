package io.embstore.format.fault;

import io.embstore.format.storage.MiniHdfs;
import org.junit.jupiter.api.BeforeAll;

/**
 * The write crash test on a real HDFS (MiniDFSCluster in this JVM; the killed writer is a child
 * JVM, an HDFS client like any other): shard files {@code hsync}ed before the manifest, the
 * manifest renamed over the old one with overwrite in the NameNode. A killed writer's open files
 * keep their lease until it expires; the next writer deletes them by name (HDFS lets a client delete
 * a file another client is writing) and the commit's listing removes the rest.
 */
class HdfsWriteCrashTest extends WriteCrashContract {
  static MiniHdfs hdfs;

  @BeforeAll
  static void startHdfs() throws Exception {
    hdfs = MiniHdfs.shared();
  }

  @Override
  String location(String name) {
    return hdfs.uri("/crash-" + tmp.getFileName() + "/" + name);
  }

  @Override
  int kills() {
    return 8;
  }
}
