package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The per-batch math against a dense reference computed here, independently, from the plan. */
class SkipGramTest {
  private static final int V = 6;
  private static final int C = 8;

  private static long[] counts() {
    return new long[] {50, 30, 20, 10, 5, 5};
  }

  private static InMemoryRowStore initialInput(long seed) {
    InMemoryRowStore in = InMemoryRowStore.sgd(V, C);
    float[] row = new float[C];
    for (int id = 0; id < V; id++) {
      SkipGram.initInputRow(seed, id, row);
      System.arraycopy(row, 0, in.values(), id * C, C);
    }
    return in;
  }

  private static double sigmoid(double f) {
    return 1.0 / (1.0 + Math.exp(-f));
  }

  private static double[][] dense(float[] values) {
    return dense(values, V);
  }

  @Test
  void oneSgdStepOnATinyCorpusGivesTheReferenceRows() throws Exception {
    long seed = 42;
    InMemoryRowStore in = initialInput(seed);
    InMemoryRowStore out = InMemoryRowStore.sgd(V, C);
    // Non-zero output rows so that the first pairs already have non-trivial dot products.
    for (int i = 0; i < out.values().length; i++) {
      out.values()[i] = (float) Math.sin(i) * 0.5f;
    }
    double[][] win = dense(in.values());
    double[][] wout = dense(out.values());
    SkipGram sg =
        new SkipGram(
            new SkipGram.Params(C, 2, 3, 0, true, true),
            
            Unigrams.ofCounts(counts(), 0),
            in,
            out,
            7);
    sg.add(new int[] {0, 1, 2, 3, 0, 4});
    sg.add(new int[] {5, 1, 0});
    float lr = 0.05f;
    sg.step(lr);
    // With prefetch the batch waits for the next one or for flush.
    assertThat(sg.plannedGroups()).isZero();
    sg.flush();
    assertThat(sg.plannedGroups()).isGreaterThan(6);
    reference(sg, lr, win, wout);
    for (int i = 0; i < V; i++) {
      for (int j = 0; j < C; j++) {
        assertThat((double) in.values()[i * C + j]).as("input row %d col %d", i, j).isCloseTo(win[i][j], within(2e-4));
        assertThat((double) out.values()[i * C + j]).as("output row %d col %d", i, j).isCloseTo(wout[i][j], within(2e-4));
      }
    }
    assertThat(sg.tokensSeen).isEqualTo(9);
    assertThat(sg.rowsPulled).isEqualTo(sg.rowsPushed).isPositive();
  }

  /**
   * Stores whose calls complete on the trainer's thread ({@link RowStore#inProcess}: every shard in
   * the task's own JVM) leave nothing for a prefetch to overlap: the batch is computed and pushed by
   * the step that planned it, as without prefetch, and no patch runs.
   */
  @Test
  void withInProcessStoresPrefetchComputesEachBatchInItsOwnStep() throws Exception {
    for (boolean inProcess : new boolean[] {false, true}) {
      InMemoryRowStore in = initialInput(3);
      InMemoryRowStore out = InMemoryRowStore.sgd(V, C);
      SkipGram sg = new SkipGram(new SkipGram.Params(C, 2, 3, 0, true, true), Unigrams.ofCounts(counts(), 0),
          inProcess ? inProcess(in) : in, inProcess ? inProcess(out) : out, 7);
      sg.add(new int[] {0, 1, 2, 3, 0, 4});
      sg.step(0.05f);
      sg.add(new int[] {5, 1, 0, 2});
      sg.step(0.05f);
      if (inProcess) {
        assertThat(sg.plannedGroups()).as("the second batch, computed in its own step").isGreaterThan(0);
        assertThat(sg.patchNanos).as("no patch").isZero();
      }
      long computed = sg.computeNanos;
      sg.flush();
      if (inProcess) {
        assertThat(sg.computeNanos).as("nothing held back for flush").isEqualTo(computed);
      } else {
        assertThat(sg.computeNanos).as("flush computes the batch prefetch held back").isGreaterThan(computed);
      }
    }
  }

  /** {@code store}, declaring its calls to complete on the caller's thread. */
  private static RowStore inProcess(InMemoryRowStore store) {
    return new RowStore() {
      @Override
      public int dim() {
        return store.dim();
      }

      @Override
      public void pull(long[] ids, int n, float[] out) {
        store.pull(ids, n, out);
      }

      @Override
      public void push(long[] ids, int n, float[] grads, float lr) {
        store.push(ids, n, grads, lr);
      }

      @Override
      public boolean inProcess() {
        return true;
      }
    };
  }

