package io.embstore.spark;

import java.util.Locale;
import org.apache.spark.SparkContext;
import org.apache.spark.util.DoubleAccumulator;
import org.apache.spark.util.LongAccumulator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Training figures as Spark accumulators, with live values ({@link LiveAccumulators}): tasks add to
 * them after every mini-batch, and a driver thread logs a line every few seconds. The final summary
 * reads the merged accumulators.
 */
final class Progress implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger("io.embstore.spark.train");

  static final int TOKENS = 0;
  static final int PAIRS = 1;
  static final int LOSS_COUNT = 2;
  static final int PULLED = 3;
  static final int PUSHED = 4;
  static final int BATCHES = 5;
  /** Partition attempts that trained a partition again after a failed attempt (see {@code TrainTask#train}). */
  static final int RETRIED = 6;
  /** Rows pulled and pushed by the routing clients in process and over Arrow Flight ({@code EmbeddingClient#rowCounts}). */
  static final int ROWS_IN_PROCESS = 7;
  static final int ROWS_OVER_FLIGHT = 8;
  static final int LOSS = 9;

  final LongAccumulator[] longs = new LongAccumulator[9];
  final DoubleAccumulator lossSum;
  private final LiveAccumulators live;
  private final long totalTokens;
  private final int epochs;
  private volatile long baseTokens;
  private volatile int epoch;
  private final long start = System.nanoTime();
  private double[] last;
  private long lastAt;

  Progress(SparkContext sc, long totalTokens, int epochs, long baseTokens, double seconds) {
    this.live = new LiveAccumulators(sc, seconds, this::log, "embstore-train-progress");
    String[] names = {"tokens", "pairs", "lossPairs", "rowsPulled", "rowsPushed", "batches", "retriedPartitions",
        "rowsInProcess", "rowsOverFlight"};
    for (int i = 0; i < names.length; i++) {
      longs[i] = sc.longAccumulator("embstore.train." + names[i]);
      live.track(longs[i]);
    }
    lossSum = sc.doubleAccumulator("embstore.train.loss");
    live.track(lossSum);
    this.totalTokens = totalTokens;
    this.epochs = epochs;
    this.baseTokens = baseTokens;
    last = values();
    lastAt = System.nanoTime();
    live.start();
  }

  void epoch(int e) {
    this.epoch = e;
  }

  /** After a recovery to a checkpoint: the {@code tokens} trained since it are trained again. */
  void rewind(long tokens) {
    baseTokens -= tokens;
  }

  /**
   * tokens, pairs, lossCount, pulled, pushed, batches, retried, rows in process, rows over Flight,
   * lossSum for the progress line: live
   * values (see {@link LiveAccumulators}).
   */
  double[] values() {
    return live.values();
  }

  /** The accumulators' values: exact once the training jobs have returned (for the summary). */
  double[] merged() {
    double[] v = new double[LOSS + 1];
    for (int i = 0; i < longs.length; i++) {
      v[i] = longs[i].value();
    }
    v[LOSS] = lossSum.value();
    return v;
  }

  private synchronized void log() {
    double[] v = values();
    long now = System.nanoTime();
    double dt = (now - lastAt) / 1e9;
    double dLossN = v[LOSS_COUNT] - last[LOSS_COUNT];
    double loss = dLossN > 0 ? (v[LOSS] - last[LOSS]) / dLossN : Double.NaN;
    double done = (baseTokens + v[TOKENS]) / Math.max(1.0, (double) totalTokens * epochs);
    String line = String.format(Locale.ROOT,
        "epoch %d/%d  %5.1f%% done  %,.0f tokens/s  loss %.4f  pulled %,.0f rows/s  pushed %,.0f rows/s",
        epoch + 1, epochs, 100 * Math.min(1.0, done), (v[TOKENS] - last[TOKENS]) / dt, loss,
        (v[PULLED] - last[PULLED]) / dt, (v[PUSHED] - last[PUSHED]) / dt);
    LOG.info(line);
    last = v;
    lastAt = now;
  }

  /** The final summary line. */
  String summary() {
    double[] v = merged();
    double secs = (System.nanoTime() - start) / 1e9;
    return String.format(Locale.ROOT,
        "trained %,d tokens in %.1f s (%,.0f tokens/s), %,d pairs, mean loss %.4f, %,d batches, "
            + "%,d rows pulled, %,d rows pushed",
        (long) v[TOKENS], secs, v[TOKENS] / secs, (long) v[PAIRS], v[LOSS] / Math.max(1, v[LOSS_COUNT]),
        (long) v[BATCHES], (long) v[PULLED], (long) v[PUSHED])
        + routes(v[ROWS_IN_PROCESS], v[ROWS_OVER_FLIGHT])
        + (v[RETRIED] == 0 ? "" : String.format(Locale.ROOT,
            ", %,d partitions trained again by a retried task (the failed attempts' pushes stay applied)", (long) v[RETRIED]));
  }

  /**
   * The summary's part on where the routing clients' rows went, empty when the matrices were not
   * reached through a routing client (heap matrices).
   */
  static String routes(double inProcess, double overFlight) {
    double all = inProcess + overFlight;
    return all == 0 ? "" : String.format(Locale.ROOT, "; rows pulled+pushed: %,d in process, %,d over Flight (%.1f %% over Flight)",
        (long) inProcess, (long) overFlight, 100 * overFlight / all);
  }

  @Override
  public void close() {
    live.close();
  }
}
