package io.embstore.spark;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.SplittableRandom;

/**
 * The order in which a training task reads its corpus partition. A partition keeps the corpus
 * order (every M-th sentence, book after book), so one epoch over it sweeps the corpus once under
 * one stretch of the decaying learning rate; {@link #shuffled} reads it in a random order seeded by
 * run, epoch and partition instead: the same on every attempt and after {@code --resume}.
 *
 * <p>Sentences are taken in blocks of at most {@code blockTokens} tokens (a sentence longer than a
 * block is a block of its own) and each block is shuffled (Fisher-Yates); a block holds references
 * to the cached partition's arrays, or copies when Spark reads the partition back from disk, so the
 * bound caps what a task holds.
 */
final class SentenceOrder {
  /** Tokens per shuffled block: 32 MiB of ids at most when the partition is read from disk. */
  static final long BLOCK_TOKENS = 8L << 20;

  private SentenceOrder() {}

  static Iterator<int[]> shuffled(Iterator<int[]> sentences, long seed, long blockTokens) {
    if (blockTokens < 1) {
      throw new IllegalArgumentException("Cannot shuffle sentences in blocks of " + blockTokens + " tokens: at least 1");
    }
    SplittableRandom random = new SplittableRandom(seed);
    return new Iterator<>() {
      private final List<int[]> block = new ArrayList<>();
      private int next;

      @Override
      public boolean hasNext() {
        if (next < block.size()) {
          return true;
        }
        block.clear();
        next = 0;
        long tokens = 0;
        while (sentences.hasNext() && (block.isEmpty() || tokens < blockTokens)) {
          int[] s = sentences.next();
          block.add(s);
          tokens += s.length;
        }
        for (int i = block.size() - 1; i > 0; i--) {
          Collections.swap(block, i, random.nextInt(i + 1));
        }
        return !block.isEmpty();
      }

      @Override
      public int[] next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        return block.get(next++);
      }
    };
  }
}
