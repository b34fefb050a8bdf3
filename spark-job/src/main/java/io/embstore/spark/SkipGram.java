package io.embstore.spark;

import java.io.IOException;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;

/**
 * Skip-gram with negative sampling over mini-batches, the recipe of word2vec.c and gensim, with the
 * rows kept in two {@link RowStore}s (input embeddings {@code wte} and output/context rows). No
 * Spark and no network here: a Spark task, a test or a benchmark feeds sentences of token ids.
 * With a {@link HuffmanTree} it trains word2vec's hierarchical softmax instead, or besides: a pair's
 * targets are then the inner nodes on the center's path (see {@link #plan}).
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
 * Hot loops use flat float[] arrays and int slot arrays: nothing is allocated per pair; the dot
 * products and row updates run as SIMD kernels ({@link VectorKernels}) when the Vector API module
 * is present. With {@code prefetch} the pull of the next batch overlaps this batch's compute (see
 * {@link #step}), unless both stores are in process ({@link RowStore#inProcess}); the caller ends
 * with {@link #flush}.
 */
final class SkipGram {
  /** The Vector API kernels ({@link VectorKernels}) when the incubator module is present. */
  static final boolean SIMD = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
      && !Boolean.getBoolean("embstore.train.scalar");
  static final float MAX_EXP = 6f;
  static final int SIGMOID_TABLE = 4096;
  /** Flags of a target entry ({@link #plan}): a tree node (hierarchical softmax); label 0. */
  static final int HS = 2;
  static final int LABEL0 = 1;
  private static final float[] SIGMOID = new float[SIGMOID_TABLE + 1];
  private static final float[] LOG_SIGMOID = new float[SIGMOID_TABLE + 1];

  static {
    for (int i = 0; i <= SIGMOID_TABLE; i++) {
      double f = -MAX_EXP + 2.0 * MAX_EXP * i / SIGMOID_TABLE;
      SIGMOID[i] = (float) (1.0 / (1.0 + Math.exp(-f)));
      LOG_SIGMOID[i] = (float) -Math.log1p(Math.exp(-f));
    }
  }

  /**
   * Settings of the objective; all validated by the job's options. {@code prefetch}: pull the rows
   * of batch k+1 while batch k computes (see {@link #step}).
   */
  record Params(int dim, int window, int negatives, double sample, boolean localApply, boolean prefetch, boolean hs)
      implements java.io.Serializable {
    /** Negative sampling (the default objective). */
    Params(int dim, int window, int negatives, double sample, boolean localApply, boolean prefetch) {
      this(dim, window, negatives, sample, localApply, prefetch, false);
    }
  }

  /**
   * One mini-batch's plan, rows and in-flight calls. Three rotate: one computing, one being pulled,
   * one whose push is in flight (its gradients also patch the next batch's rows).
   */
  private static final class Batch {
    final LongIntMap inSlots = new LongIntMap(1 << 12);
    final LongIntMap outSlots = new LongIntMap(1 << 14);
    int[] groupIn = new int[1 << 16];
    /** Targets: entries {@code slot << 2 | flags} ({@link #plan}), group g's at {@code groupOff[g]..groupOff[g+1]}. */
    int[] groupOut;
    int[] groupOff;
    int ngroups;
    int nin;
    int nout;
    float lr;
    float[] inRows = new float[0];
    float[] outRows = new float[0];
    /** After compute: the pushed gradient rows. */
    float[] inAux = new float[0];
    float[] outAux = new float[0];
    CompletableFuture<Void> pullIn;
    CompletableFuture<Void> pullOut;
    CompletableFuture<Void> pushIn;
    CompletableFuture<Void> pushOut;

    Batch(int k1) {
      groupOut = new int[groupIn.length * k1];
      groupOff = new int[groupIn.length + 1];
    }
  }

  private final Params p;
  private final int dim;
  private final int k1;
  private final Unigrams unigrams;
  private final boolean subsample;
  private final HuffmanTree tree;
  /** Row of the tree's inner node 0 in the output store: V when negative sampling shares it, else 0. */
  private final long hsBase;
  private final int[] path;
  private final RowStore in;
  private final RowStore out;
  /**
   * {@code p.prefetch()} unless both stores are in process: there a pull runs on this thread before
   * the compute it was to overlap, so prefetching would only add the patch and a batch of staleness.
   */
  private final boolean prefetch;
  private long rng;

