package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import org.junit.jupiter.api.Test;

class SentenceOrderTest {
  /** Sentences 0..n-1, sentence i of {@code length(i)} tokens, each token the sentence's number. */
  private static List<int[]> corpus(int n) {
    List<int[]> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int[] s = new int[1 + i % 7];
      java.util.Arrays.fill(s, i);
      out.add(s);
    }
    return out;
  }

  private static List<Integer> order(Iterator<int[]> it) {
    List<Integer> out = new ArrayList<>();
    while (it.hasNext()) {
      out.add(it.next()[0]);
    }
    return out;
  }

  @Test
  void everySentenceOnceInAnOrderSetByTheSeed() {
    List<int[]> c = corpus(1000);
    List<Integer> a = order(SentenceOrder.shuffled(c.iterator(), 42, SentenceOrder.BLOCK_TOKENS));
    List<Integer> again = order(SentenceOrder.shuffled(c.iterator(), 42, SentenceOrder.BLOCK_TOKENS));
    List<Integer> other = order(SentenceOrder.shuffled(c.iterator(), 43, SentenceOrder.BLOCK_TOKENS));
    assertThat(a).hasSize(1000).doesNotHaveDuplicates().isEqualTo(again).isNotEqualTo(other);
    assertThat(other).containsExactlyInAnyOrderElementsOf(a);
    // shuffled, not just rotated: few sentences keep their neighbour
    int kept = 0;
    for (int i = 1; i < a.size(); i++) {
      kept += a.get(i) == a.get(i - 1) + 1 ? 1 : 0;
    }
    assertThat(kept).isLessThan(20);
    // the same arrays are handed out, not copies
    assertThat(SentenceOrder.shuffled(c.iterator(), 1, 100).next()).isIn(c.toArray());
  }

  @Test
  void blocksBoundWhatIsHeldAndKeepTheirOrderAmongThemselves() {
    // lengths 1..7 repeat every 7 sentences (28 tokens): blocks of at least 28 tokens end after
    // whole 7-sentence groups when the bound is 28
    List<Integer> a = order(SentenceOrder.shuffled(corpus(700).iterator(), 7, 28));
    assertThat(a).hasSize(700);
    for (int b = 0; b < 100; b++) {
      List<Integer> block = a.subList(7 * b, 7 * b + 7);
      assertThat(block).as("block %d", b).allMatch(x -> x / 7 == block.get(0) / 7);
    }
    // a sentence longer than the bound is a block of its own
    assertThat(order(SentenceOrder.shuffled(corpus(10).iterator(), 7, 1))).containsExactly(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
  }

  @Test
  void anEmptyPartitionAndBadBlocks() {
    Iterator<int[]> none = SentenceOrder.shuffled(List.<int[]>of().iterator(), 1, 10);
    assertThat(none.hasNext()).isFalse();
    assertThatThrownBy(none::next).isInstanceOf(NoSuchElementException.class);
    assertThatThrownBy(() -> SentenceOrder.shuffled(List.<int[]>of().iterator(), 1, 0))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot shuffle sentences in blocks of 0 tokens: at least 1");
  }
}
