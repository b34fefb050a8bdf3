package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.SplittableRandom;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.Test;

/**
 * How text becomes counted tokens before Spark aggregates them: {@link Corpus#tokenize} (a scan
 * that must split exactly as {@code strip().split("\\s+")} did, or a resumed run's vocabulary
 * would no longer match its corpus) and {@link Corpus.PartialCounts} (a partition's counts in
 * bounded maps).
 */
class TokenizeTest {
  /** What tokenize did before it scanned the line: the regex. */
  private static String[] byRegex(String line, boolean lowercase) {
    String s = line.strip();
    if (s.isEmpty()) {
      return new String[0];
    }
    if (lowercase) {
      s = s.toLowerCase(Locale.ROOT);
    }
    return s.split("\\s+");
  }

  /**
   * Random lines over an alphabet of letters and every character near the edge of the two
   * definitions of white space: the six blanks of regex \s, the separators U+001C-U+001F and
   * U+2003 (white space to String.strip, not to \s), no-break space U+00A0 and U+0085 (neither).
   */
  @Test
  void splitsExactlyAsTheRegexDid() {
    char[] alphabet = {'a', 'B', 'z', 'É', '9', ' ', '\t', '\n', '\u000B', '\f', '\r', '\u001C', '\u001F', '\u00A0',
        '\u0085', '\u2003', '\u3000'};
    SplittableRandom r = new SplittableRandom(20);
    for (int n = 0; n < 20_000; n++) {
      StringBuilder sb = new StringBuilder();
      int len = r.nextInt(16);
      for (int i = 0; i < len; i++) {
        sb.append(alphabet[r.nextInt(alphabet.length)]);
      }
      String line = sb.toString();
      boolean lower = r.nextBoolean();
      assertThat(Corpus.tokenize(line, lower)).as("line %s", escaped(line)).containsExactly(byRegex(line, lower));
    }
  }

  @Test
  void blankLinesHaveNoTokens() {
    assertThat(Corpus.tokenize("", false)).isEmpty();
    assertThat(Corpus.tokenize(" \t\r\n\u000B\f\u2003", true)).isEmpty();
    assertThat(Corpus.tokenize("  The  king\t\tOF\u00A0x ", true)).containsExactly("the", "king", "of\u00A0x");
  }

  private static String escaped(String s) {
    StringBuilder sb = new StringBuilder();
    for (char c : s.toCharArray()) {
      sb.append(c >= 0x20 && c < 0x7f ? String.valueOf(c) : String.format(Locale.ROOT, "\\u%04X", (int) c));
    }
    return sb.toString();
  }

  private static Corpus.PartialCounts<String[], String> counts(List<String[]> sentences, int limit) {
    return new Corpus.PartialCounts<>(sentences.iterator(), (s, m) -> {
      for (String t : s) {
        m.computeIfAbsent(t, k -> new long[1])[0]++;
      }
    }, limit);
  }

  /**
   * With a limit far under the distinct tokens, a token's count comes in several rows: their sums
   * are the counts, and no emitted map held more than the limit plus one sentence's tokens.
   */
  @Test
  void partialCountsSumToTheCountsWithinTheirLimit() {
    SplittableRandom r = new SplittableRandom(3);
    List<String[]> sentences = new ArrayList<>();
    Map<String, Long> expected = new HashMap<>();
    for (int s = 0; s < 2_000; s++) {
      String[] t = new String[1 + r.nextInt(9)];
      for (int i = 0; i < t.length; i++) {
        t[i] = "w" + (int) Math.floor(Math.pow(5_000, r.nextDouble()));
        expected.merge(t[i], 1L, Long::sum);
      }
      sentences.add(t);
    }
    int limit = 100;
    int[] largest = new int[1];
    Iterator<Row> it = new Corpus.PartialCounts<String[], String>(sentences.iterator(), (s, m) -> {
      for (String t : s) {
        m.computeIfAbsent(t, k -> new long[1])[0]++;
      }
      largest[0] = Math.max(largest[0], m.size());
    }, limit);
    Map<String, Long> summed = new HashMap<>();
    int rows = 0;
    while (it.hasNext()) {
      Row row = it.next();
      rows++;
      assertThat(row.getLong(1)).isPositive();
      summed.merge(row.getString(0), row.getLong(1), Long::sum);
    }
    assertThat(summed).isEqualTo(expected);
    assertThat(rows).isGreaterThan(expected.size());
    // A sentence starts only while the map is under the limit; it adds at most its 9 tokens.
    assertThat(largest[0]).isBetween(limit, limit - 1 + 9);
    assertThatThrownBy(it::next).isInstanceOf(NoSuchElementException.class);
  }

  /** Under the limit: one row per distinct token; no sentences, no rows. */
  @Test
  void partialCountsUnderTheLimitAreOneRowPerToken() {
    List<String[]> sentences = List.of(new String[] {"a", "b", "a"}, new String[] {"c", "a"}, new String[] {"b"});
    Map<String, Long> got = new HashMap<>();
    counts(sentences, 1 << 17).forEachRemaining(row -> assertThat(got.put(row.getString(0), row.getLong(1))).isNull());
    assertThat(got).containsExactlyInAnyOrderEntriesOf(Map.of("a", 3L, "b", 2L, "c", 1L));
    assertThat(counts(List.of(), 4).hasNext()).isFalse();
  }
}