  // Tokens of the batch being filled: sub-sampled tokens, sentence ends.
  private int[] tokens = new int[1 << 14];
  private int ntokens;
  private int[] sentenceEnds = new int[1 << 10];
  private int nsentences;
  private long rawTokens;

  private final Batch[] batches3 = new Batch[3];
  private long planned;
  /** Prefetch: planned, rows pulled and patched, not computed yet. */
  private Batch pending;
  /** Prefetch: computed, push in flight. */
  private Batch pushing;
  /** The last computed batch (for tests). */
  private Batch last;
  private final float[] neu1e;
  private final float[] dots;

  // Running figures, read by the caller between batches.
  long tokensSeen;
  long tokensTrained;
  long pairs;
  double lossSum;
  long lossCount;
  long rowsPulled;
  long rowsPushed;
  long batches;
  /**
   * Wall time per phase: plan; pulls (issuing them, which is the whole copy for in-process shards,
   * and waiting for them); compute; pushes (issuing and waiting); and prefetch's patch.
   */
  long planNanos;
  long pullNanos;
  long computeNanos;
  long pushNanos;
  long patchNanos;

  /**
   * @param unigrams the keep probabilities of sub-sampling (applied when {@code p.sample() > 0})
   *     and the unigram^0.75 sampler of negatives
   * @param seed seed of this trainer's random stream (hash of run seed, epoch, partition)
   */
  SkipGram(Params p, Unigrams unigrams, RowStore in, RowStore out, long seed) {
    this(p, unigrams, null, in, out, seed);
  }

