package io.embstore.spark;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.apache.spark.SparkContext;
import org.apache.spark.scheduler.AccumulableInfo;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerExecutorMetricsUpdate;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.util.DoubleAccumulator;
import org.apache.spark.util.LongAccumulator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple4;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Training figures as Spark accumulators, with live values: tasks add to them after every
 * mini-batch, executors ship running tasks' values in their heartbeats, and a driver thread logs a
 * line every few seconds from the values of ended tasks (as their end events report them) plus the
 * latest heartbeat of running ones. The final summary reads the merged accumulators.
 */
final class Progress extends SparkListener implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger("io.embstore.spark.train");

  static final int TOKENS = 0;
  static final int PAIRS = 1;
  static final int LOSS_COUNT = 2;
  static final int PULLED = 3;
  static final int PUSHED = 4;
  static final int BATCHES = 5;

  final LongAccumulator[] longs = new LongAccumulator[6];
  final DoubleAccumulator lossSum;
  /** Ended tasks' values; guards {@link #live} and {@link #ended} too. */
  private final double[] counts = new double[7];
  private final Map<Long, double[]> live = new HashMap<>();
  private final Set<Long> ended = new HashSet<>();
  private final SparkContext sc;
  private final Thread reporter;
  private final long totalTokens;
  private final int epochs;
  private volatile long baseTokens;
  private volatile int epoch;
  private volatile boolean closed;
  private final long start = System.nanoTime();
  private double[] last;
  private long lastAt;

  Progress(SparkContext sc, long totalTokens, int epochs, long baseTokens, double seconds) {
    this.sc = sc;
    String[] names = {"tokens", "pairs", "lossPairs", "rowsPulled", "rowsPushed", "batches"};
    for (int i = 0; i < names.length; i++) {
      longs[i] = sc.longAccumulator("embstore.train." + names[i]);
    }
    lossSum = sc.doubleAccumulator("embstore.train.loss");
    this.totalTokens = totalTokens;
    this.epochs = epochs;
    this.baseTokens = baseTokens;
    sc.addSparkListener(this);
    last = values();
    lastAt = System.nanoTime();
    reporter = new Thread(() -> {
      long ms = (long) (seconds * 1000);
      while (!closed) {
        try {
          Thread.sleep(ms);
        } catch (InterruptedException e) {
          return;
        }
        if (!closed) {
          log();
        }
      }
    }, "embstore-train-progress");
    reporter.setDaemon(true);
    reporter.start();
  }

  void epoch(int e) {
    this.epoch = e;
  }

  /** After a recovery to a checkpoint: the {@code tokens} trained since it are trained again. */
  void rewind(long tokens) {
    baseTokens -= tokens;
  }

  @Override
  public void onExecutorMetricsUpdate(SparkListenerExecutorMetricsUpdate update) {
    for (Tuple4<Object, Object, Object, scala.collection.immutable.Seq<AccumulableInfo>> t :
        CollectionConverters.asJava(update.accumUpdates())) {
      long task = (Long) t._1();
      double[] values = new double[7];
      add(values, t._4());
      synchronized (counts) {
        // A heartbeat sent just before its task ended can arrive after the task's end event.
        if (!ended.contains(task)) {
          live.put(task, values);
        }
      }
    }
  }

  @Override
  public void onTaskEnd(SparkListenerTaskEnd end) {
    synchronized (counts) {
      long task = end.taskInfo().taskId();
      live.remove(task);
      ended.add(task);
      // The values Spark merged into the accumulators for this task (none for a failed task or a
      // duplicate of a finished one), set before the event is posted.
      add(counts, end.taskInfo().accumulables());
    }
  }

  private void add(double[] into, scala.collection.Iterable<AccumulableInfo> infos) {
    for (AccumulableInfo info : CollectionConverters.asJava(infos)) {
      int i = index(info.id());
      if (i >= 0 && info.update().isDefined() && info.update().get() instanceof Number) {
        into[i] += ((Number) info.update().get()).doubleValue();
      }
    }
  }

  private int index(long accumulatorId) {
    for (int i = 0; i < longs.length; i++) {
      if (longs[i].id() == accumulatorId) {
        return i;
      }
    }
    return lossSum.id() == accumulatorId ? 6 : -1;
  }

  /**
   * tokens, pairs, lossCount, pulled, pushed, batches, lossSum for the progress line: the ended
   * tasks' values plus the latest heartbeat of running ones, both taken from listener events, so
   * that a task moves from one to the other at once (Spark merges a task's values into the
   * accumulators before the listener hears of its end: reading the accumulators here would count
   * an ending task twice for a moment).
   */
  double[] values() {
    synchronized (counts) {
      double[] v = counts.clone();
      for (double[] task : live.values()) {
        for (int i = 0; i < v.length; i++) {
          v[i] += task[i];
        }
      }
      return v;
    }
  }

  /** The accumulators' values: exact once the training jobs have returned (for the summary). */
  double[] merged() {
    double[] v = new double[7];
    for (int i = 0; i < 6; i++) {
      v[i] = longs[i].value();
    }
    v[6] = lossSum.value();
    return v;
  }

  private synchronized void log() {
    double[] v = values();
    long now = System.nanoTime();
    double dt = (now - lastAt) / 1e9;
    double dLossN = v[LOSS_COUNT] - last[LOSS_COUNT];
    double loss = dLossN > 0 ? (v[6] - last[6]) / dLossN : Double.NaN;
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
        (long) v[TOKENS], secs, v[TOKENS] / secs, (long) v[PAIRS], v[6] / Math.max(1, v[LOSS_COUNT]),
        (long) v[BATCHES], (long) v[PULLED], (long) v[PUSHED]);
  }

  @Override
  public void close() {
    closed = true;
    reporter.interrupt();
    sc.removeSparkListener(this);
  }
}
