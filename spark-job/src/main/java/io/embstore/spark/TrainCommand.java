package io.embstore.spark;

import io.embstore.format.cli.Subcommand;
import java.util.concurrent.Callable;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * {@code embstore train}: the same job as {@code spark-submit --class io.embstore.spark.TrainJob},
 * in a local-mode Spark inside this JVM (default {@code --master local[2]}).
 */
@Command(
    name = "train",
    mixinStandardHelpOptions = true,
    defaultValueProvider = TrainOptions.SparkConfDefaults.class,
    description = {
      "Trains skip-gram embeddings (word2vec's negative sampling) with Spark, both matrices sharded over shard servers.",
      "Options fall back to Spark conf spark.embstore.<option>, then to the defaults shown."
    })
public final class TrainCommand implements Subcommand, Callable<Integer> {
  @Mixin TrainOptions options;
  @Spec CommandSpec spec;

  @Override
  public int order() {
    return 300;
  }

  @Override
  public Integer call() throws Exception {
    options.validate();
    // Before Spark starts (seconds of start-up): a missing --input fails at once, in one line.
    TrainJob.checkInputs(hadoopConfiguration(new SparkConf()), options.inputs);
    SparkSession spark = localSession(options.master == null ? "local[2]" : options.master);
    try {
      TrainJob.Result r = TrainJob.run(spark, options);
      spec.commandLine().getOut().println(r.summary());
      spec.commandLine().getOut().println("wrote " + options.output + " (table version " + r.output().tableVersion() + ")");
      spec.commandLine().getOut().flush();
      return 0;
    } finally {
      spark.stop();
    }
  }

  /**
   * The Hadoop configuration the session will have: Hadoop's files (class path, {@code
   * HADOOP_CONF_DIR} on it) and every {@code spark.hadoop.*} setting given as a system property.
   */
  static org.apache.hadoop.conf.Configuration hadoopConfiguration(SparkConf conf) {
    org.apache.hadoop.conf.Configuration c = new org.apache.hadoop.conf.Configuration();
    for (scala.Tuple2<String, String> kv : conf.getAllWithPrefix("spark.hadoop.")) {
      c.set(kv._1(), kv._2());
    }
    return c;
  }

  /** A session for one run: UI off, driver on loopback, frequent heartbeats for live progress. */
  static SparkSession localSession(String master) {
    return SparkSession.builder()
        .appName("embstore train")
        .master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.executor.heartbeatInterval", "2s")
        .config("spark.sql.shuffle.partitions", "8")
        .getOrCreate();
  }
}
