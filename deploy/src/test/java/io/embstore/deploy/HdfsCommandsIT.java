package io.embstore.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.permission.FsPermission;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code deploy/local-cluster/hdfs.sh} and the {@code bin/embstore} commands on its HDFS, each a
 * separate process: two instances in two directories side by side, a second start in a running
 * directory refused, a restart keeping the data; import, verify, inspect, reshard and export of
 * {@code hdfs://} tables; and the one-line errors (exit 1, nothing left behind) of an unknown
 * scheme, an unreachable NameNode, a directory without write permission and a missing {@code train
 * --input}.
 */
class HdfsCommandsIT {
  @TempDir Path tmp;
  private final List<Path> started = new ArrayList<>();

  @AfterEach
  void stopAll() throws Exception {
    for (Path dir : started) {
      HdfsClusterIT.hdfs(tmp, "stop", dir);
    }
  }

  private String start(Path dir) throws Exception {
    started.add(dir);
    return HdfsClusterIT.hdfs(tmp, "start", dir);
  }

  private Processes.Result embstore(Map<String, String> env, String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(ClusterEndToEndIT.script("bin/embstore").toString());
    cmd.addAll(List.of(args));
    return Processes.run(tmp, env, Duration.ofMinutes(3), cmd);
  }

  private Processes.Result embstore(String... args) throws Exception {
    return embstore(Map.of(), args);
  }

  /** stderr without the JVM's own notice about the incubator module every Spark 4 JVM adds. */
  static List<String> errorLines(Processes.Result r) {
    return r.err().lines().filter(l -> !l.startsWith("WARNING: Using incubator modules")).toList();
  }

  static Path npy(Path file, int rows, int dim) throws Exception {
    String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + rows + ", " + dim + "), }";
    int pad = 64 - ((10 + dict.length() + 1) % 64);
    ByteBuffer b = ByteBuffer.allocate(10 + dict.length() + 1 + pad + rows * dim * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) (dict.length() + 1 + pad));
    b.put(dict.getBytes(StandardCharsets.US_ASCII));
    for (int i = 0; i < pad; i++) {
      b.put((byte) ' ');
    }
    b.put((byte) '\n');
    java.util.SplittableRandom r = new java.util.SplittableRandom(rows);
    for (int i = 0; i < rows * dim; i++) {
      b.putFloat((float) r.nextDouble(-1, 1));
    }
    Files.write(file, b.array());
    return file;
  }

  @Test
  void twoHdfsInstancesTheCommandsOnThemAndTheirOneLineErrors() throws Exception {
    Path dirA = tmp.resolve("hdfs-a");
    Path dirB = tmp.resolve("hdfs-b");
    String a = start(dirA);
    String b = start(dirB);
    assertThat(a).matches("hdfs://127\\.0\\.0\\.1:[0-9]+").isNotEqualTo(b);
    assertThat(dirA.resolve("hdfs.pid")).exists();
    Processes.Result again = Processes.run(tmp, Map.of(), Duration.ofMinutes(1),
        List.of(ClusterEndToEndIT.script("local-cluster/hdfs.sh").toString(), "start", "--dir", dirA.toString()));
    assertThat(again.exit()).isEqualTo(1);
    assertThat(again.err()).contains("Cannot start HDFS in " + dirA + ": it is running there");

    // import into one instance, reshard into the other, export back: the same bytes.
    Path m = npy(tmp.resolve("m.npy"), 3000, 16);
    String t = a + "/tables/t";
    Processes.Result imported = embstore("import", "--from", "npy", "--input", m.toString(), "--shards", "4", "--output", t);
    assertThat(imported.exit()).as("%s", imported).isZero();
    assertThat(embstore("verify", "--table", t).out()).contains("ok: " + t);
    assertThat(embstore("inspect", "--table", t).out()).contains("3000 rows (V) x 16 dims (C)");
    String r = b + "/resharded";
    Processes.Result resharded = embstore("reshard", "--table", t, "--shards", "7", "--partitioner", "range", "--output", r);
    assertThat(resharded.exit()).as("%s", resharded).isZero();
    Path back = tmp.resolve("back.npy");
    assertThat(embstore("export", "--to", "npy", "--table", r, "--output", back.toString()).exit()).isZero();
    assertThat(Files.readAllBytes(back)).isEqualTo(Files.readAllBytes(m));

    // A restart in the same directory keeps the data (under a new port).
    HdfsClusterIT.hdfs(tmp, "stop", dirA);
    assertThat(dirA.resolve("hdfs.pid")).as("pid file after stop").doesNotExist();
    String a2 = HdfsClusterIT.hdfs(tmp, "start", dirA);
    String t2 = a2 + "/tables/t";
    assertThat(embstore("verify", "--table", t2).out()).contains("ok: " + t2);

    // One-line errors, exit 1, nothing left behind.
    Processes.Result unknown = embstore("verify", "--table", "nosuchfs://host/t");
    assertThat(unknown.exit()).isEqualTo(1);
    assertThat(errorLines(unknown)).singleElement().asString()
        .startsWith("embstore verify: Cannot open table nosuchfs://host/t: unknown storage scheme 'nosuchfs'");
    long t0 = System.nanoTime();
    Processes.Result unreachable = embstore("import", "--from", "npy", "--input", m.toString(), "--shards", "2",
        "--output", "hdfs://127.0.0.1:1/t");
    long millis = (System.nanoTime() - t0) / 1_000_000;
    assertThat(unreachable.exit()).isEqualTo(1);
    assertThat(errorLines(unreachable)).singleElement().asString()
        .startsWith("embstore import: Cannot reach hdfs://127.0.0.1:1/t: ").contains("Connection refused");
    System.out.printf("import into an unreachable NameNode: exit 1 after %d ms (JVM start included)%n", millis);

    try (FileSystem fs = FileSystem.newInstance(URI.create(a2), new Configuration())) {
      fs.mkdirs(new org.apache.hadoop.fs.Path("/locked"));
      fs.setPermission(new org.apache.hadoop.fs.Path("/locked"), new FsPermission((short) 0755));
      Map<String, String> alice = new HashMap<>(Map.of("HADOOP_USER_NAME", "alice"));
      Processes.Result denied = embstore(alice, "import", "--from", "npy", "--input", m.toString(), "--shards", "2",
          "--output", a2 + "/locked/t");
      assertThat(denied.exit()).isEqualTo(1);
      assertThat(errorLines(denied)).singleElement().asString()
          .startsWith("embstore import: Cannot create " + a2 + "/locked/t: ").contains("Permission denied").contains("user=alice");
      assertThat(fs.listStatus(new org.apache.hadoop.fs.Path("/locked"))).isEmpty();
    }

    Path missing = tmp.resolve("no-such-corpus.txt");
    t0 = System.nanoTime();
    Processes.Result train = embstore("train", "--input", missing.toString(), "--output", tmp.resolve("never").toString());
    millis = (System.nanoTime() - t0) / 1_000_000;
    assertThat(train.exit()).isEqualTo(1);
    assertThat(errorLines(train)).containsExactly("embstore train: Cannot read --input " + missing + ": no such file or directory");
    assertThat(tmp.resolve("never")).doesNotExist();
    System.out.printf("train --input of a missing file: one line, exit 1 after %d ms (JVM start included; Spark never starts)%n", millis);
  }
}