  /**
   * word2vec.c's sequential update for the planned pairs, in doubles: per center and negative its
   * negative branch (clamped), per tree node its hs branch (skipped where the dot product
   * saturates). Returns the number of skipped nodes.
   */
  private static int reference(SkipGram sg, double lr, double[][] win, double[][] wout) {
    int skipped = 0;
    for (int g = 0; g < sg.plannedGroups(); g++) {
      int in = (int) sg.plannedInput(g);
      double[] e = new double[C];
      for (int d = 0; d < sg.plannedTargets(g); d++) {
        long entry = sg.plannedTarget(g, d);
        int row = (int) (entry >>> 2);
        boolean node = (entry & SkipGram.HS) != 0;
        double f = 0;
        for (int j = 0; j < C; j++) {
          f += win[in][j] * wout[row][j];
        }
        if (node && (f >= 6 || f <= -6)) {
          skipped++;
          continue;
        }
        // word2vec's sigmoid table (the root's large values make its step visible), in doubles
        double sig = f >= 6 ? 1 : f <= -6 ? 0 : sigmoid(-6 + 12.0 * (int) ((f + 6) * (4096 / 12.0) + 0.5) / 4096);
        double gs = (1 - (entry & SkipGram.LABEL0)) - sig;
        for (int j = 0; j < C; j++) {
          e[j] += gs * wout[row][j];
        }
        for (int j = 0; j < C; j++) {
          wout[row][j] += lr * gs * win[in][j];
        }
      }
      for (int j = 0; j < C; j++) {
        win[in][j] += lr * e[j];
      }
    }
    return skipped;
  }

