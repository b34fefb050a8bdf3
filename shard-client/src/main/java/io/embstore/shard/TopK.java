package io.embstore.shard;

/**
 * A bounded min-heap of (similarity, id) on primitive arrays: the k best seen so far. Used by a
 * shard's scan ({@link HostedShard#nearest}) and by the client's merge of the shards' answers.
 */
final class TopK {
  private final long[] ids;
  private final float[] sims;
  private int size;

  TopK(int k) {
    ids = new long[k];
    sims = new float[k];
  }

  /** Whether (a, ida) ranks below (b, idb): lower similarity, ties broken by larger id. */
  private static boolean worse(float a, long ida, float b, long idb) {
    return a < b || (a == b && ida > idb);
  }

  void offer(long id, float sim) {
    if (ids.length == 0) {
      return;
    }
    if (size < ids.length) {
      int i = size++;
      ids[i] = id;
      sims[i] = sim;
      while (i > 0) {
        int parent = (i - 1) >>> 1;
        if (!worse(sims[i], ids[i], sims[parent], ids[parent])) {
          break;
        }
        swap(i, parent);
        i = parent;
      }
    } else if (worse(sims[0], ids[0], sim, id)) {
      ids[0] = id;
      sims[0] = sim;
      siftDown(0, size);
    }
  }

  private void siftDown(int i, int n) {
    while (true) {
      int l = 2 * i + 1;
      int r = l + 1;
      int m = i;
      if (l < n && worse(sims[l], ids[l], sims[m], ids[m])) {
        m = l;
      }
      if (r < n && worse(sims[r], ids[r], sims[m], ids[m])) {
        m = r;
      }
      if (m == i) {
        return;
      }
      swap(i, m);
      i = m;
    }
  }

  private void swap(int a, int b) {
    long id = ids[a];
    ids[a] = ids[b];
    ids[b] = id;
    float s = sims[a];
    sims[a] = sims[b];
    sims[b] = s;
  }

  /** Writes the entries best first; returns their number. */
  int drainBestFirst(long[] outIds, float[] outSims) {
    int n = size;
    for (int end = n - 1; end >= 0; end--) {
      outIds[end] = ids[0];
      outSims[end] = sims[0];
      ids[0] = ids[end];
      sims[0] = sims[end];
      siftDown(0, end);
    }
    size = 0;
    return n;
  }
}
