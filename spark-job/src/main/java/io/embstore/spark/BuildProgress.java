package io.embstore.spark;

import java.util.Locale;
import org.apache.spark.SparkContext;
import org.apache.spark.util.LongAccumulator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Progress while the vocabulary, the sampler and the encoded corpus are built, before training
 * starts (minutes for a large vocabulary): every few seconds a line with the stage, the tokens
 * counted and the distinct tokens so far, from live accumulator values ({@link LiveAccumulators}),
 * e.g. {@code vocabulary: count tokens (12 s): 48,213,000 tokens counted, 3,100,000 distinct tokens
 * so far}.
 */
final class BuildProgress implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger("io.embstore.spark.train");
  static final String TOKENS = "tokens counted";
  static final String DISTINCT = "distinct tokens so far";
  static final String SENTENCES = "sentences encoded";
  private static final String[] NAMES = {TOKENS, DISTINCT, SENTENCES};

  private final SparkContext sc;
  private final LiveAccumulators live;
  private final LongAccumulator[] counters = new LongAccumulator[NAMES.length];
  /** Index of each counter in the live values. */
  private final int[] tracked = new int[NAMES.length];
  private final boolean quiet;
  private volatile String stage = "read the input";
  private volatile long stageStart = System.nanoTime();

  private BuildProgress(SparkContext sc, double seconds, boolean quiet) {
    this.sc = sc;
    this.quiet = quiet;
    this.live = new LiveAccumulators(sc, seconds, this::log, "embstore-train-build-progress");
  }

  /** Logs every {@code seconds} until closed. */
  static BuildProgress start(SparkContext sc, double seconds) {
    BuildProgress p = new BuildProgress(sc, seconds, false);
    p.live.start();
    return p;
  }

  /** Counts without logging (callers that show no progress). */
  static BuildProgress quiet(SparkContext sc) {
    return new BuildProgress(sc, 1, true);
  }

  void stage(String s) {
    stage = s;
    stageStart = System.nanoTime();
    if (!quiet) {
      LOG.info("vocabulary: {}", s);
    }
  }

  /** The counter named {@code name} (one of this class's constants), created on first use. */
  synchronized LongAccumulator counter(String name) {
    for (int i = 0; i < NAMES.length; i++) {
      if (NAMES[i].equals(name)) {
        if (counters[i] == null) {
          counters[i] = sc.longAccumulator("embstore.train.build." + name.replace(' ', '-'));
          tracked[i] = live.track(counters[i]);
        }
        return counters[i];
      }
    }
    throw new IllegalArgumentException("Cannot count " + name + ": not a build counter");
  }

  void log(String line) {
    if (!quiet) {
      LOG.info(line);
    }
  }

  private synchronized void log() {
    StringBuilder b = new StringBuilder(String.format(Locale.ROOT, "vocabulary: %s (%.0f s)", stage, (System.nanoTime() - stageStart) / 1e9));
    double[] v = live.values();
    String sep = ": ";
    for (int i = 0; i < NAMES.length; i++) {
      if (counters[i] != null) {
        b.append(sep).append(String.format(Locale.ROOT, "%,d %s", (long) v[tracked[i]], NAMES[i]));
        sep = ", ";
      }
    }
    LOG.info(b.toString());
  }

  @Override
  public void close() {
    live.close();
  }
}
