package io.embstore.bench.common;

import java.util.SplittableRandom;

/**
 * A pre-generated pool of token ids, so that timed loops do not pay for random numbers. Batches are
 * consecutive slices of the pool, wrapping around; every harness gets the same ids for the same seed.
 *
 * <p>{@code zipf} draws rank r in [1, V] with probability proportional to 1 / r^s and uses id r - 1:
 * frequency-sorted vocabularies put the hottest tokens first, so the hot ids are the small ones (the
 * modulo partitioner spreads them over the shards).
 */
public final class IdStream {
  private final String name;
  private final long[] pool;
  private int next;

  private IdStream(String name, long[] pool) {
    this.name = name;
    this.pool = pool;
  }

  /** Ids uniform in [0, rows). */
  public static IdStream uniform(long rows, int poolSize, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    long[] pool = new long[poolSize];
    for (int i = 0; i < poolSize; i++) {
      pool[i] = r.nextLong(rows);
    }
    return new IdStream("uniform", pool);
  }

  /** Ids Zipf(s)-distributed over [0, rows): id 0 is the most frequent. */
  public static IdStream zipf(long rows, double s, int poolSize, long seed) {
    if (rows > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("Cannot draw Zipf ids: rows=" + rows + " (at most 2^31-1)");
    }
    int n = (int) rows;
    double[] cdf = new double[n];
    double sum = 0;
    for (int i = 0; i < n; i++) {
      sum += Math.pow(i + 1, -s);
      cdf[i] = sum;
    }
    SplittableRandom r = new SplittableRandom(seed);
    long[] pool = new long[poolSize];
    for (int i = 0; i < poolSize; i++) {
      double u = r.nextDouble() * sum;
      int lo = 0;
      int hi = n - 1;
      while (lo < hi) {
        int mid = (lo + hi) >>> 1;
        if (cdf[mid] < u) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      pool[i] = lo;
    }
    return new IdStream("zipf" + s, pool);
  }

  public static IdStream of(String dist, long rows, int poolSize, long seed) {
    return switch (dist) {
      case "uniform" -> uniform(rows, poolSize, seed);
      case "zipf" -> zipf(rows, 1.1, poolSize, seed);
      default -> throw new IllegalArgumentException("Cannot draw ids: distribution '" + dist + "' (known: uniform, zipf)");
    };
  }

  public String name() {
    return name;
  }

  /** A fresh, independent cursor over the same pool (one per thread or per in-flight slot). */
  public IdStream fork(long seed) {
    IdStream f = new IdStream(name, pool);
    f.next = (int) Math.floorMod(seed * 0x9E3779B97F4A7C15L, (long) pool.length);
    return f;
  }

  /** Fills {@code ids} with the next {@code ids.length} ids of the pool. */
  public void next(long[] ids) {
    int b = ids.length;
    if (next + b > pool.length) {
      next = 0;
    }
    System.arraycopy(pool, next, ids, 0, b);
    next += b;
  }

  /** Share of draws that hit the hottest {@code fraction} of {@code rows} ids (for the report). */
  public double hotShare(long rows, double fraction) {
    long limit = (long) Math.ceil(rows * fraction);
    long hits = 0;
    for (long id : pool) {
      if (id < limit) {
        hits++;
      }
    }
    return hits / (double) pool.length;
  }
}