  /**
   * @param tree the vocabulary's Huffman tree when {@code p.hs()} (hierarchical softmax: the output
   *     store's rows 0..V-2 are the tree's inner nodes, or rows V..2V-2 when negative sampling runs
   *     too and uses rows 0..V-1), else null
   */
  SkipGram(Params p, Unigrams unigrams, HuffmanTree tree, RowStore in, RowStore out, long seed) {
    if (p.hs() != (tree != null)) {
      throw new IllegalArgumentException("Cannot train: hierarchical softmax " + p.hs() + " but Huffman tree " + tree);
    }
    this.p = p;
    this.dim = p.dim();
    this.k1 = p.negatives() + 1;
    this.unigrams = unigrams;
    this.subsample = p.sample() > 0 && unigrams.frequentRanks() > 0;
    this.tree = tree;
    this.path = new int[tree == null ? 0 : tree.maxDepth()];
    this.hsBase = tree != null && p.negatives() > 0 ? tree.leaves() : 0;
    this.in = in;
    this.out = out;
    this.prefetch = p.prefetch() && !(in.inProcess() && out.inProcess());
    this.rng = seed;
    for (int i = 0; i < batches3.length; i++) {
      batches3[i] = new Batch(k1);
    }
    this.neu1e = new float[dim];
    this.dots = new float[k1 + (tree == null ? 0 : tree.maxDepth())];
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
      if (subsample) {
        float keep = unigrams.keep(id);
        if (keep < 1f && keep < (next() >>> 40) * 0x1.0p-24f) {
          continue;
        }
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

  /**
   * Trains the pending tokens as one batch with learning rate {@code lr} and empties them.
   *
   * <p>Without prefetch the batch is planned, pulled, computed and pushed before this returns. With
   * prefetch, this plans batch k and pulls its rows while batch k-1 (planned by the previous call)
   * computes, then pushes batch k-1 without waiting; {@link #flush} computes the last batch. Each
   * batch's rows still carry this trainer's own earlier updates exactly: the pull of batch k starts
   * after the push of batch k-2 has been applied, and batch k-1's change ({@code -lr * gradient}, SGD
   * only) is added to the rows of batch k that it touched. What batch k does not see is the other
   * tasks' updates made while batch k-1 computed (one more batch of staleness, Hogwild-style).
   */
  void step(float lr) throws IOException {
    Batch b = batches3[(int) (planned++ % batches3.length)];
    awaitPush(b);
    long t0 = System.nanoTime();
    plan(b);
    b.lr = lr;
    tokensSeen += rawTokens;
    tokensTrained += ntokens;
    batches++;
    rowsPulled += b.nin + b.nout;
    rowsPushed += b.nin + b.nout;
    ntokens = 0;
    nsentences = 0;
    rawTokens = 0;
    planNanos += System.nanoTime() - t0;
    if (!prefetch) {
      pull(b);
      awaitPull(b);
      compute(b);
      push(b);
      awaitPush(b);
      return;
    }
    Batch prev = pending;
    awaitPush(pushing); // the pull of b must see the push of batch k-2, which b is not patched with
    pull(b);
    if (prev != null) {
      compute(prev);
    }
    awaitPull(b); // before pushing prev: b's rows must not hold prev's update (the patch adds it)
    if (prev != null) {
      long t1 = System.nanoTime();
      patch(b, prev);
      patchNanos += System.nanoTime() - t1;
      push(prev);
    }
    pushing = prev;
    pending = b;
  }

  /** Computes and pushes the batch held back by prefetch, and waits for every push. */
  void flush() throws IOException {
    Batch b = pending;
    pending = null;
    if (b != null) {
      compute(b);
      push(b);
    }
    awaitPush(pushing);
    pushing = null;
    awaitPush(b);
  }

  /** Waits for whatever is in flight, ignoring failures: the task is failing already. */
  void abandon() {
    for (Batch b : batches3) {
      quietly(b.pullIn);
      quietly(b.pullOut);
      quietly(b.pushIn);
      quietly(b.pushOut);
    }
    pending = null;
    pushing = null;
  }

  private static void quietly(CompletableFuture<Void> f) {
    if (f != null) {
      try {
        f.join();
      } catch (RuntimeException e) {
        // the failure that matters is already on its way up
      }
    }
  }

  private void pull(Batch b) {
    if (b.ngroups == 0) {
      return;
    }
    long t0 = System.nanoTime();
    b.inRows = ensure(b.inRows, b.nin * dim);
    b.outRows = ensure(b.outRows, b.nout * dim);
    // Both matrices at once: one round trip per batch, not two.
    b.pullIn = in.pullAsync(b.inSlots.keys(), b.nin, b.inRows);
    b.pullOut = out.pullAsync(b.outSlots.keys(), b.nout, b.outRows);
    pullNanos += System.nanoTime() - t0;
  }

  private void awaitPull(Batch b) throws IOException {
    if (b.pullIn != null) {
      long t0 = System.nanoTime();
      try {
        RowStore.await(b.pullIn, b.pullOut);
      } finally {
        b.pullIn = null;
        b.pullOut = null;
        pullNanos += System.nanoTime() - t0;
      }
    }
  }

  private void push(Batch b) {
    if (b.ngroups == 0) {
      return;
    }
    long t0 = System.nanoTime();
    b.pushIn = in.pushAsync(b.inSlots.keys(), b.nin, b.inAux, b.lr);
    b.pushOut = out.pushAsync(b.outSlots.keys(), b.nout, b.outAux, b.lr);
    pushNanos += System.nanoTime() - t0;
  }

  private void awaitPush(Batch b) throws IOException {
    if (b != null && b.pushIn != null) {
      long t0 = System.nanoTime();
      try {
        RowStore.await(b.pushIn, b.pushOut);
      } finally {
        b.pushIn = null;
        b.pushOut = null;
        pushNanos += System.nanoTime() - t0;
      }
    }
  }

  /** Runs batch {@code b} on its pulled rows and leaves the gradient to push in its aux arrays. */
  private void compute(Batch b) {
    if (b.ngroups == 0) {
      return;
    }
    long t0 = System.nanoTime();
    int nin = b.nin * dim;
    int nout = b.nout * dim;
    b.inAux = ensure(b.inAux, nin);
    b.outAux = ensure(b.outAux, nout);
    if (p.localApply()) {
      System.arraycopy(b.inRows, 0, b.inAux, 0, nin);
      System.arraycopy(b.outRows, 0, b.outAux, 0, nout);
      run(b, b.lr, b.inRows, b.outRows);
      toGradient(b.inAux, b.inRows, nin, b.lr);
      toGradient(b.outAux, b.outRows, nout, b.lr);
    } else {
      Arrays.fill(b.inAux, 0, nin, 0f);
      Arrays.fill(b.outAux, 0, nout, 0f);
      run(b, -1f, b.inAux, b.outAux);
    }
    last = b;
    computeNanos += System.nanoTime() - t0;
  }

  /**
   * Adds {@code prev}'s change to the rows of {@code next} that both touch: {@code next} was pulled
   * before {@code prev} was pushed. With SGD the change is {@code -lr * gradient}, exactly what the
   * store applies; with an adaptive optimizer the store's step is not known here, so rows stay as
   * pulled (one batch of staleness for this trainer's own updates too).
   */
  private void patch(Batch next, Batch prev) {
    if (!p.localApply() || prev.ngroups == 0 || next.ngroups == 0) {
      return;
    }
    patch(next.inSlots, next.nin, next.inRows, prev.inSlots, prev.inAux, -prev.lr);
    patch(next.outSlots, next.nout, next.outRows, prev.outSlots, prev.outAux, -prev.lr);
  }

  private void patch(LongIntMap slots, int n, float[] rows, LongIntMap prevSlots, float[] prevGrads, float a) {
    long[] ids = slots.keys();
    for (int i = 0; i < n; i++) {
      int s = prevSlots.find(ids[i]);
      if (s >= 0) {
        if (SIMD) {
          VectorKernels.axpy(rows, i * dim, a, prevGrads, s * dim, dim);
        } else {
          axpy(rows, i * dim, a, prevGrads, s * dim, dim);
        }
      }
    }
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

  /**
   * Plans the pending tokens into pairs (groups) and their targets; ids become slots of the batch's
   * distinct input ids and distinct output rows. Per position: a window shrunk at random; per
   * (context, center) pair, with negative sampling the center (label 1) and {@code negatives} draws
   * from unigram^0.75 (label 0; a draw equal to the center is dropped, as word2vec does), then with
   * hierarchical softmax the inner nodes on the center's path in the tree (rows {@code hsBase +
   * node}, label {@code 1 - code bit}; word2vec's {@code -hs 1}). Targets are entries {@code slot <<
   * 2 | HS | LABEL0}: {@code HS} for a tree node (not updated where the dot product saturates),
   * {@code LABEL0} for label 0.
   */
  private void plan(Batch b) {
    LongIntMap inSlots = b.inSlots;
    LongIntMap outSlots = b.outSlots;
    inSlots.clear();
    outSlots.clear();
    int ngroups = 0;
    int[] groupIn = b.groupIn;
    int[] groupOut = b.groupOut;
    int[] groupOff = b.groupOff;
    int window = p.window();
    int neg = p.negatives();
    int[] nodes = path;
    int off = 0;
    int start = 0;
    for (int s = 0; s < nsentences; s++) {
      int end = sentenceEnds[s];
      for (int i = start; i < end; i++) {
        int center = tokens[i];
        int r = (int) ((next() >>> 33) % window);
        int lo = Math.max(start, i - window + r);
        int hi = Math.min(end - 1, i + window - r);
        if (hi == lo) {
          continue;
        }
        int len = tree == null ? 0 : tree.path(center, nodes, 0);
        for (int d = 0; d < len; d++) {
          nodes[d] = (outSlots.slot(hsBase + (nodes[d] >>> 1)) << 2) | HS | (nodes[d] & 1);
        }
        int centerEntry = neg > 0 ? outSlots.slot(center) << 2 : 0;
        for (int c = lo; c <= hi; c++) {
          if (c == i) {
            continue;
          }
          if (ngroups + 1 >= groupIn.length) {
            groupIn = Arrays.copyOf(groupIn, groupIn.length * 2);
            groupOff = Arrays.copyOf(groupOff, groupIn.length + 1);
          }
          if (off + k1 + len > groupOut.length) {
            groupOut = Arrays.copyOf(groupOut, Math.max(groupOut.length * 2, off + k1 + len));
          }
          groupIn[ngroups] = inSlots.slot(tokens[c]);
          groupOff[ngroups] = off;
          if (neg > 0) {
            groupOut[off++] = centerEntry;
            for (int d = 1; d <= neg; d++) {
              int target = unigrams.sample(next());
              if (target != center) {
                groupOut[off++] = (outSlots.slot(target) << 2) | LABEL0;
              }
            }
          }
          System.arraycopy(nodes, 0, groupOut, off, len);
          off += len;
          ngroups++;
        }
      }
      start = end;
    }
    groupOff[ngroups] = off;
    b.groupIn = groupIn;
    b.groupOut = groupOut;
    b.groupOff = groupOff;
    b.ngroups = ngroups;
    b.nin = inSlots.size();
    b.nout = outSlots.size();
  }

  /**
   * Runs the plan, word2vec's update per target: {@code g = label - sigmoid(in.out)}, the output row
   * at once, the input row after all of the pair's targets; a tree node is not updated where {@code
   * |in.node| >= MAX_EXP} (word2vec.c's {@code hs} branch skips it, its {@code negative} branch
   * clamps). Values are read from {@code inRows}/{@code outRows}; changes go to {@code dIn} / {@code
   * dOut} scaled by {@code a}: with {@code a = lr} and the row arrays themselves this is word2vec's
   * in-place update; with {@code a = -1} and zeroed arrays it sums the loss gradients.
   *
   * <p>The dot products of all targets go first, as independent chains that the CPU overlaps: exact
   * as long as no target repeats within the pair (the input row changes only after the pair, an
   * output row only by its own target's update). Tree nodes are distinct and apart from the other
   * rows; repeated negatives fall back to one dot product per update.
   */
  private void run(Batch b, float a, float[] dIn, float[] dOut) {
    float[] win = b.inRows;
    float[] wout = b.outRows;
    int[] groupIn = b.groupIn;
    int[] groupOut = b.groupOut;
    int[] groupOff = b.groupOff;
    int ngroups = b.ngroups;
    int c = dim;
    float[] e = neu1e;
    float[] fs = dots;
    boolean inPlace = dOut == wout;
    int neg = p.negatives();
    double loss = 0;
    long targets = 0;
    for (int g = 0; g < ngroups; g++) {
      int l1 = groupIn[g] * c;
      int from = groupOff[g];
      int len = groupOff[g + 1] - from;
      Arrays.fill(e, 0f);
      boolean early = !inPlace || neg == 0 || distinctEntries(groupOut, from, Math.min(len, k1));
      if (early) {
        for (int d = 0; d < len; d++) {
          int l2 = (groupOut[from + d] >>> 2) * c;
          fs[d] = SIMD ? VectorKernels.dot(win, l1, wout, l2, c) : dot(win, l1, wout, l2, c);
        }
      }
      for (int d = 0; d < len; d++) {
        int entry = groupOut[from + d];
        int l2 = (entry >>> 2) * c;
        float f = early ? fs[d] : SIMD ? VectorKernels.dot(win, l1, wout, l2, c) : dot(win, l1, wout, l2, c);
        boolean positive = (entry & LABEL0) == 0;
        targets++;
        int idx;
        float sig;
        if (f >= MAX_EXP) {
          idx = SIGMOID_TABLE;
          sig = 1f;
        } else if (f <= -MAX_EXP) {
          idx = 0;
          sig = 0f;
        } else {
          idx = (int) ((f + MAX_EXP) * (SIGMOID_TABLE / (2 * MAX_EXP)) + 0.5f);
          sig = SIGMOID[idx];
        }
        loss -= positive ? LOG_SIGMOID[idx] : LOG_SIGMOID[SIGMOID_TABLE - idx];
        if ((entry & HS) != 0 && (f >= MAX_EXP || f <= -MAX_EXP)) {
          continue;
        }
        float gs = (positive ? 1f : 0f) - sig;
        if (SIMD) {
          VectorKernels.update(e, gs, wout, l2, dOut, a * gs, win, l1, c);
        } else {
          axpy(e, 0, gs, wout, l2, c);
          axpy(dOut, l2, a * gs, win, l1, c);
        }
      }
      if (len > 0) {
        if (SIMD) {
          VectorKernels.axpy(dIn, l1, a, e, 0, c);
        } else {
          axpy(dIn, l1, a, e, 0, c);
        }
      }
    }
    lossSum += loss;
    lossCount += targets;
    pairs += ngroups;
  }

  private static boolean distinctEntries(int[] entries, int from, int n) {
    for (int d = 1; d < n; d++) {
      int slot = entries[from + d] >>> 2;
      for (int d2 = 0; d2 < d; d2++) {
        if (entries[from + d2] >>> 2 == slot) {
          return false;
        }
      }
    }
    return true;
  }

  /** Pairs (groups) of the last computed batch: for tests that recompute the step independently. */
  int plannedGroups() {
    return last == null ? 0 : last.ngroups;
  }

  /** The targets of group {@code g} in the last computed batch. */
  int plannedTargets(int g) {
    return last.groupOff[g + 1] - last.groupOff[g];
  }

  /**
   * Target {@code d} of group {@code g} in the last computed batch, as {@code row << 2 | HS | LABEL0}
   * (with negative sampling the center and the negatives kept come first).
   */
  long plannedTarget(int g, int d) {
    int entry = last.groupOut[last.groupOff[g] + d];
    return last.outSlots.keys()[entry >>> 2] << 2 | (entry & 3);
  }

  /** The input (context) id of group {@code g} of the last computed batch. */
  long plannedInput(int g) {
    return last.inSlots.keys()[last.groupIn[g]];
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
