package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class LongIntMapTest {
  @Test
  void slotsAreHandedOutInFirstSeenOrderAcrossGrowthAndClears() {
    LongIntMap m = new LongIntMap(16);
    SplittableRandom r = new SplittableRandom(3);
    for (int batch = 0; batch < 5; batch++) {
      m.clear();
      Map<Long, Integer> expected = new HashMap<>();
      // enough distinct keys to grow the table several times from 32 entries
      for (int i = 0; i < 20_000; i++) {
        long key = r.nextLong(50_000) - 1_000;
        int slot = m.slot(key);
        Integer before = expected.putIfAbsent(key, expected.size());
        assertThat(slot).isEqualTo(before == null ? expected.size() - 1 : before);
      }
      assertThat(m.size()).isEqualTo(expected.size());
      for (Map.Entry<Long, Integer> e : expected.entrySet()) {
        assertThat(m.find(e.getKey())).isEqualTo(e.getValue());
        assertThat(m.keys()[e.getValue()]).isEqualTo(e.getKey());
      }
      // keys of the previous batch are gone after a clear, keys never added are absent
      assertThat(m.find(60_000L)).isEqualTo(-1);
    }
    m.clear();
    assertThat(m.size()).isZero();
    assertThat(m.find(5L)).isEqualTo(-1);
    assertThat(m.slot(5L)).isZero();
  }
}
