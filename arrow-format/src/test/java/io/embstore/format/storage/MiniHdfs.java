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
        .checkDataNodeHostConfig(true)
        .build();
    c.waitActive();
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
}
