package io.embstore.spark;

import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteOrder;
import java.nio.IntBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.function.Function;

/**
 * The unigram statistics of training in compact form: word2vec's sub-sampling keep probabilities
 * and the unigram^0.75 negative sampler, from the ids' counts without an array per id.
 *
 * <p>Ids are ranked by descending count (ties by ascending id), so counts are a non-increasing
 * step function of the rank: a table of runs (count c_r, first rank, n_r ranks) has one entry per
 * distinct count, thousands where V is millions. A negative is drawn by picking a run with
 * probability proportional to {@code n_r * c_r^0.75} (Walker's alias method over the runs), then a
 * rank uniformly inside it: exactly unigram^0.75. A rank is an id for vocabularies the job builds
 * (ids are numbered by descending count); for id input (ids in any order) the ranks map to ids
 * through {@link Spec#orderFile}, 4 bytes per id seen, memory-mapped (page cache, not heap).
 *
 * <p>Sub-sampling keeps an occurrence of a token of count c with probability {@code min(1,
 * (sqrt(c/t) + 1) * t/c)}, t = sample x total tokens (word2vec's formula). It is below 1 only where
 * c > t (sqrt5+3)/2 = 2.618 t, and fewer than 1 / (2.618 sample) ids are that frequent (their counts
 * add up to at most the total): the keep probabilities of those ranks are held, every other id keeps
 * with probability 1. With sample 1e-3 that is at most 381 floats, whatever V is.
 *
 * <p>Memory per JVM: 24 bytes per run (count, first rank, the alias table's cell), 4 bytes per
 * frequent rank (plus 8 for the id map of id input), and for id input the mapped order file.
 */
final class Unigrams {
  /** Negatives are drawn from counts to this power (word2vec's 0.75). */
  static final double POWER = 0.75;
  /** keep(c) < 1 exactly when c > t * this (the root of x = sqrt(x) + 1, squared). */
  static final double KEEP_LIMIT = (3 + Math.sqrt(5)) / 2;

  /**
   * What the driver sends to the executors: the runs in rank order and how ranks map to ids. Its
   * size is O(distinct counts); the order file (id input) travels as a Spark file.
   *
   * @param runCounts the count of each run, strictly decreasing
   * @param runStarts the first rank of each run, ascending from 0; run r ends where r+1 starts
   * @param ranks the ids with a count (runs end there); V for vocabularies built by the job
   * @param total the sum of all counts (T of the sub-sampling formula)
   * @param sample the sub-sampling threshold (0: off)
   * @param orderFile null when rank = id; else the name (for {@link org.apache.spark.SparkFiles#get})
   *     of a little-endian int32 file: the id of every rank
   */
  record Spec(long[] runCounts, long[] runStarts, long ranks, long total, double sample, String orderFile)
      implements Serializable {
    Spec {
      if (runCounts.length != runStarts.length || runCounts.length == 0) {
        throw new IllegalArgumentException("Cannot build a sampler: " + runCounts.length + " run counts and "
            + runStarts.length + " run starts (at least one run)");
      }
      for (int r = 0; r < runCounts.length; r++) {
        if (runCounts[r] < 1 || (r > 0 && (runCounts[r] >= runCounts[r - 1] || runStarts[r] <= runStarts[r - 1]))
            || runStarts[r] >= ranks || (r == 0 && runStarts[0] != 0)) {
          throw new IllegalArgumentException("Cannot build a sampler: run " + r + " (count " + runCounts[r] + ", from rank "
              + runStarts[r] + ") is out of order (counts must fall, starts rise from 0 below " + ranks + ")");
        }
      }
    }

    int runs() {
      return runCounts.length;
    }

    /** Ranks in run {@code r}. */
    long runSize(int r) {
      return (r + 1 < runStarts.length ? runStarts[r + 1] : ranks) - runStarts[r];
    }

    /** The runs of {@code countsByRank} (non-increasing). */
    static Spec ofSortedCounts(long[] countsByRank, double sample, String orderFile) {
      Builder b = new Builder();
      for (long c : countsByRank) {
        b.add(c, 1);
      }
      return b.build(sample, orderFile);
    }

    @Override
    public String toString() {
      return "Unigrams.Spec[" + runs() + " runs, " + ranks + " ranks, total " + total + ", sample " + sample
          + (orderFile == null ? "" : ", order " + orderFile) + "]";
    }
  }

