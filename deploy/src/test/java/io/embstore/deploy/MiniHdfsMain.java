package io.embstore.deploy;

import io.embstore.format.storage.MiniHdfs;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.CountDownLatch;

/**
 * The process that {@code deploy/local-cluster/hdfs.sh} runs: a single-node HDFS (NameNode and
 * DataNode in this JVM, from {@code hadoop-client-minicluster}) on 127.0.0.1 with ports chosen by
 * the OS and its data under {@code DATA_DIR} (formatted on the first start, kept across restarts).
 * Once a file can be written and read back it writes {@code hdfs://127.0.0.1:PORT} to {@code
 * URI_FILE} (atomically) and runs until SIGTERM, which shuts both down keeping the data.
 *
 * <p>Arguments: {@code DATA_DIR URI_FILE}.
 */
public final class MiniHdfsMain {
  private MiniHdfsMain() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: MiniHdfsMain DATA_DIR URI_FILE");
      System.exit(2);
    }
    Path data = Path.of(args[0]).toAbsolutePath();
    Path uriFile = Path.of(args[1]).toAbsolutePath();
    // Formatted once: a marker written after the first start that took writes.
    Path formatted = data.resolve(".formatted");
    boolean format = !Files.exists(formatted);
    Files.createDirectories(data);
    MiniHdfs hdfs = MiniHdfs.start(data, format);
    Files.writeString(formatted, hdfs.uri() + "\n", StandardCharsets.UTF_8);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      hdfs.stopKeepingData();
      stopped.countDown();
    }, "minihdfs-stop"));
    Path tmp = uriFile.resolveSibling(uriFile.getFileName() + ".tmp");
    Files.writeString(tmp, hdfs.uri() + "\n", StandardCharsets.UTF_8);
    Files.move(tmp, uriFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    System.out.println("HDFS ready at " + hdfs.uri() + " (data in " + data + (format ? ", formatted" : ", kept") + ")");
    stopped.await();
  }
}
