package io.embstore.shard;

import java.util.Arrays;

/**
 * Open-addressing map from non-negative long keys to int values, without boxing: the
 * deduplication table of one request. Sized once for the number of keys it will hold.
 */
final class LongIntMap {
  private static final long EMPTY = -1L;
  private final long[] keys;
  private final int[] values;
  private final int mask;

  LongIntMap(int expectedKeys) {
    int capacity = Integer.highestOneBit(Math.max(4, expectedKeys) * 2 - 1) << 1;
    keys = new long[capacity];
    values = new int[capacity];
    mask = capacity - 1;
    Arrays.fill(keys, EMPTY);
  }

  private static int hash(long key) {
    long h = key * 0x9E3779B97F4A7C15L;
    return (int) (h ^ (h >>> 32));
  }

  /** Returns the value of {@code key}, inserting {@code value} first when the key is new. */
  int putIfAbsent(long key, int value) {
    int i = hash(key) & mask;
    while (true) {
      long k = keys[i];
      if (k == EMPTY) {
        keys[i] = key;
        values[i] = value;
        return value;
      }
      if (k == key) {
        return values[i];
      }
      i = (i + 1) & mask;
    }
  }
}
