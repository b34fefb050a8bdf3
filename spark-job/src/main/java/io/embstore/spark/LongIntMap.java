package io.embstore.spark;

import java.util.Arrays;

/**
 * Id to local-slot map of one mini-batch: open addressing, linear probing, cleared in O(1) by a
 * generation stamp so that a batch costs nothing for the slots it did not touch. Slots are handed
 * out in first-seen order, so {@link #keys()} lists the distinct ids of the batch.
 */
final class LongIntMap {
  private long[] keys;
  private int[] values;
  private int[] stamps;
  private int generation = 1;
  private int mask;
  private long[] order;
  private int size;

  LongIntMap(int expected) {
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
