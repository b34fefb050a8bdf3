package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.cli.Cli;
import java.io.PrintWriter;
import java.io.StringWriter;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;

class TrainOptionsTest {
  @Test
  void commandLineBeatsSparkConfWhichBeatsDefaults() {
    SparkConf conf = new SparkConf(false).set("spark.embstore.min-count", "9").set("spark.embstore.dim", "64");
    TrainOptions o = TrainOptions.parse(conf, "--input", "a.txt", "--output", "t", "--dim", "32");
    assertThat(o.dim).isEqualTo(32);
    assertThat(o.minCount).isEqualTo(9);
    assertThat(o.window).isEqualTo(5);
    assertThat(o.sample).isEqualTo(1e-3);
    assertThat(o.optimizer).isEqualTo("sgd");
  }

  @Test
  void prefetchIsOnByDefaultAndSetByFlagOrSparkConf() {
    assertThat(TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t").prefetch).isTrue();
    assertThat(TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t", "--no-prefetch").prefetch).isFalse();
    SparkConf conf = new SparkConf(false).set("spark.embstore.prefetch", "false");
    assertThat(TrainOptions.parse(conf, "--input", "a", "--output", "t").prefetch).isFalse();
    assertThat(TrainOptions.parse(conf, "--input", "a", "--output", "t", "--prefetch").prefetch).isTrue();
  }

  @Test
  void localShardsAreOnByDefaultAndOffByFlagOrSparkConf() {
    assertThat(TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t").localShards).isTrue();
    assertThat(TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t", "--no-local-shards").localShards).isFalse();
    SparkConf conf = new SparkConf(false).set("spark.embstore.local-shards", "false");
    assertThat(TrainOptions.parse(conf, "--input", "a", "--output", "t").localShards).isFalse();
  }

  @Test
  void badValuesAreRejectedNamingTheOptionAndTheLimit() {
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t", "--window", "0"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot use --window: 0 (must be at least 1)");
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t", "--optimizer", "adam"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot use --optimizer: adam (known: sgd, rowwise-adagrad)");
    SparkConf conf = new SparkConf(false).set("spark.embstore.sample", "2");
    assertThatThrownBy(() -> TrainOptions.parse(conf, "--input", "a", "--output", "t"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot use --sample: 2.0 (must be in [0, 1))");
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t", "--max-recoveries", "-1"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot use --max-recoveries: -1 (must be 0 or positive)");
  }

  @Test
  void hierarchicalSoftmaxRunsAloneOrBesideNegativeSamplingWhichNeedsNegatives() {
    TrainOptions hs = TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t", "--hs", "--negatives", "0");
    assertThat(hs.hs).isTrue();
    assertThat(TrainJob.objective(hs)).isEqualTo("hierarchical-softmax");
    assertThat(TrainJob.contextRows(hs, 1000)).isEqualTo(1000);
    TrainOptions both = TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t", "--hs");
    assertThat(TrainJob.objective(both)).isEqualTo("hierarchical-softmax+negative-sampling");
    assertThat(TrainJob.contextRows(both, 1000)).isEqualTo(1999);
    TrainOptions ns = TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t");
    assertThat(TrainJob.objective(ns)).isEqualTo("negative-sampling");
    assertThat(TrainJob.contextRows(ns, 1000)).isEqualTo(1000);
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t", "--negatives", "0"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot use --negatives: 0 (must be at least 1 without --hs)");
  }

  @Test
  void trainCommandReportsABadOptionOnOneLineWithExitOne() {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Cli.run(new TrainCommand(), new PrintWriter(out), new PrintWriter(err),
        "--input", "a.txt", "--output", "t", "--negatives", "-1");
    assertThat(code).isEqualTo(1);
    assertThat(err.toString()).startsWith("embstore train: Cannot use --negatives: -1 (must be in 0..1000)");
  }
}
