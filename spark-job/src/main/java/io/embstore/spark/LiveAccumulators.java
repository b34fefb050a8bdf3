package io.embstore.spark;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.apache.spark.SparkContext;
import org.apache.spark.scheduler.AccumulableInfo;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerExecutorMetricsUpdate;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.util.AccumulatorV2;
import scala.Tuple4;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Live values of some accumulators while their jobs run: tasks add to them as they go, executors
 * ship running tasks' values in their heartbeats ({@code spark.executor.heartbeatInterval}), and
 * the value read here is the ended tasks' values (as their end events report them) plus the latest
 * heartbeat of each running task. Spark merges a task's values into the accumulators before the
 * listener hears of its end, so reading the accumulators themselves would count an ending task
 * twice for a moment. A thread calls {@code tick} every few seconds until {@link #close}.
 */
final class LiveAccumulators extends SparkListener implements AutoCloseable {
  static final int MAX = 16;
  private final SparkContext sc;
  /** Accumulator id to index; guarded by {@link #ended}, like the values. */
  private final Map<Long, Integer> index = new HashMap<>();
  private final double[] ended = new double[MAX];
  private final Map<Long, double[]> live = new HashMap<>();
  private final Set<Long> endedTasks = new HashSet<>();
  private final Thread ticker;
  private volatile boolean closed;

  LiveAccumulators(SparkContext sc, double seconds, Runnable tick, String name) {
    this.sc = sc;
    ticker = new Thread(() -> {
      long ms = (long) (seconds * 1000);
      while (!closed) {
        try {
          Thread.sleep(ms);
        } catch (InterruptedException e) {
          return;
        }
        if (!closed) {
          tick.run();
        }
      }
    }, name);
    ticker.setDaemon(true);
  }

  /** Starts listening and the thread that ticks. */
  LiveAccumulators start() {
    sc.addSparkListener(this);
    ticker.start();
    return this;
  }

  /** Tracks {@code a}; returns its index in {@link #values}. */
  int track(AccumulatorV2<?, ?> a) {
    synchronized (ended) {
      Integer i = index.get(a.id());
      if (i == null) {
        if (index.size() == MAX) {
          throw new IllegalStateException("Cannot track accumulator " + a.name() + ": " + MAX + " tracked already");
        }
        i = index.size();
        index.put(a.id(), i);
      }
      return i;
    }
  }

  @Override
  public void onExecutorMetricsUpdate(SparkListenerExecutorMetricsUpdate update) {
    for (Tuple4<Object, Object, Object, scala.collection.immutable.Seq<AccumulableInfo>> t :
        CollectionConverters.asJava(update.accumUpdates())) {
      long task = (Long) t._1();
      double[] values = new double[MAX];
      synchronized (ended) {
        add(values, t._4());
        // A heartbeat sent just before its task ended can arrive after the task's end event.
        if (!endedTasks.contains(task)) {
          live.put(task, values);
        }
      }
    }
  }

  @Override
  public void onTaskEnd(SparkListenerTaskEnd end) {
    synchronized (ended) {
      long task = end.taskInfo().taskId();
      live.remove(task);
      endedTasks.add(task);
      // The values Spark merged into the accumulators for this task (none for a failed task or a
      // duplicate of a finished one), set before the event is posted.
      add(ended, end.taskInfo().accumulables());
    }
  }

  private void add(double[] into, scala.collection.Iterable<AccumulableInfo> infos) {
    for (AccumulableInfo info : CollectionConverters.asJava(infos)) {
      Integer i = index.get(info.id());
      if (i != null && info.update().isDefined() && info.update().get() instanceof Number) {
        into[i] += ((Number) info.update().get()).doubleValue();
      }
    }
  }

  /** Ended tasks' values plus the latest heartbeat of running ones, by {@link #track} index. */
  double[] values() {
    synchronized (ended) {
      double[] v = ended.clone();
      for (double[] task : live.values()) {
        for (int i = 0; i < v.length; i++) {
          v[i] += task[i];
        }
      }
      return v;
    }
  }

  @Override
  public void close() {
    closed = true;
    ticker.interrupt();
    sc.removeSparkListener(this);
  }
}
