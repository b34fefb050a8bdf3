package io.embstore.spark;

import java.util.Arrays;

/**
 * word2vec's Huffman tree over the ids by count, for the hierarchical-softmax objective
 * ({@code --hs}): the V ids are the leaves, the V - 1 inner nodes are numbered {@code 0..V-2} (the
 * root is V - 2, as in word2vec.c; the context matrix holds node n in row n, or in row V + n when
 * negative sampling shares the matrix), and a pair (context, center) trains the
 * context's input row against the inner nodes on the center's path, each with label {@code 1 - code
 * bit}. Frequent ids get short paths: the mean path length is the entropy of the unigram distribution
 * (about 10 to 12 nodes for English words), instead of {@code 1 + negatives} rows.
 *
 * <p>Built in O(V) by word2vec.c's two-queue merge once the leaves are in descending count order
 * (which vocabularies built by the job already are; other orders are sorted first). Memory: one int
 * per node (parent and code bit), 8 bytes per id, shared by every task in a JVM; a path is walked
 * from the leaf up when it is needed.
 */
final class HuffmanTree {
  /** Ids above this cannot be trained with --hs: a path entry packs {@code node << 1 | bit} in an int. */
  static final int MAX_IDS = 1 << 30;
  /**
   * Heap bytes per id while a tree is built from counts: the counts (8), weights (16), parents (8)
   * and depths (8) of 2V-1 nodes; ids not in descending count order add the sort (12) and the leaf
   * positions (4). Once built it keeps 8 bytes per id (12 with positions).
   */
  static final int BUILD_BYTES_PER_ID = 56;

  private final int leaves;
  /** Parent of node n in bits 0..30, n's code bit in bit 31; nodes are leaf positions 0..V-1, then inner nodes. */
  private final int[] up;
  /** Leaf position of id i, or null when ids are already in descending count order. */
  private final int[] position;
  private final int maxDepth;

  private HuffmanTree(int leaves, int[] up, int[] position, int maxDepth) {
    this.leaves = leaves;
    this.up = up;
    this.position = position;
    this.maxDepth = maxDepth;
  }

  /** The tree of {@code counts} (one per id; zero counts are leaves too, with the longest paths). */
  static HuffmanTree of(long[] counts) {
    int v = counts.length;
    if (v < 1 || v > MAX_IDS) {
      throw new IllegalArgumentException("Cannot build a Huffman tree over " + v + " ids (must be in 1.." + MAX_IDS + ")");
    }
    int[] order = null;
    for (int i = 1; i < v; i++) {
      if (counts[i] > counts[i - 1]) {
        order = descending(counts);
        break;
      }
    }
    long[] weight = new long[2 * v - 1];
    for (int a = 0; a < v; a++) {
      weight[a] = Math.max(0, counts[order == null ? a : order[a]]);
    }
    int[] up = new int[2 * v - 1];
    // word2vec.c: leaves descending, so the smallest unmerged leaf is at pos1 (moving down) and the
    // smallest unmerged inner node at pos2 (inner nodes are created in ascending weight order).
    int pos1 = v - 1;
    int pos2 = v;
    for (int a = 0; a < v - 1; a++) {
      int min1;
      int min2;
      if (pos1 >= 0 && (pos2 >= v + a || weight[pos1] < weight[pos2])) {
        min1 = pos1--;
      } else {
        min1 = pos2++;
      }
      if (pos1 >= 0 && (pos2 >= v + a || weight[pos1] < weight[pos2])) {
        min2 = pos1--;
      } else {
        min2 = pos2++;
      }
      int node = v + a;
      weight[node] = weight[min1] + weight[min2];
      up[min1] = node;
      up[min2] = node | Integer.MIN_VALUE;
    }
    int[] position = null;
    if (order != null) {
      position = new int[v];
      for (int a = 0; a < v; a++) {
        position[order[a]] = a;
      }
    }
    // Depths top-down: a parent is created after its children, so walk inner nodes from the root.
    int[] depth = new int[2 * v - 1];
    int maxDepth = 0;
    for (int n = 2 * v - 3; n >= 0; n--) {
      depth[n] = depth[up[n] & Integer.MAX_VALUE] + 1;
      maxDepth = Math.max(maxDepth, depth[n]);
    }
    return new HuffmanTree(v, up, position, maxDepth);
  }

  /** Ids by descending count, ties by ascending id. */
  private static int[] descending(long[] counts) {
    int v = counts.length;
    long[] keys = new long[v];
    for (int i = 0; i < v; i++) {
      // Counts above 2^32 - 1 tie with each other: the tree stays a valid prefix code, only less tight.
      long c = Math.min(Math.max(counts[i], 0), 0xFFFF_FFFFL);
      keys[i] = ((0xFFFF_FFFFL - c) << 31) | i;
    }
    Arrays.sort(keys);
    int[] order = new int[v];
    for (int a = 0; a < v; a++) {
      order[a] = (int) (keys[a] & Integer.MAX_VALUE);
    }
    return order;
  }

  /** V. */
  int leaves() {
    return leaves;
  }

  /** The longest path: the most entries {@link #path} writes. */
  int maxDepth() {
    return maxDepth;
  }

  /**
   * Writes the path of {@code id} from its leaf's parent up to the root into {@code out} from
   * {@code o}: entries {@code innerNode << 1 | codeBit} where innerNode is the node number (0..V-2)
   * and codeBit the branch taken towards the leaf. Returns the number of entries.
   */
  int path(int id, int[] out, int o) {
    int root = 2 * leaves - 2;
    int node = position == null ? id : position[id];
    int n = 0;
    while (node != root) {
      int u = up[node];
      int parent = u & Integer.MAX_VALUE;
      out[o + n++] = ((parent - leaves) << 1) | (u >>> 31);
      node = parent;
    }
    return n;
  }
}
