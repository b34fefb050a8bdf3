package io.embstore.spark;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.zip.GZIPInputStream;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;

/** One local[2] SparkSession per test class: UI off, driver on 127.0.0.1. */
public abstract class SparkTestBase {
  protected static SparkSession spark;

  @BeforeAll
  static void startSpark() {
    spark = TrainJob.localSession("local[2]");
  }

  @AfterAll
  static void stopSpark() {
    if (spark != null) {
      spark.stop();
      spark = null;
    }
  }

  public static Path sharedDir() {
    String dir = System.getProperty("embstore.shared.dir");
    if (dir == null) {
      dir = Paths.get(System.getProperty("embstore.repo.dir", "."), "..", "shared").toString();
    }
    return Paths.get(dir);
  }

  /** The first {@code tokens} tokens of prose4, as lines of 1,000 tokens; skips without the data. */
  public static Path proseSlice(Path dir, int tokens) throws IOException {
    Path gz = sharedDir().resolve("data/corpus/prose4.txt.gz");
    Assumptions.assumeTrue(Files.isReadable(gz), "needs " + gz + " (the shared data dir)");
    Path out = dir.resolve("prose-" + tokens + ".txt");
    try (InputStream in = new GZIPInputStream(Files.newInputStream(gz), 1 << 16);
        OutputStream o = new java.io.BufferedOutputStream(Files.newOutputStream(out), 1 << 16)) {
      byte[] buf = new byte[1 << 16];
      int words = 0;
      int n;
      outer:
      while ((n = in.read(buf)) > 0) {
        for (int i = 0; i < n; i++) {
          byte b = buf[i];
          if (b == ' ' || b == '\n') {
            words++;
            o.write(words % 1000 == 0 ? '\n' : ' ');
            if (words >= tokens) {
              break outer;
            }
          } else {
            o.write(b);
          }
        }
      }
    }
    return out;
  }
}