  private static double[][] dense(float[] values, int rows) {
    double[][] m = new double[rows][C];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < C; j++) {
        m[i][j] = values[i * C + j];
      }
    }
    return m;
  }

  /**
   * One batch against the reference, with hierarchical softmax alone ({@code negatives} 0: context
   * rows 0..V-2 are the tree's nodes) or besides negative sampling (nodes from row V).
   */
  private static void hsStepGivesTheReferenceRows(int negatives) throws Exception {
    int contextRows = negatives > 0 ? 2 * V - 1 : V;
    InMemoryRowStore in = initialInput(4);
    InMemoryRowStore out = InMemoryRowStore.sgd(contextRows, C);
    long base = negatives > 0 ? V : 0;
    for (int i = 0; i < out.values().length; i++) {
      out.values()[i] = (float) Math.sin(3 * i) * 0.6f;
    }
    // The root (on every path) large enough that some of its dot products saturate: the updates
    // word2vec.c skips there must be skipped here too.
    for (int j = 0; j < C; j++) {
      out.values()[(int) (base + V - 2) * C + j] *= 60f;
    }
    float[] before = out.values().clone();
    double[][] win = dense(in.values());
    double[][] wout = dense(out.values(), contextRows);
    HuffmanTree tree = HuffmanTree.of(counts());
    SkipGram sg = new SkipGram(new SkipGram.Params(C, 2, negatives, 0, true, false, true), 
        Unigrams.ofCounts(counts(), 0), tree, in, out, 7);
    sg.add(new int[] {0, 1, 2, 3, 0, 4});
    sg.add(new int[] {5, 1, 0});
    float lr = 0.1f;
    sg.step(lr);
    assertThat(sg.plannedGroups()).isGreaterThan(6);
    int[] path = new int[tree.maxDepth()];
    for (int g = 0; g < sg.plannedGroups(); g++) {
      int n = sg.plannedTargets(g);
      // Negative sampling first (the center, label 1, then negatives never equal to it), then the
      // center's path in the tree, node for node, ending at the root (row base + V-2).
      int ns = 0;
      long center = -1;
      while (ns < n && (sg.plannedTarget(g, ns) & SkipGram.HS) == 0) {
        long entry = sg.plannedTarget(g, ns);
        assertThat(entry >>> 2).isLessThan(V);
        if (ns == 0) {
          center = entry >>> 2;
          assertThat(entry & SkipGram.LABEL0).isZero();
        } else {
          assertThat(entry & SkipGram.LABEL0).isOne();
          assertThat(entry >>> 2).isNotEqualTo(center);
        }
        ns++;
      }
      assertThat(ns).isBetween(negatives > 0 ? 1 : 0, negatives + 1);
      assertThat(sg.plannedTarget(g, n - 1) >>> 2).isEqualTo(base + V - 2);
      long pathOf = -1;
      for (int id = 0; id < V && pathOf < 0; id++) {
        int len = tree.path(id, path, 0);
        boolean same = len == n - ns;
        for (int d = 0; same && d < len; d++) {
          long entry = sg.plannedTarget(g, ns + d);
          same = entry >>> 2 == base + (path[d] >>> 1) && (entry & SkipGram.LABEL0) == (path[d] & 1);
        }
        if (same) {
          pathOf = id;
        }
      }
      assertThat(pathOf).as("group %d's nodes are some id's path", g).isNotNegative();
      if (negatives > 0) {
        assertThat(pathOf).as("group %d: the path is the center's", g).isEqualTo(center);
      }
    }
    int saturated = reference(sg, lr, win, wout);
    assertThat(saturated).as("saturated tree nodes skipped").isPositive();
    for (int i = 0; i < V; i++) {
      for (int j = 0; j < C; j++) {
        assertThat((double) in.values()[i * C + j]).as("input row %d col %d", i, j).isCloseTo(win[i][j], within(2e-4));
      }
    }
    for (int i = 0; i < contextRows; i++) {
      for (int j = 0; j < C; j++) {
        assertThat((double) out.values()[i * C + j]).as("context row %d col %d", i, j).isCloseTo(wout[i][j], within(2e-4));
      }
    }
    // The row after the last inner node is no target: never touched.
    int unused = (int) (base + V - 1);
    for (int j = 0; j < C && unused < contextRows; j++) {
      assertThat(out.values()[unused * C + j]).isEqualTo(before[unused * C + j]);
    }
    assertThat(out.values()).isNotEqualTo(before);
    assertThat(sg.lossCount).isGreaterThan(sg.pairs);
  }

  @Test
  void oneHierarchicalSoftmaxStepGivesTheReferenceRows() throws Exception {
    hsStepGivesTheReferenceRows(0);
  }

  @Test
  void hierarchicalSoftmaxWithNegativeSamplingGivesTheReferenceRows() throws Exception {
    hsStepGivesTheReferenceRows(3);
  }

  @Test
  void adagradModePushesTheSummedLossGradientAtTheOldRows() throws Exception {
    InMemoryRowStore in = initialInput(3);
    InMemoryRowStore out = InMemoryRowStore.rowwiseAdagrad(V, C, 1e-8f);
    for (int i = 0; i < out.values().length; i++) {
      out.values()[i] = (float) Math.cos(i) * 0.3f;
    }
    double[][] win = dense(in.values());
    double[][] wout = dense(out.values());
    SkipGram sg =
        new SkipGram(new SkipGram.Params(C, 1, 2, 0, false, false), Unigrams.ofCounts(counts(), 0), in, out, 11);
    sg.add(new int[] {0, 1, 2, 3});
    float lr = 0.1f;
    sg.step(lr);
    // Reference: gradients at the old rows, summed per row, then SGD on the input (an SGD store)
    // and row-wise Adagrad on the output rows.
    double[][] gin = new double[V][C];
    double[][] gout = new double[V][C];
    for (int g = 0; g < sg.plannedGroups(); g++) {
      int a = (int) sg.plannedInput(g);
      for (int d = 0; d < sg.plannedTargets(g); d++) {
        long t = sg.plannedTarget(g, d);
        int o = (int) (t >>> 2);
        double f = 0;
        for (int j = 0; j < C; j++) {
          f += win[a][j] * wout[o][j];
        }
        double dl = sigmoid(f) - (1 - (t & SkipGram.LABEL0));
        for (int j = 0; j < C; j++) {
          gin[a][j] += dl * wout[o][j];
          gout[o][j] += dl * win[a][j];
        }
      }
    }
    for (int i = 0; i < V; i++) {
      double sq = 0;
      for (int j = 0; j < C; j++) {
        sq += gout[i][j] * gout[i][j];
      }
      double step = sq == 0 ? 0 : lr / (Math.sqrt(sq / C) + 1e-8);
      for (int j = 0; j < C; j++) {
        assertThat((double) in.values()[i * C + j]).isCloseTo(win[i][j] - lr * gin[i][j], within(2e-4));
        assertThat((double) out.values()[i * C + j]).isCloseTo(wout[i][j] - step * gout[i][j], within(5e-3));
      }
    }
  }

  @Test
  void prefetchedBatchesEndWhereOneBatchAtATimeEnds() throws Exception {
    // Every batch touches the same few rows, so batch k+1 is pulled before batch k's update reaches
    // the store: without the patch the two runs would differ by a whole batch of updates.
    float[][] ends = new float[2][];
    float[][] endsOut = new float[2][];
    for (int run = 0; run < 2; run++) {
      InMemoryRowStore in = initialInput(8);
      InMemoryRowStore out = InMemoryRowStore.sgd(V, C);
      SkipGram sg = new SkipGram(new SkipGram.Params(C, 2, 3, 0, true, run == 1), 
          Unigrams.ofCounts(counts(), 0), in, out, 13);
      for (int batch = 0; batch < 5; batch++) {
        sg.add(new int[] {0, 1, 2, 3, 0, 4, batch % V});
        sg.add(new int[] {5, 1, 0, 2});
        sg.step(0.05f / (batch + 1));
      }
      sg.flush();
      assertThat(sg.batches).isEqualTo(5);
      ends[run] = in.values().clone();
      endsOut[run] = out.values().clone();
    }
    InMemoryRowStore start = initialInput(8);
    assertThat(ends[0]).isNotEqualTo(start.values());
    for (int i = 0; i < ends[0].length; i++) {
      assertThat(ends[1][i]).as("input value %d", i).isCloseTo(ends[0][i], within(1e-6f));
      assertThat(endsOut[1][i]).as("output value %d", i).isCloseTo(endsOut[0][i], within(1e-6f));
    }
  }

  @Test
  void planKeepsWindowsInsideSentencesAndNeverUsesTheCenterAsANegative() throws Exception {
    InMemoryRowStore in = initialInput(1);
    InMemoryRowStore out = InMemoryRowStore.sgd(V, C);
    SkipGram sg =
        new SkipGram(new SkipGram.Params(C, 5, 5, 0, true, false), Unigrams.ofCounts(counts(), 0), in, out, 5);
    sg.add(new int[] {0, 1});
    sg.add(new int[] {2, 3, 4});
    sg.step(0.025f);
    for (int g = 0; g < sg.plannedGroups(); g++) {
      long input = sg.plannedInput(g);
      assertThat(sg.plannedTarget(g, 0) & SkipGram.LABEL0).isZero();
      long center = sg.plannedTarget(g, 0) >>> 2;
      boolean firstSentence = input <= 1;
      assertThat(center <= 1).as("pair %d: %d -> %d crosses sentences", g, input, center).isEqualTo(firstSentence);
      assertThat(center).isNotEqualTo(input);
      assertThat(sg.plannedTargets(g)).isBetween(1, 6);
      for (int d = 1; d < sg.plannedTargets(g); d++) {
        assertThat(sg.plannedTarget(g, d) >>> 2).isNotEqualTo(center);
        assertThat(sg.plannedTarget(g, d) & SkipGram.LABEL0).isOne();
      }
    }
    // Sentence 1 gives 2 pairs, sentence 2 at most 6.
    assertThat(sg.plannedGroups()).isBetween(2 + 4, 2 + 6);
  }

  @Test
  void subSamplingDropsFrequentTokensAtWord2vecsRate() throws Exception {
    long[] counts = {1_000_000, 1_000};
    Unigrams u = Unigrams.ofCounts(counts, 1e-3);
    double threshold = 1e-3 * 1_001_000;
    float keep0 = u.keep(0);
    assertThat((double) keep0).isCloseTo((Math.sqrt(1e6 / threshold) + 1) * threshold / 1e6, within(1e-6));
    assertThat(u.keep(1)).isEqualTo(1f);
    SkipGram sg =
        new SkipGram(
            new SkipGram.Params(4, 1, 1, 1e-3, true, false),
            u,
            InMemoryRowStore.sgd(2, 4),
            InMemoryRowStore.sgd(2, 4),
            9);
    int[] zeros = new int[100_000];
    sg.add(zeros);
    assertThat(sg.pendingRawTokens()).isEqualTo(100_000);
    sg.step(0.01f);
    assertThat((double) sg.tokensTrained / 100_000).isCloseTo(keep0, within(0.01));
  }

  @Test
  void aliasSamplerFollowsUnigramToThePowerThreeQuarters() {
    long[] counts = counts();
    AliasSampler s = new AliasSampler(counts, 0.75);
    long[] hits = new long[V];
    long state = 1;
    int draws = 600_000;
    for (int i = 0; i < draws; i++) {
      state += 0x9E3779B97F4A7C15L;
      hits[s.sample(SkipGram.mix64(state))]++;
    }
    double z = Arrays.stream(counts).mapToDouble(c -> Math.pow(c, 0.75)).sum();
    for (int i = 0; i < V; i++) {
      assertThat((double) hits[i] / draws).as("id %d", i).isCloseTo(Math.pow(counts[i], 0.75) / z, within(0.005));
    }
  }

  @Test
  void initialisationDependsOnlyOnSeedAndId() {
    float[] a = new float[100];
    float[] b = new float[100];
    SkipGram.initInputRow(5, 12345, a);
    SkipGram.initInputRow(5, 12345, b);
    assertThat(a).containsExactly(b);
    SkipGram.initInputRow(6, 12345, b);
    assertThat(a).isNotEqualTo(b);
    for (float v : a) {
      assertThat(v).isBetween(-0.5f / 100, 0.5f / 100);
    }
  }
}
