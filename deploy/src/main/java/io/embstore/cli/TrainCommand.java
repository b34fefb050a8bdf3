package io.embstore.cli;

import io.embstore.spark.TrainJob;
import io.embstore.spark.TrainOptions;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * {@code embstore train}: the same job as {@code spark-submit --class io.embstore.spark.TrainJob},
 * in a local-mode Spark inside this JVM (default {@code --master local[2]}; {@link
 * TrainJob#runHere}).
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
    TrainJob.Result r = TrainJob.runHere(options);
    spec.commandLine().getOut().println(r.summary());
    spec.commandLine().getOut().println("wrote " + options.output() + " (table version " + r.output().tableVersion() + ")");
    spec.commandLine().getOut().flush();
    return 0;
  }
}
