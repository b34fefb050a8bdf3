package io.embstore.spark;

import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
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
 * line every few seconds from the merged values of finished tasks plus the latest heartbeat of
 * running ones.
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
  private final Map<Long, Map<Long, Double>> live = new ConcurrentHashMap<>();
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
      Map<Long, Double> values = new ConcurrentHashMap<>();
      for (AccumulableInfo info : CollectionConverters.asJava(t._4())) {
        if (info.update().isDefined() && info.update().get() instanceof Number) {
          values.put(info.id(), ((Number) info.update().get()).doubleValue());
        }
      }
      live.put(task, values);
    }
  }

  @Override
  public void onTaskEnd(SparkListenerTaskEnd end) {
    live.remove(end.taskInfo().taskId());
  }

  /** tokens, pairs, lossCount, pulled, pushed, batches, lossSum: merged plus live. */
  double[] values() {
    double[] v = new double[7];
    for (int i = 0; i < 6; i++) {
      v[i] = longs[i].value();
    }
    v[6] = lossSum.value();
    for (Map<Long, Double> task : live.values()) {
      for (int i = 0; i < 6; i++) {
        v[i] += task.getOrDefault(longs[i].id(), 0.0);
      }
      v[6] += task.getOrDefault(lossSum.id(), 0.0);
    }
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
    double[] v = values();
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