  /** Collects runs in rank order: {@code add(count, n)} for n more ranks of that count. */
  static final class Builder {
    private long[] counts = new long[64];
    private long[] starts = new long[64];
    private int runs;
    private long ranks;
    private long total;

    void add(long count, long n) {
      if (n <= 0) {
        return;
      }
      if (count < 1) {
        throw new IllegalArgumentException("Cannot build a sampler: count " + count + " at rank " + ranks + " (at least 1)");
      }
      if (runs > 0 && count > counts[runs - 1]) {
        throw new IllegalArgumentException("Cannot build a sampler: count " + count + " at rank " + ranks
            + " after count " + counts[runs - 1] + " (ranks must be in descending count order)");
      }
      if (runs == 0 || count < counts[runs - 1]) {
        if (runs == counts.length) {
          counts = Arrays.copyOf(counts, runs * 2);
          starts = Arrays.copyOf(starts, runs * 2);
        }
        counts[runs] = count;
        starts[runs] = ranks;
        runs++;
      }
      ranks += n;
      total += count * n;
    }

    long ranks() {
      return ranks;
    }

    Spec build(double sample, String orderFile) {
      return new Spec(Arrays.copyOf(counts, runs), Arrays.copyOf(starts, runs), ranks, total, sample, orderFile);
    }
  }

  private final Spec spec;
  private final AliasSampler runSampler;
  /** Keep probability of the frequent ranks 0..K-1. */
  private final float[] keepByRank;
  /** Id input: the frequent ids (open addressing, -1 empty) and their keep probabilities. */
  private final int[] keepIds;
  private final float[] keepValues;
  private final int keepMask;
  private final IdOrder order;

  private Unigrams(Spec spec, IdOrder order) {
    this.spec = spec;
    this.order = order;
    int runs = spec.runs();
    double[] weights = new double[runs];
    for (int r = 0; r < runs; r++) {
      weights[r] = spec.runSize(r) * Math.pow(spec.runCounts()[r], POWER);
    }
    this.runSampler = new AliasSampler(weights);
    double t = spec.sample() * spec.total();
    int k = 0;
    if (spec.sample() > 0) {
      for (int r = 0; r < runs && spec.runCounts()[r] > t * KEEP_LIMIT; r++) {
        k = (int) Math.min(Integer.MAX_VALUE - 8, spec.runStarts()[r] + spec.runSize(r));
      }
    }
    keepByRank = new float[k];
    for (int rank = 0; rank < k; rank++) {
      keepByRank[rank] = keep(count(rank), t);
    }
    if (order == null || k == 0) {
      keepIds = null;
      keepValues = null;
      keepMask = 0;
    } else {
      int cap = Integer.highestOneBit(Math.max(2, 2 * k) - 1) << 1;
      keepIds = new int[cap];
      keepValues = new float[cap];
      Arrays.fill(keepIds, -1);
      keepMask = cap - 1;
      for (int rank = 0; rank < k; rank++) {
        int id = order.id(rank);
        int slot = hash(id) & keepMask;
        while (keepIds[slot] >= 0) {
          slot = (slot + 1) & keepMask;
        }
        keepIds[slot] = id;
        keepValues[slot] = keepByRank[rank];
      }
    }
  }

  /**
   * The sampler of {@code spec}; {@code files} resolves its order file (executors: {@link
   * org.apache.spark.SparkFiles#get}).
   */
  static Unigrams open(Spec spec, Function<String, Path> files) throws IOException {
    return new Unigrams(spec, spec.orderFile() == null ? null : IdOrder.map(files.apply(spec.orderFile()), spec.ranks()));
  }

  /**
   * For tests and small tables: the unigrams of {@code countsById} (any order; ids of count 0 are
   * never drawn) with the rank order on the heap.
   */
  static Unigrams ofCounts(long[] countsById, double sample) {
    int v = countsById.length;
    long[] keys = new long[v];
    int seen = 0;
    for (int i = 0; i < v; i++) {
      if (countsById[i] > 0) {
        long c = Math.min(countsById[i], 0xFFFF_FFFFL);
        keys[seen++] = ((0xFFFF_FFFFL - c) << 31) | i;
      }
    }
    if (seen == 0) {
      throw new IllegalArgumentException("Cannot build a sampler: every count is 0");
    }
    keys = Arrays.copyOf(keys, seen);
    Arrays.sort(keys);
    int[] ids = new int[seen];
    long[] byRank = new long[seen];
    boolean identity = seen == v;
    for (int r = 0; r < seen; r++) {
      ids[r] = (int) (keys[r] & Integer.MAX_VALUE);
      byRank[r] = countsById[ids[r]];
      identity &= ids[r] == r;
    }
    Spec spec = Spec.ofSortedCounts(byRank, sample, identity ? null : "heap");
    return new Unigrams(spec, identity ? null : new IdOrder.Heap(ids));
  }

