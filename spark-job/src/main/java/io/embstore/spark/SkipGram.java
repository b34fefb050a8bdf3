package io.embstore.spark;

import java.io.IOException;
import java.util.Arrays;

/**
 * Skip-gram with negative sampling over mini-batches, the recipe of word2vec.c and gensim, with the
 * rows kept in two {@link RowStore}s (input embeddings {@code wte} and output/context rows). No
 * Spark and no network here: a Spark task, a test or a benchmark feeds sentences of token ids.
 *
 * <p>A mini-batch runs in three steps, so that only touched rows move and each moves once:
 *
 * <ol>
 *   <li><b>plan</b>: sub-sample frequent tokens (keep probability {@code (sqrt(f/(s*T)) + 1) * s*T /
 *       f}, word2vec's formula), draw each position's window {@code window - (r mod window)} (the
 *       random shrink), and for every (context, center) pair the center plus {@code negatives} draws
 *       from unigram^0.75 (a draw equal to the center is skipped, as word2vec does). Ids become slots
 *       of the batch's distinct input ids and distinct output ids;
 *   <li><b>pull</b> the distinct rows of both matrices;
 *   <li><b>compute and push</b>: word2vec's update per pair ({@code g = label - sigmoid(in.out)},
 *       output rows move at once, the input row after all {@code 1+negatives} targets), applied to the
 *       local copies so that later pairs of the batch see earlier ones, as in word2vec's sequential
 *       loop; then one aggregated gradient per touched row is pushed. With SGD the pushed gradient is
 *       {@code (pulled - local) / lr}, so the store ends exactly where the local copy is. With an
 *       adaptive optimizer (row-wise Adagrad) the local copies stay fixed and the summed gradient is
 *       pushed for the server's optimizer to scale.
 * </ol>
 *
 * The learning rate is given per batch by the caller (linear decay over the whole run, as word2vec).
 * Hot loops use flat float[] arrays and int slot arrays: nothing is allocated per pair.
 */
final class SkipGram {
  /** The Vector API kernels ({@link VectorKernels}) when the incubator module is present. */
  static final boolean SIMD = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
      && !Boolean.getBoolean("embstore.train.scalar");
  static final float MAX_EXP = 6f;
  static final int SIGMOID_TABLE = 4096;
  private static final float[] SIGMOID = new float[SIGMOID_TABLE + 1];
  private static final float[] LOG_SIGMOID = new float[SIGMOID_TABLE + 1];

  static {
    for (int i = 0; i <= SIGMOID_TABLE; i++) {
      double f = -MAX_EXP + 2.0 * MAX_EXP * i / SIGMOID_TABLE;
      SIGMOID[i] = (float) (1.0 / (1.0 + Math.exp(-f)));
      LOG_SIGMOID[i] = (float) -Math.log1p(Math.exp(-f));
    }
  }

  /** Settings of the objective; all validated by the job's options. */
  record Params(int dim, int window, int negatives, double sample, boolean localApply)
      implements java.io.Serializable {}

  private final Params p;
  private final int dim;
  private final int k1;
  private final float[] keep;
  private final AliasSampler negatives;
  private final RowStore in;
  private final RowStore out;
  private long rng;

  // The batch: sub-sampled tokens, sentence ends, plan.
  private int[] tokens = new int[1 << 14];
  private int ntokens;
  private int[] sentenceEnds = new int[1 << 10];
  private int nsentences;
  private long rawTokens;
  private final LongIntMap inSlots = new LongIntMap(1 << 12);
  private final LongIntMap outSlots = new LongIntMap(1 << 14);
  private int[] groupIn = new int[1 << 16];
  private int[] groupOut;
  private int ngroups;

  // Rows of the batch.
  private float[] inRows = new float[0];
  private float[] outRows = new float[0];
  private float[] inAux = new float[0];
  private float[] outAux = new float[0];
  private final float[] neu1e;

  // Running figures, read by the caller between batches.
  long tokensSeen;
  long tokensTrained;
  long pairs;
  double lossSum;
  long lossCount;
  long rowsPulled;
  long rowsPushed;
  long batches;
  /** Wall time per phase: plan, waiting for pulls, compute, waiting for pushes. */
  long planNanos;
  long pullNanos;
  long computeNanos;
  long pushNanos;

  /**
   * @param keep keep probability per id for sub-sampling, or null for none
   * @param negatives unigram^0.75 sampler over all ids
   * @param seed seed of this trainer's random stream (hash of run seed, epoch, partition)
   */
  SkipGram(Params p, float[] keep, AliasSampler negatives, RowStore in, RowStore out, long seed) {
    this.p = p;
    this.dim = p.dim();
    this.k1 = p.negatives() + 1;
    this.keep = keep;
    this.negatives = negatives;
    this.in = in;
    this.out = out;
    this.rng = seed;
    this.groupOut = new int[groupIn.length * k1];
    this.neu1e = new float[dim];
  }

