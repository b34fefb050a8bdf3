package io.embstore.spark;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The slot lookups of one mini-batch's plan ({@link SkipGram}): {@value #LOOKUPS} ids as the
 * output map of a 16 k-token prose4 batch sees them (centers and unigram^0.75 negatives over a Zipf
 * vocabulary of {@code vocab} ids numbered by descending count, about 25 k distinct), each mapped
 * to its slot, the map cleared per batch. {@code map} = the current {@link LongIntMap} (ids below
 * {@link LongIntMap#DIRECT} in a direct table, the rest hashed with key and stamp in one cache
 * line) or {@code before} (the map before issue 20: three arrays, every id hashed, copied here);
 * {@code draw} = the unigram^0.75 draws alone, {@code drawThenSlot} = a draw and its slot, as the
 * plan does per negative. Figures are nanoseconds per lookup (or draw).
 *
 * <p>Run it with {@code bench/run jmh spark-job SlotMapBench} (never run by the tests).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx1g"})
public class SlotMapBench {
  static final int LOOKUPS = 360_000;

  @Param({"50000"})
  public int vocab;

  private long[] ids;
  private long[] bits;
  private Unigrams unigrams;
  private LongIntMap map;
  private Before before;

  @Setup(Level.Trial)
  public void setUp() {
    long[] counts = new long[vocab];
    for (int i = 0; i < vocab; i++) {
      counts[i] = Math.max(5, 2_000_000L / (i + 1));
    }
    Unigrams u = Unigrams.ofCounts(counts, 0);
    unigrams = u;
    SplittableRandom r = new SplittableRandom(11);
    bits = new long[LOOKUPS];
    for (int i = 0; i < LOOKUPS; i++) {
      bits[i] = r.nextLong();
    }
    ids = new long[LOOKUPS];
    for (int i = 0; i < LOOKUPS; i++) {
      // one center (a sub-sampled corpus token: roughly uniform over ranks seen) per 5 negatives
      ids[i] = i % 6 == 0 ? (long) (vocab * Math.pow(r.nextDouble(), 3)) : u.sample(r.nextLong());
    }
    map = new LongIntMap(1 << 14);
    before = new Before(1 << 14);
  }

  @Benchmark
  @OperationsPerInvocation(LOOKUPS)
  public int map() {
    LongIntMap m = map;
    m.clear();
    int s = 0;
    for (long id : ids) {
      s += m.slot(id);
    }
    return s + m.size();
  }

  /** The unigram^0.75 draws alone, without a map: what a negative costs before its slot probe. */
  @Benchmark
  @OperationsPerInvocation(LOOKUPS)
  public int draw() {
    Unigrams u = unigrams;
    int s = 0;
    for (long b : bits) {
      s += u.sample(b);
    }
    return s;
  }

  /** A draw, then its slot, as the plan does for each negative. */
  @Benchmark
  @OperationsPerInvocation(LOOKUPS)
  public int drawThenSlot() {
    Unigrams u = unigrams;
    LongIntMap m = map;
    m.clear();
    int s = 0;
    for (long b : bits) {
      s += m.slot(u.sample(b));
    }
    return s + m.size();
  }

  @Benchmark
  @OperationsPerInvocation(LOOKUPS)
  public int before() {
    Before m = before;
    m.clear();
    int s = 0;
    for (long id : ids) {
      s += m.slot(id);
    }
    return s + m.size();
  }

  /** LongIntMap before issue 20 (three arrays, every id hashed), for the same-run comparison. */
    static final class Before {
    private long[] keys;
    private int[] values;
    private int[] stamps;
    private int generation = 1;
    private int mask;
    private long[] order;
    private int size;

    Before(int expected) {
      int cap = Integer.highestOneBit(Math.max(16, expected * 2) - 1) << 1;
      keys = new long[cap];
      values = new int[cap];
      stamps = new int[cap];
      mask = cap - 1;
      order = new long[Math.max(16, expected)];
    }

    void clear() {
      size = 0;
      generation++;
      if (generation == Integer.MAX_VALUE) {
        Arrays.fill(stamps, 0);
        generation = 1;
      }
    }

    int size() {
      return size;
    }

    /** The distinct keys in slot order; valid up to {@link #size()}. */
    long[] keys() {
      return order;
    }

    /** The slot of {@code key}, or -1 when absent (nothing is added). */
    int find(long key) {
      int h = mix(key) & mask;
      while (stamps[h] == generation) {
        if (keys[h] == key) {
          return values[h];
        }
        h = (h + 1) & mask;
      }
      return -1;
    }

    /** The slot of {@code key}, adding it when new. */
    int slot(long key) {
      int h = mix(key) & mask;
      while (stamps[h] == generation) {
        if (keys[h] == key) {
          return values[h];
        }
        h = (h + 1) & mask;
      }
      if (size * 2 >= keys.length) {
        grow();
        return slot(key);
      }
      stamps[h] = generation;
      keys[h] = key;
      values[h] = size;
      if (size == order.length) {
        order = Arrays.copyOf(order, size * 2);
      }
      order[size] = key;
      return size++;
    }

    private void grow() {
      long[] oldKeys = keys;
      int[] oldValues = values;
      int[] oldStamps = stamps;
      int oldGeneration = generation;
      int cap = keys.length * 2;
      keys = new long[cap];
      values = new int[cap];
      stamps = new int[cap];
      mask = cap - 1;
      generation = 1;
      for (int i = 0; i < oldKeys.length; i++) {
        if (oldStamps[i] == oldGeneration) {
          int h = mix(oldKeys[i]) & mask;
          while (stamps[h] == generation) {
            h = (h + 1) & mask;
          }
          stamps[h] = generation;
          keys[h] = oldKeys[i];
          values[h] = oldValues[i];
        }
      }
    }

    private static int mix(long key) {
      long z = key * 0x9E3779B97F4A7C15L;
      return (int) (z ^ (z >>> 29));
    }
  }
}
