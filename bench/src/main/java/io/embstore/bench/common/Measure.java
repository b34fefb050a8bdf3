package io.embstore.bench.common;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntFunction;

/**
 * Timed loops: a warm-up, then {@code reps} timed repetitions of {@code durationMs}; every figure is
 * the median over the repetitions (the machine is shared and noisy, so single runs mislead).
 * Latency is per call, from just before the call to its completion, in microseconds.
 */
public final class Measure {
  private static final int MAX_SAMPLES = 1 << 22;

  public final long warmupMs;
  public final long durationMs;
  public final int reps;

  public Measure(long warmupMs, long durationMs, int reps) {
    this.warmupMs = warmupMs;
    this.durationMs = durationMs;
    this.reps = reps;
  }

  /** One blocking call that moves {@code rowsPerCall} rows. */
  @FunctionalInterface
  public interface Call {
    void run() throws Exception;
  }

  /** Starts one call for in-flight slot {@code slot}; the future completes when it is done. */
  @FunctionalInterface
  public interface AsyncCall {
    CompletableFuture<?> start(int slot);
  }

  /** Median figures of one measured configuration. */
  public record Result(double rowsPerSec, double p50Us, double p99Us, long calls) {
    public double mbPerSec(int rowBytes) {
      return rowsPerSec * rowBytes / 1e6;
    }
  }

  /** Calls in a loop on the current thread. */
  public Result sync(int rowsPerCall, Call call) throws Exception {
    return threads(1, rowsPerCall, t -> call);
  }

  /** {@code n} threads, each calling its own {@code calls.apply(thread)} in a loop; rates add up. */
  public Result threads(int n, int rowsPerCall, IntFunction<Call> calls) throws Exception {
    Call[] c = new Call[n];
    for (int t = 0; t < n; t++) {
      c[t] = calls.apply(t);
    }
    runThreads(c, warmupMs, null);
    List<Result> results = new ArrayList<>();
    for (int r = 0; r < reps; r++) {
      Samples s = new Samples();
      double seconds = runThreads(c, durationMs, s);
      results.add(s.result(rowsPerCall, seconds));
    }
    return median(results);
  }

  private static double runThreads(Call[] calls, long ms, Samples samples) throws Exception {
    int n = calls.length;
    CountDownLatch start = new CountDownLatch(1);
    AtomicReference<Throwable> failure = new AtomicReference<>();
    Thread[] threads = new Thread[n];
    long[] begin = new long[1];
    for (int t = 0; t < n; t++) {
      Call call = calls[t];
      threads[t] =
          new Thread(
              () -> {
                try {
                  start.await();
                  long end = begin[0] + TimeUnit.MILLISECONDS.toNanos(ms);
                  long now = System.nanoTime();
                  while (now < end && failure.get() == null) {
                    call.run();
                    long done = System.nanoTime();
                    if (samples != null) {
                      samples.add(done - now);
                    }
                    now = done;
                  }
                } catch (Throwable e) {
                  failure.compareAndSet(null, e);
                }
              },
              "bench-" + t);
      threads[t].start();
    }
    begin[0] = System.nanoTime();
    start.countDown();
    for (Thread t : threads) {
      t.join();
    }
    double seconds = (System.nanoTime() - begin[0]) / 1e9;
    rethrow(failure.get());
    return seconds;
  }

  /** Keeps {@code window} calls in flight from the current thread; slots 0..window-1 are reused. */
  public Result async(int window, int rowsPerCall, AsyncCall call) throws Exception {
    runAsync(window, call, warmupMs, null);
    List<Result> results = new ArrayList<>();
    for (int r = 0; r < reps; r++) {
      Samples s = new Samples();
      double seconds = runAsync(window, call, durationMs, s);
      results.add(s.result(rowsPerCall, seconds));
    }
    return median(results);
  }

  private static double runAsync(int window, AsyncCall call, long ms, Samples samples) throws Exception {
    ArrayBlockingQueue<Integer> free = new ArrayBlockingQueue<>(window);
    for (int i = 0; i < window; i++) {
      free.add(i);
    }
    AtomicReference<Throwable> failure = new AtomicReference<>();
    long begin = System.nanoTime();
    long end = begin + TimeUnit.MILLISECONDS.toNanos(ms);
    while (System.nanoTime() < end && failure.get() == null) {
      Integer slot = free.poll(100, TimeUnit.MILLISECONDS);
      if (slot == null) {
        continue;
      }
      long t0 = System.nanoTime();
      call.start(slot)
          .whenComplete(
              (v, e) -> {
                if (e != null) {
                  failure.compareAndSet(null, e);
                } else if (samples != null) {
                  samples.add(System.nanoTime() - t0);
                }
                free.add(slot);
              });
    }
    // Drain: the rate counts only calls completed, over the time until the last one completed.
    for (int i = 0; i < window; i++) {
      if (free.poll(60, TimeUnit.SECONDS) == null) {
        throw new IllegalStateException("Cannot finish async run: calls still in flight after 60 s");
      }
    }
    double seconds = (System.nanoTime() - begin) / 1e9;
    rethrow(failure.get());
    return seconds;
  }

  private static void rethrow(Throwable e) throws Exception {
    if (e == null) {
      return;
    }
    if (e instanceof Exception ex) {
      throw ex;
    }
    throw new RuntimeException(e);
  }

  static Result median(List<Result> rs) {
    return new Result(
        median(rs.stream().mapToDouble(Result::rowsPerSec).toArray()),
        median(rs.stream().mapToDouble(Result::p50Us).toArray()),
        median(rs.stream().mapToDouble(Result::p99Us).toArray()),
        rs.stream().mapToLong(Result::calls).sum());
  }

  public static double median(double[] v) {
    double[] s = v.clone();
    Arrays.sort(s);
    int n = s.length;
    return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }

  /** Latencies of one repetition; thread-safe (one lock: uncontended in the blocking loops). */
  static final class Samples {
    private long[] nanos = new long[1 << 16];
    private int count;
    private long calls;

    synchronized void add(long ns) {
      calls++;
      if (count == nanos.length) {
        if (count == MAX_SAMPLES) {
          return;
        }
        nanos = Arrays.copyOf(nanos, Math.min(MAX_SAMPLES, count * 4));
      }
      nanos[count++] = ns;
    }

    synchronized Result result(int rowsPerCall, double seconds) {
      long[] s = Arrays.copyOf(nanos, count);
      Arrays.sort(s);
      int kept = s.length;
      double p50 = kept == 0 ? Double.NaN : s[Math.min(kept - 1, (int) (kept * 0.50))] / 1e3;
      double p99 = kept == 0 ? Double.NaN : s[Math.min(kept - 1, (int) (kept * 0.99))] / 1e3;
      return new Result(calls * (double) rowsPerCall / seconds, p50, p99, calls);
    }
  }

  /** The load average (/proc/loadavg), so a reader can tell a quiet run from a shared one. */
  public static String loadAverage() {
    try {
      return java.nio.file.Files.readString(java.nio.file.Path.of("/proc/loadavg")).trim();
    } catch (java.io.IOException e) {
      return "unknown";
    }
  }
}
