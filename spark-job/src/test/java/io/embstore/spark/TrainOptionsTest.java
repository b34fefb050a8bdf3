package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.function.Predicate;
import java.util.stream.Stream;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

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

  static Stream<Arguments> switchesOnByDefault() {
    return Stream.of(
        Arguments.of("prefetch", (Predicate<TrainOptions>) o -> o.prefetch),
        Arguments.of("local-shards", (Predicate<TrainOptions>) o -> o.localShards),
        Arguments.of("shuffle", (Predicate<TrainOptions>) o -> o.shuffle));
  }

  /** Switches that are on by default: {@code --no-NAME} or {@code spark.embstore.NAME=false} turn them off, {@code --NAME} back on. */
  @ParameterizedTest(name = "--{0}")
  @MethodSource("switchesOnByDefault")
  void aSwitchIsOnByDefaultAndSetByFlagOrSparkConf(String name, Predicate<TrainOptions> value) {
    assertThat(value.test(TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t"))).isTrue();
    assertThat(value.test(TrainOptions.parse(new SparkConf(false), "--input", "a", "--output", "t", "--no-" + name))).isFalse();
    SparkConf conf = new SparkConf(false).set("spark.embstore." + name, "false");
    assertThat(value.test(TrainOptions.parse(conf, "--input", "a", "--output", "t"))).isFalse();
    assertThat(value.test(TrainOptions.parse(conf, "--input", "a", "--output", "t", "--" + name))).isTrue();
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
}
