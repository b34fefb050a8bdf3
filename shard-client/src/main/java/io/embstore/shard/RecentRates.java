package io.embstore.shard;

import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * Per-second rates of a few monotonic counters over the last {@link #WINDOW_SECONDS} seconds, for
 * the {@code stats} action: the counters are sampled once a second into a ring, and a rate is the
 * counter's growth from the oldest sample in the ring to now. A server younger than the window
 * gets its rates since it started. One daemon thread samples for every server in the JVM.
 */
final class RecentRates implements AutoCloseable {
  static final int WINDOW_SECONDS = 10;

  private static final ScheduledExecutorService SAMPLER = Executors.newSingleThreadScheduledExecutor(r -> {
    Thread t = new Thread(r, "embstore-stats-sampler");
    t.setDaemon(true);
    return t;
  });

  private final LongSupplier[] counters;
  private final long[] times = new long[WINDOW_SECONDS + 1];
  private final long[][] values;
  private int next;
  private int count;
  private final ScheduledFuture<?> task;

  /** Takes the first sample now, then one a second until closed. */
  static RecentRates start(LongSupplier... counters) {
    return new RecentRates(counters, true);
  }

  /** Without the sampling thread: the caller calls {@link #sample(long)} (tests). */
  static RecentRates manual(LongSupplier... counters) {
    return new RecentRates(counters, false);
  }

  private RecentRates(LongSupplier[] counters, boolean scheduled) {
    this.counters = counters.clone();
    this.values = new long[times.length][counters.length];
    sample(System.nanoTime());
    this.task = scheduled ? SAMPLER.scheduleAtFixedRate(() -> sample(System.nanoTime()), 1, 1, TimeUnit.SECONDS) : null;
  }

  /** Records every counter's value at {@code nanos}, replacing the oldest sample once the ring is full. */
  synchronized void sample(long nanos) {
    times[next] = nanos;
    for (int i = 0; i < counters.length; i++) {
      values[next][i] = counters[i].getAsLong();
    }
    next = (next + 1) % times.length;
    count = Math.min(count + 1, times.length);
  }

  /** Each counter's growth per second from the oldest sample to {@code now} (taken at {@code nanos}). */
  synchronized double[] perSecond(long[] now, long nanos) {
    int oldest = oldest();
    double seconds = (nanos - times[oldest]) / 1e9;
    double[] rates = new double[counters.length];
    if (seconds > 0) {
      for (int i = 0; i < rates.length; i++) {
        rates[i] = (now[i] - values[oldest][i]) / seconds;
      }
    }
    return rates;
  }

  /** Seconds from the oldest sample to {@code nanos}: the window the rates are measured over. */
  synchronized double windowSeconds(long nanos) {
    return (nanos - times[oldest()]) / 1e9;
  }

  /** Where the oldest sample is: slot 0 until the ring has filled, then the one to be replaced next. */
  private int oldest() {
    return count < times.length ? 0 : next;
  }

  @Override
  public void close() {
    if (task != null) {
      task.cancel(false);
    }
  }
}
