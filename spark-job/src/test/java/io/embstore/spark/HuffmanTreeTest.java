package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashSet;
import java.util.PriorityQueue;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The tree against the definition of a Huffman code: a complete prefix code of least weighted length. */
class HuffmanTreeTest {
  private static int[] lengths(HuffmanTree t) {
    int[] path = new int[t.maxDepth()];
    int[] len = new int[t.leaves()];
    for (int id = 0; id < t.leaves(); id++) {
      len[id] = t.path(id, path, 0);
    }
    return len;
  }

  /** Least weighted path length, merged with a priority queue (the textbook construction). */
  private static long optimalCost(long[] counts) {
    PriorityQueue<Long> q = new PriorityQueue<>();
    for (long c : counts) {
      q.add(c);
    }
    long cost = 0;
    while (q.size() > 1) {
      long s = q.poll() + q.poll();
      cost += s;
      q.add(s);
    }
    return cost;
  }

  private static void assertHuffmanCode(long[] counts) {
    HuffmanTree t = HuffmanTree.of(counts);
    int v = counts.length;
    int[] path = new int[t.maxDepth()];
    double kraft = 0;
    long cost = 0;
    int deepest = 0;
    Set<Integer> leafEdges = new HashSet<>();
    for (int id = 0; id < v; id++) {
      int n = t.path(id, path, 0);
      deepest = Math.max(deepest, n);
      kraft += Math.pow(2, -n);
      cost += counts[id] * n;
      for (int d = 0; d < n; d++) {
        assertThat(path[d] >>> 1).as("inner node of id %d", id).isBetween(0, v - 2);
      }
      // Paths end at the root (row V-2, word2vec.c's numbering); the edge into the leaf is the leaf's own.
      assertThat(path[n - 1] >>> 1).isEqualTo(v - 2);
      assertThat(leafEdges.add(path[0])).as("edge into leaf %d is shared", id).isTrue();
    }
    assertThat(kraft).as("Kraft sum of a complete prefix code").isCloseTo(1.0, org.assertj.core.api.Assertions.within(1e-9));
    assertThat(cost).as("weighted path length").isEqualTo(optimalCost(counts));
    assertThat(t.maxDepth()).isEqualTo(deepest);
  }

  @Test
  void smallTreeHasTheTextbookCodeLengths() {
    HuffmanTree t = HuffmanTree.of(new long[] {5, 3, 2, 1, 1});
    assertThat(lengths(t)).containsExactly(1, 2, 3, 4, 4);
    int[] path = new int[4];
    // The two rarest ids hang from the same inner node with opposite bits.
    t.path(3, path, 0);
    int a = path[0];
    t.path(4, path, 0);
    assertThat(path[0] >>> 1).isEqualTo(a >>> 1);
    assertThat((path[0] & 1) ^ (a & 1)).isEqualTo(1);
  }

  @Test
  void zipfAndRandomCountsGiveACompleteOptimalPrefixCode() {
    long[] zipf = new long[5000];
    for (int i = 0; i < zipf.length; i++) {
      zipf[i] = Math.max(1, (long) (1e7 / Math.pow(i + 1, 1.1)));
    }
    assertHuffmanCode(zipf);
    Random r = new Random(3);
    long[] random = new long[777];
    for (int i = 0; i < random.length; i++) {
      random[i] = r.nextInt(1000);
    }
    // Not in descending order: sorted first, same optimal cost.
    assertHuffmanCode(random);
    assertHuffmanCode(new long[] {4, 4});
    assertHuffmanCode(new long[] {1, 1, 1, 1, 1, 1, 1});
  }

  @Test
  void oneIdHasAnEmptyPathAndNoIdsIsAnError() {
    HuffmanTree t = HuffmanTree.of(new long[] {9});
    assertThat(t.path(0, new int[1], 0)).isZero();
    assertThatThrownBy(() -> HuffmanTree.of(new long[0]))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot build a Huffman tree over 0 ids (must be in 1.." + HuffmanTree.MAX_IDS + ")");
  }

  /**
   * The heap a build takes, as docs/training.md states it (56 bytes per id with the counts, the
   * figure the job checks against the executor heap): measured as the bytes this thread allocates.
   */
  @Test
  void aBuildAllocatesAtMostTheStatedBytesPerId() {
    int v = 1_000_000;
    long[] descending = new long[v];
    long[] shuffled = new long[v];
    Random r = new Random(3);
    for (int i = 0; i < v; i++) {
      descending[i] = 10L * v / (i + 1);
      shuffled[i] = 1 + r.nextInt(1_000_000);
    }
    HuffmanTree.of(new long[] {3, 2, 1}); // once before measuring: class loading allocates too
    for (long[] counts : new long[][] {descending, shuffled}) {
      com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
      long before = mx.getThreadAllocatedBytes(Thread.currentThread().getId());
      HuffmanTree t = HuffmanTree.of(counts);
      long allocated = mx.getThreadAllocatedBytes(Thread.currentThread().getId()) - before;
      // the counts (8 bytes per id) are the caller's: the build itself may take the rest
      double perId = (double) allocated / v;
      System.out.printf("Huffman tree of %,d ids (%s): %.1f bytes per id allocated by the build%n", v,
          counts == descending ? "descending counts" : "any order", perId);
      assertThat(allocated).isLessThanOrEqualTo((HuffmanTree.BUILD_BYTES_PER_ID - 8L) * v + 4096);
      assertThat(t.leaves()).isEqualTo(v);
    }
  }
}
