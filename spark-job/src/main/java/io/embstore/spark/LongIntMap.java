package io.embstore.spark;

import java.util.Arrays;

/**
 * Id to local-slot map of one mini-batch: open addressing, linear probing, cleared in O(1) by a
 * generation stamp so that a batch costs nothing for the slots it did not touch. Slots are handed
 * out in first-seen order, so {@link #keys()} lists the distinct ids of the batch.
 *
 * <p>Ids below {@value #DIRECT} skip the hash table: their entry is at index id of a direct table
 * (256 KB). Vocabulary ids are numbered by descending count, so these are the frequent words that
 * most positions and most negative draws ask for; packed 8 to a cache line they mostly stay in
 * cache, where the hashed entries of a batch (tens of thousands, spread over a table of about 1 MB)
 * missed it on most probes (issue 20: the negative draws with their probes were 19% of the training
 * threads' CPU samples, bench/README.md; SlotMapBench). Other ids (rare words, id input) go through
 * the hash table.
 */
final class LongIntMap {
  static final int DIRECT = 1 << 15;
  /** Entry of id {@code i < DIRECT}: {@code generation << 32 | slot}. */
  private final long[] direct = new long[DIRECT];
  /**
   * Hashed entry h at {@code [2h, 2h+1]}: the key, then {@code generation << 32 | slot}; key and
   * stamp share a cache line.
   */
  private long[] table;
  private int generation = 1;
  private int mask;
  private long[] order;
  private int size;
  private int hashed;

  LongIntMap(int expected) {
    int cap = Integer.highestOneBit(Math.max(16, expected * 2) - 1) << 1;
    table = new long[2 * cap];
    mask = cap - 1;
    order = new long[Math.max(16, expected)];
  }

  void clear() {
    size = 0;
    hashed = 0;
    generation++;
    if (generation == Integer.MAX_VALUE) {
      for (int i = 1; i < table.length; i += 2) {
        table[i] = 0;
      }
      Arrays.fill(direct, 0);
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
    if ((key & -DIRECT) == 0) {
      long meta = direct[(int) key];
      return (int) (meta >>> 32) == generation ? (int) meta : -1;
    }
    long[] t = table;
    int h = mix(key) & mask;
    long meta;
    while ((int) ((meta = t[2 * h + 1]) >>> 32) == generation) {
      if (t[2 * h] == key) {
        return (int) meta;
      }
      h = (h + 1) & mask;
    }
    return -1;
  }

  /** The slot of {@code key}, adding it when new. */
  int slot(long key) {
    if ((key & -DIRECT) == 0) {
      long meta = direct[(int) key];
      if ((int) (meta >>> 32) == generation) {
        return (int) meta;
      }
      direct[(int) key] = (long) generation << 32 | size;
      return append(key);
    }
    long[] t = table;
    int h = mix(key) & mask;
    long meta;
    while ((int) ((meta = t[2 * h + 1]) >>> 32) == generation) {
      if (t[2 * h] == key) {
        return (int) meta;
      }
      h = (h + 1) & mask;
    }
    if (hashed * 4 >= t.length) {
      grow();
      return slot(key);
    }
    t[2 * h] = key;
    t[2 * h + 1] = (long) generation << 32 | size;
    hashed++;
    return append(key);
  }

  private int append(long key) {
    if (size == order.length) {
      order = Arrays.copyOf(order, size * 2);
    }
    order[size] = key;
    return size++;
  }

  /** Twice the hash table's capacity; direct entries stay (they keep their generation). */
  private void grow() {
    long[] old = table;
    int cap = old.length; // twice the old capacity
    long[] bigger = new long[2 * cap];
    int m = cap - 1;
    for (int i = 0; i < old.length; i += 2) {
      if ((int) (old[i + 1] >>> 32) == generation) {
        int h = mix(old[i]) & m;
        while ((int) (bigger[2 * h + 1] >>> 32) == generation) {
          h = (h + 1) & m;
        }
        bigger[2 * h] = old[i];
        bigger[2 * h + 1] = old[i + 1];
      }
    }
    table = bigger;
    mask = m;
  }

  private static int mix(long key) {
    long z = key * 0x9E3779B97F4A7C15L;
    return (int) (z ^ (z >>> 29));
  }
}