  /** Keep probabilities of word2vec's sub-sampling for {@code counts}; null when sample &lt;= 0. */
  static float[] keepProbabilities(long[] counts, double sample) {
    if (sample <= 0) {
      return null;
    }
    long total = 0;
    for (long c : counts) {
      total += c;
    }
    double threshold = sample * total;
    float[] keep = new float[counts.length];
    for (int i = 0; i < counts.length; i++) {
      double f = counts[i];
      keep[i] = f <= 0 ? 1f : (float) Math.min(1.0, (Math.sqrt(f / threshold) + 1) * threshold / f);
    }
    return keep;
  }

  /** word2vec's initialisation of input row {@code id}: uniform in [-0.5/C, 0.5/C), seeded per id. */
  static void initInputRow(long seed, long id, float[] row) {
    long s = mix64(seed ^ mix64(id + 0x632BE59BD9B4E019L));
    for (int j = 0; j < row.length; j++) {
      s += 0x9E3779B97F4A7C15L;
      float u = (mix64(s) >>> 40) * 0x1.0p-24f;
      row[j] = (u - 0.5f) / row.length;
    }
  }

  /** SplitMix64's finaliser: a good 64-bit hash. */
  static long mix64(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  private long next() {
    rng += 0x9E3779B97F4A7C15L;
    return mix64(rng);
  }

  /** Raw (not sub-sampled) tokens in the pending batch. */
  long pendingRawTokens() {
    return rawTokens;
  }

  /** Adds one sentence (ids in [0, V)) to the pending batch, sub-sampling it. */
  void add(int[] sentence) {
    add(sentence, 0, sentence.length);
  }

  void add(int[] sentence, int from, int to) {
    int n = to - from;
    rawTokens += n;
    if (ntokens + n > tokens.length) {
      tokens = Arrays.copyOf(tokens, Math.max(tokens.length * 2, ntokens + n));
    }
    int start = ntokens;
    for (int i = from; i < to; i++) {
      int id = sentence[i];
      if (keep != null && keep[id] < 1f && keep[id] < (next() >>> 40) * 0x1.0p-24f) {
        continue;
      }
      tokens[ntokens++] = id;
    }
    if (ntokens > start) {
      if (nsentences == sentenceEnds.length) {
        sentenceEnds = Arrays.copyOf(sentenceEnds, nsentences * 2);
      }
      sentenceEnds[nsentences++] = ntokens;
    }
  }

  /** Trains the pending batch with learning rate {@code lr} and empties it. */
  void step(float lr) throws IOException {
    long t0 = System.nanoTime();
    plan();
    int nin = inSlots.size();
    int nout = outSlots.size();
    long t1 = System.nanoTime();
    planNanos += t1 - t0;
    if (ngroups > 0) {
      inRows = ensure(inRows, nin * dim);
      outRows = ensure(outRows, nout * dim);
      // Both matrices at once: one round trip per batch, not two.
      RowStore.await(in.pullAsync(inSlots.keys(), nin, inRows), out.pullAsync(outSlots.keys(), nout, outRows));
      long t2 = System.nanoTime();
      pullNanos += t2 - t1;
      inAux = ensure(inAux, nin * dim);
      outAux = ensure(outAux, nout * dim);
      if (p.localApply()) {
        System.arraycopy(inRows, 0, inAux, 0, nin * dim);
        System.arraycopy(outRows, 0, outAux, 0, nout * dim);
        compute(lr, inRows, outRows);
        toGradient(inAux, inRows, nin * dim, lr);
        toGradient(outAux, outRows, nout * dim, lr);
      } else {
        Arrays.fill(inAux, 0, nin * dim, 0f);
        Arrays.fill(outAux, 0, nout * dim, 0f);
        compute(-1f, inAux, outAux);
      }
      long t3 = System.nanoTime();
      computeNanos += t3 - t2;
      RowStore.await(in.pushAsync(inSlots.keys(), nin, inAux, lr), out.pushAsync(outSlots.keys(), nout, outAux, lr));
      pushNanos += System.nanoTime() - t3;
      rowsPulled += nin + nout;
      rowsPushed += nin + nout;
    }
    tokensSeen += rawTokens;
    tokensTrained += ntokens;
    batches++;
    ntokens = 0;
    nsentences = 0;
    rawTokens = 0;
  }

  /** grad = (pulled - local) / lr, written over {@code pulled}. */
  private static void toGradient(float[] pulled, float[] local, int n, float lr) {
    float inv = 1f / lr;
    for (int i = 0; i < n; i++) {
      pulled[i] = (pulled[i] - local[i]) * inv;
    }
  }

  private static float[] ensure(float[] a, int n) {
    return a.length >= n ? a : new float[Math.max(n, a.length + a.length / 2)];
  }

  private void plan() {
    inSlots.clear();
    outSlots.clear();
    ngroups = 0;
    int window = p.window();
    int neg = p.negatives();
    int start = 0;
    for (int s = 0; s < nsentences; s++) {
      int end = sentenceEnds[s];
      for (int i = start; i < end; i++) {
        int center = tokens[i];
        int b = (int) ((next() >>> 33) % window);
        int lo = Math.max(start, i - window + b);
        int hi = Math.min(end - 1, i + window - b);
        if (hi == lo) {
          continue;
        }
        int centerSlot = outSlots.slot(center);
        for (int c = lo; c <= hi; c++) {
          if (c == i) {
            continue;
          }
          if (ngroups == groupIn.length) {
            groupIn = Arrays.copyOf(groupIn, ngroups * 2);
            groupOut = Arrays.copyOf(groupOut, ngroups * 2 * k1);
          }
          groupIn[ngroups] = inSlots.slot(tokens[c]);
          int o = ngroups * k1;
          groupOut[o] = centerSlot;
          for (int d = 1; d <= neg; d++) {
            int target = negatives.sample(next());
            groupOut[o + d] = target == center ? -1 : outSlots.slot(target);
          }
          ngroups++;
        }
      }
      start = end;
    }
  }

  /**
   * Runs the plan. Values are read from {@code inRows}/{@code outRows}; changes go to {@code dIn} /
   * {@code dOut} scaled by {@code a}: with {@code a = lr} and the row arrays themselves this is
   * word2vec's in-place update; with {@code a = -1} and zeroed arrays it sums the loss gradients.
   */
  private void compute(float a, float[] dIn, float[] dOut) {
    float[] win = inRows;
    float[] wout = outRows;
    int c = dim;
    float[] e = neu1e;
    double loss = 0;
    long npairs = 0;
    for (int g = 0; g < ngroups; g++) {
      int l1 = groupIn[g] * c;
      Arrays.fill(e, 0f);
      int o = g * k1;
      for (int d = 0; d < k1; d++) {
        int slot = groupOut[o + d];
        if (slot < 0) {
          continue;
        }
        int l2 = slot * c;
        float f = SIMD ? VectorKernels.dot(win, l1, wout, l2, c) : dot(win, l1, wout, l2, c);
        float label = d == 0 ? 1f : 0f;
        float sig;
        int idx;
        if (f >= MAX_EXP) {
          sig = 1f;
          idx = SIGMOID_TABLE;
        } else if (f <= -MAX_EXP) {
          sig = 0f;
          idx = 0;
        } else {
          idx = (int) ((f + MAX_EXP) * (SIGMOID_TABLE / (2 * MAX_EXP)) + 0.5f);
          sig = SIGMOID[idx];
        }
        loss -= d == 0 ? LOG_SIGMOID[idx] : LOG_SIGMOID[SIGMOID_TABLE - idx];
        npairs++;
        float gs = label - sig;
        if (SIMD) {
          VectorKernels.update(e, gs, wout, l2, dOut, a * gs, win, l1, c);
        } else {
          axpy(e, 0, gs, wout, l2, c);
          axpy(dOut, l2, a * gs, win, l1, c);
        }
      }
      if (SIMD) {
        VectorKernels.axpy(dIn, l1, a, e, 0, c);
      } else {
        axpy(dIn, l1, a, e, 0, c);
      }
    }
    lossSum += loss;
    lossCount += npairs;
    pairs += ngroups;
  }

  /** Pairs (groups) of the last planned batch: for tests that recompute the step independently. */
  int plannedGroups() {
    return ngroups;
  }

  /** The input (context) id of group {@code g} of the last batch. */
  long plannedInput(int g) {
    return inSlots.keys()[groupIn[g]];
  }

  /** Target {@code d} of group {@code g} (0 = the center, then the negatives), or -1 if skipped. */
  long plannedOutput(int g, int d) {
    int slot = groupOut[g * k1 + d];
    return slot < 0 ? -1 : outSlots.keys()[slot];
  }

  static float dot(float[] x, int xo, float[] y, int yo, int n) {
    float s0 = 0;
    float s1 = 0;
    float s2 = 0;
    float s3 = 0;
    int j = 0;
    for (; j + 3 < n; j += 4) {
      s0 += x[xo + j] * y[yo + j];
      s1 += x[xo + j + 1] * y[yo + j + 1];
      s2 += x[xo + j + 2] * y[yo + j + 2];
      s3 += x[xo + j + 3] * y[yo + j + 3];
    }
    for (; j < n; j++) {
      s0 += x[xo + j] * y[yo + j];
    }
    return (s0 + s1) + (s2 + s3);
  }

  /** y[yo..] += a * x[xo..]. */
  static void axpy(float[] y, int yo, float a, float[] x, int xo, int n) {
    for (int j = 0; j < n; j++) {
      y[yo + j] += a * x[xo + j];
    }
  }
}