  Spec spec() {
    return spec;
  }

  /** The count of rank {@code rank}. */
  long count(long rank) {
    int r = Arrays.binarySearch(spec.runStarts(), rank);
    return spec.runCounts()[r >= 0 ? r : -r - 2];
  }

  /** The id at rank {@code rank}. */
  int id(long rank) {
    return order == null ? (int) rank : order.id(rank);
  }

  /** word2vec's keep probability for a count {@code c} at threshold {@code t}. */
  static float keep(long c, double t) {
    double f = c;
    return f <= 0 || t <= 0 ? 1f : (float) Math.min(1.0, (Math.sqrt(f / t) + 1) * t / f);
  }

  /** The probability that sub-sampling keeps an occurrence of {@code id}. */
  float keep(int id) {
    if (keepIds == null) {
      return id < keepByRank.length ? keepByRank[id] : 1f;
    }
    int slot = hash(id) & keepMask;
    for (int k; (k = keepIds[slot]) >= 0; slot = (slot + 1) & keepMask) {
      if (k == id) {
        return keepValues[slot];
      }
    }
    return 1f;
  }

  /** Ranks whose keep probability is below 1 (the frequent prefix). */
  int frequentRanks() {
    return keepByRank.length;
  }

  /**
   * One draw from unigram^0.75: the run from {@code bits}, the rank inside it from a hash of them.
   * Without a branch on the run's size (a run of one rank gives {@code start}, as the hash's high
   * 32 bits times 1 shifted right by 32 is 0): frequent words are runs of one, rare ones are not,
   * so the branch was mispredicted on a large share of the ~80 M draws of a prose4 epoch.
   */
  int sample(long bits) {
    int r = runSampler.sample(bits);
    long start = spec.runStarts()[r];
    long n = spec.runSize(r);
    long rank = start + (((SkipGram.mix64(bits ^ 0x5DEECE66DL) >>> 32) * n) >>> 32);
    return order == null ? (int) rank : order.id(rank);
  }

  /** The count of every id, for the Huffman tree of hierarchical softmax (8 bytes per id). */
  long[] countsById(int v) {
    long[] counts = new long[v];
    for (int r = 0; r < spec.runs(); r++) {
      long from = spec.runStarts()[r];
      long to = from + spec.runSize(r);
      for (long rank = from; rank < to; rank++) {
        counts[id(rank)] = spec.runCounts()[r];
      }
    }
    return counts;
  }

  private static int hash(int id) {
    int h = id * 0x9E3779B9;
    return h ^ (h >>> 16);
  }

  /** Rank to id for id input. */
  abstract static class IdOrder {
    abstract int id(long rank);

    /** A little-endian int32 file of {@code ranks} ids, mapped in chunks of 2^28 ids. */
    static IdOrder map(Path file, long ranks) throws IOException {
      try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
        if (ch.size() != ranks * 4) {
          throw new IOException("Cannot map the sampler's id order " + file + ": " + ch.size()
              + " bytes, expected " + ranks * 4 + " (4 per id of " + ranks + ")");
        }
        int chunks = (int) ((ranks + (1L << 28) - 1) >>> 28);
        IntBuffer[] parts = new IntBuffer[Math.max(1, chunks)];
        for (int c = 0; c < chunks; c++) {
          long from = (long) c << 28;
          long n = Math.min(1L << 28, ranks - from);
          parts[c] = ch.map(FileChannel.MapMode.READ_ONLY, from * 4, n * 4).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer();
        }
        return new IdOrder() {
          @Override
          int id(long rank) {
            return parts[(int) (rank >>> 28)].get((int) (rank & ((1 << 28) - 1)));
          }
        };
      }
    }

    static final class Heap extends IdOrder {
      private final int[] ids;

      Heap(int[] ids) {
        this.ids = ids;
      }

      @Override
      int id(long rank) {
        return ids[(int) rank];
      }
    }
  }
}
