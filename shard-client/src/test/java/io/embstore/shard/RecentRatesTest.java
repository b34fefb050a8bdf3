package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The {@code stats} rates follow the last seconds, not the uptime (samples at chosen times). */
class RecentRatesTest {
  static final long SECOND = 1_000_000_000L;

  @Test
  void ratesCoverTheLastWindowOnly() {
    AtomicLong rows = new AtomicLong();
    AtomicLong requests = new AtomicLong();
    try (RecentRates rates = RecentRates.manual(rows::get, requests::get)) {
      long t0 = System.nanoTime(); // the first sample was taken at construction, just before
      // 5 s at 1,000 rows/s in 10 requests/s: the window is younger than 10 s, so it is all of it
      for (int s = 1; s <= 5; s++) {
        rows.addAndGet(1000);
        requests.addAndGet(10);
        rates.sample(t0 + s * SECOND);
      }
      double[] r = rates.perSecond(new long[] {rows.get(), requests.get()}, t0 + 5 * SECOND);
      assertThat(r[0]).isCloseTo(1000, within(1.0));
      assertThat(r[1]).isCloseTo(10, within(0.01));
      // then 20 idle seconds: the busy seconds leave the window, the rates fall to zero
      for (int s = 6; s <= 25; s++) {
        rates.sample(t0 + s * SECOND);
      }
      r = rates.perSecond(new long[] {rows.get(), requests.get()}, t0 + 25 * SECOND);
      assertThat(r).containsExactly(0, 0);
      assertThat(rates.windowSeconds(t0 + 25 * SECOND)).isCloseTo(RecentRates.WINDOW_SECONDS, within(0.001));
      // a burst of 3,000 rows in the last second: 300 rows/s over the 10 s window
      rows.addAndGet(3000);
      rates.sample(t0 + 26 * SECOND);
      r = rates.perSecond(new long[] {rows.get(), requests.get()}, t0 + 26 * SECOND);
      assertThat(r[0]).isCloseTo(300, within(0.001));
    }
  }

  @Test
  void oneThreadSamplesEverySecondUntilClosed() throws Exception {
    java.util.concurrent.atomic.AtomicInteger samples = new java.util.concurrent.atomic.AtomicInteger();
    RecentRates rates = RecentRates.start(samples::incrementAndGet);
    try {
      Thread.sleep(3500); // the sample at start, then at 1, 2 and 3 s
      assertThat(samples.get()).isGreaterThanOrEqualTo(3);
    } finally {
      rates.close();
    }
    int atClose = samples.get();
    Thread.sleep(1500);
    assertThat(samples.get()).as("no sample after close").isLessThanOrEqualTo(atClose + 1);
  }
}
