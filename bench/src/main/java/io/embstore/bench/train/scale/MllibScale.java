package io.embstore.bench.train.scale;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.mllib.feature.Word2Vec;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * Spark MLlib's Word2Vec on the scale run's corpus and vocabulary (every id a word, {@code
 * minCount 1}), in a JVM of its own: prints {@code MLLIB ok SECONDS VOCAB} when it trains, or
 * {@code MLLIB refused CLASS: MESSAGE} with the error it stops with. MLlib collects the vocabulary
 * to its driver and keeps both V x C matrices there, broadcast every iteration; it refuses V x C
 * at or above 2^31 ({@code Please increase minCount or decrease vectorSize ...}).
 *
 * <p>Arguments: CORPUS_DIR (Parquet, {@code tokens array<int>}) DIM.
 */
public final class MllibScale {
  private MllibScale() {}

  public static void main(String[] args) {
    String corpus = args[0];
    int dim = Integer.parseInt(args[1]);
    SparkSession spark = SparkSession.builder().master("local[2]").appName("mllib word2vec scale")
        .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.maxResultSize", "0").getOrCreate();
    spark.sparkContext().setLogLevel("WARN");
    long t0 = System.nanoTime();
    try {
      JavaRDD<List<String>> sentences = spark.read().parquet(corpus).select("tokens").javaRDD().map((Row r) -> {
        List<Integer> ids = r.getList(0);
        List<String> words = new ArrayList<>(ids.size());
        for (int id : ids) {
          words.add("w" + id);
        }
        return words;
      });
      var model = new Word2Vec().setVectorSize(dim).setMinCount(1).setNumPartitions(2).setNumIterations(1).setSeed(1)
          .fit(sentences);
      System.out.printf("MLLIB ok %.1f %d%n", (System.nanoTime() - t0) / 1e9, model.getVectors().size());
    } catch (Throwable e) {
      Throwable root = e;
      while (root.getCause() != null && root.getCause() != root) {
        root = root.getCause();
      }
      StringBuilder where = new StringBuilder();
      StackTraceElement[] st = root.getStackTrace();
      for (int i = 0; i < Math.min(4, st.length); i++) {
        where.append(i == 0 ? "" : " < ").append(st[i].getClassName().replaceFirst(".*\\.", "")).append('.').append(st[i].getMethodName());
      }
      System.out.printf("MLLIB refused %s: %s (after %.1f s, in %s)%n", root.getClass().getName(),
          String.valueOf(root.getMessage()).replace('\n', ' '), (System.nanoTime() - t0) / 1e9, where);
    } finally {
      System.out.flush();
      spark.stop();
    }
  }
}
