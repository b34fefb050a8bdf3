package io.embstore.format.storage;

import io.embstore.format.TableStorage;
import java.io.IOException;
import java.nio.file.Path;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.MiniDFSCluster;

/**
 * A real HDFS in the test JVM: a NameNode and one DataNode ({@code MiniDFSCluster} from {@code
 * hadoop-client-minicluster}, the Hadoop version Spark brings), on 127.0.0.1 with ports chosen by
 * the OS, data under a directory of the test. Closing shuts both down.
 */
public final class MiniHdfs implements AutoCloseable {
  private final MiniDFSCluster cluster;
  private final String uri;
  private static MiniHdfs shared;

  private MiniHdfs(MiniDFSCluster cluster) throws IOException {
    this.cluster = cluster;
    this.uri = "hdfs://127.0.0.1:" + cluster.getNameNodePort();
  }

  /** Starts NameNode + DataNode with their data under {@code baseDir}; returns once HDFS takes writes. */
  public static MiniHdfs start(Path baseDir) throws IOException {
    return start(baseDir, true);
  }

  /**
   * Starts NameNode + DataNode with their data under {@code baseDir}, formatting it first or, with
   * {@code format} false, keeping what a previous start left there; returns once a file can be
   * written and read back.
   */
  public static MiniHdfs start(Path baseDir, boolean format) throws IOException {
    Configuration conf = new Configuration();
    conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, baseDir.toAbsolutePath().toString());
    conf.set("dfs.namenode.rpc-address", "127.0.0.1:0");
    conf.set("dfs.namenode.http-address", "127.0.0.1:0");
    conf.set("dfs.datanode.address", "127.0.0.1:0");
    conf.set("dfs.datanode.http.address", "127.0.0.1:0");
    conf.set("dfs.datanode.ipc.address", "127.0.0.1:0");
    conf.setInt("dfs.replication", 1);
    conf.setBoolean("dfs.permissions.enabled", true);
    // A single DataNode: nothing to replace on a pipeline failure.
    conf.set("dfs.client.block.write.replace-datanode-on-failure.policy", "NEVER");
    MiniDFSCluster c = new MiniDFSCluster.Builder(conf, baseDir.toFile())
        .numDataNodes(1)
        .nameNodePort(0)
        .format(format)
        .checkDataNodeHostConfig(true)
        .build();
    try {
      c.waitActive();
      // Ready means writable: a file written, closed and read back.
      FileSystem fs = c.getFileSystem();
      org.apache.hadoop.fs.Path probe = new org.apache.hadoop.fs.Path("/.minihdfs-probe");
      try (var out = fs.create(probe, true)) {
        out.write(42);
      }
      try (var in = fs.open(probe)) {
        if (in.read() != 42) {
          throw new IOException("Cannot start HDFS under " + baseDir + ": a probe file did not read back");
        }
      }
      fs.delete(probe, false);
    } catch (IOException | RuntimeException e) {
      c.shutdown();
      throw e;
    }
    return new MiniHdfs(c);
  }

  /**
   * One HDFS for every test class of this JVM that asks (starting one takes seconds), under a
   * temporary directory; shut down and deleted when the JVM exits.
   */
  public static synchronized MiniHdfs shared() throws IOException {
    if (shared == null) {
      Path base = java.nio.file.Files.createTempDirectory("embstore-minihdfs");
      MiniHdfs h = start(base);
      Runtime.getRuntime().addShutdownHook(new Thread(h::close, "minihdfs-shutdown"));
      shared = h;
    }
    return shared;
  }

  /** {@code hdfs://127.0.0.1:PORT}. */
  public String uri() {
    return uri;
  }

  /** {@code hdfs://127.0.0.1:PORT/path} (path starts with '/'). */
  public String uri(String path) {
    return uri + path;
  }

  /** A client configuration for this HDFS (what a core-site.xml with fs.defaultFS would give). */
  public Configuration clientConf() {
    Configuration conf = new Configuration();
    conf.set("fs.defaultFS", uri);
    conf.set("dfs.client.block.write.replace-datanode-on-failure.policy", "NEVER");
    return conf;
  }

  public TableStorage storage() {
    return TableStorage.hadoop(clientConf());
  }

  /** The file system as the test's (super)user. */
  public FileSystem fileSystem() throws IOException {
    return cluster.getFileSystem();
  }

  @Override
  public void close() {
    cluster.shutdown(true);
  }

  /** Stops NameNode and DataNode, keeping their data (a later start without format finds it). */
  public void stopKeepingData() {
    cluster.shutdown(false);
  }
}
