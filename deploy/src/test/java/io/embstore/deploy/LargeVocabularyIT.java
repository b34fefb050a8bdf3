package io.embstore.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.TableManifest;
import java.io.BufferedWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A vocabulary of 10,000,000 distinct tokens trains with a 768 MB heap: {@code bin/embstore train}
 * in local mode (the driver is the executor) with {@code EMBSTORE_JAVA_OPTS=-Xmx768m}, {@code
 * --min-count 1} and a small {@code --dim}, then {@code bin/embstore verify} with the same heap.
 * Before issue 15 the driver collected the vocabulary (about 100 bytes per token) and every JVM
 * held 36 bytes per id of counts, keep probabilities and alias tables; now the counts, the
 * vocabulary and the token-to-id join stay in Spark's partitions (spilled to disk), the sampler
 * holds a few thousand runs, the vocabulary is written in pieces by the tasks, and the rows are
 * off-heap. An IT rather than a unit test: it takes several minutes on 2 cores.
 */
class LargeVocabularyIT {
  static final int DISTINCT = 10_000_000;
  static final int FREQUENT = 100;
  @TempDir Path tmp;

  /**
   * Lines of 1,000 tokens: every token of {@code t0..t9999999} once, and every 5th token one of 100
   * frequent words ({@code f0..f99}, 25,000 times each).
   */
  static Path corpus(Path file) throws Exception {
    try (BufferedWriter w = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
      StringBuilder line = new StringBuilder(12_000);
      int inLine = 0;
      for (int i = 0; i < DISTINCT; i++) {
        if (inLine > 0) {
          line.append(' ');
        }
        line.append('t').append(i);
        if (i % 4 == 3) {
          line.append(" f").append((i / 4) % FREQUENT);
          inLine++;
        }
        if (++inLine >= 1000) {
          w.write(line.append('\n').toString());
          line.setLength(0);
          inLine = 0;
        }
      }
      w.write(line.append('\n').toString());
    }
    return file;
  }

  @Test
  void tenMillionDistinctTokensTrainAndVerifyWithA768MegabyteHeap() throws Exception {
    Path text = corpus(tmp.resolve("corpus.txt"));
    Path table = tmp.resolve("table");
    Map<String, String> env = Map.of("EMBSTORE_JAVA_OPTS", "-Xmx768m");
    List<String> train = new ArrayList<>(List.of(ClusterEndToEndIT.script("bin/embstore").toString(), "train",
        "--input", text.toString(), "--output", table.toString(), "--min-count", "1", "--dim", "4", "--window", "2",
        "--negatives", "2", "--epochs", "1", "--shards", "2", "--checkpoint-minutes", "0", "--progress-seconds", "15"));
    long t0 = System.nanoTime();
    Processes.Result trained = Processes.run(tmp, env, Duration.ofMinutes(25), train);
    double seconds = (System.nanoTime() - t0) / 1e9;
    String out = trained.out() + "\n" + trained.err();
    System.out.printf("embstore train, 10 M distinct tokens, -Xmx768m: exit %d in %.0f s%n%s%n", trained.exit(), seconds,
        out.lines().filter(l -> l.contains("vocabulary") || l.contains("trained ") || l.contains("wrote ")).reduce("", (a, b) -> a + b + "\n"));
    assertThat(trained.exit()).as("embstore train: %s", tail(out)).isZero();
    assertThat(withoutRecoveredPageRetries(out)).doesNotContain("OutOfMemoryError");
    // Progress while the vocabulary was built, then its figures.
    assertThat(out).contains("vocabulary: count tokens").contains("vocabulary: map tokens to ids (join)")
        .contains("vocabulary and sampler: V=10,000,100, 12,500,000 tokens, 2 runs of equal counts (32 bytes)");

    TableManifest m = TableManifest.read(table);
    assertThat(m.rows()).isEqualTo(DISTINCT + FREQUENT);
    assertThat(m.dim()).isEqualTo(4);
    assertThat(m.vocabularyFiles()).as("the vocabulary in pieces, written by the tasks").hasSizeGreaterThan(1);
    assertThat(m.properties()).containsEntry("train.complete", "true");

    Processes.Result verified = Processes.run(tmp, env, Duration.ofMinutes(10),
        List.of(ClusterEndToEndIT.script("bin/embstore").toString(), "verify", "--table", table.toString()));
    assertThat(verified.exit()).as("embstore verify: %s", verified).isZero();
    assertThat(verified.out()).contains("ok: " + table);
  }

  @Test
  void onlySparksRecoveredPageRetriesAreLetThrough() {
    String retried = "23:09:51 WARN  TaskMemoryManager: Failed to allocate a page (67108864 bytes) for 0 times, try again.\n"
        + "java.lang.OutOfMemoryError: Java heap space\n\tat org.apache.spark.unsafe.memory.HeapMemoryAllocator.allocate\n";
    assertThat(withoutRecoveredPageRetries(retried)).doesNotContain("OutOfMemoryError");
    assertThat(withoutRecoveredPageRetries(retried + "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space\n"))
        .contains("OutOfMemoryError");
    assertThat(withoutRecoveredPageRetries("java.lang.OutOfMemoryError: Direct buffer memory\n")).contains("OutOfMemoryError");
  }

  /**
   * {@code out} without Spark's recovered page retries: when a 64 MB page of a sort cannot be
   * allocated, {@code TaskMemoryManager} logs the {@code OutOfMemoryError}, spills and tries again
   * (seen in CI when a thread held the GC locker: "Retried waiting for GCLocker too often allocating
   * 8388610 words", with the heap not full). Any other {@code OutOfMemoryError} still fails the test.
   */
  static String withoutRecoveredPageRetries(String out) {
    return out.replaceAll("TaskMemoryManager: Failed to allocate a page \\(\\d+ bytes\\) for \\d+ times, try again\\.\\R"
        + "java\\.lang\\.OutOfMemoryError: Java heap space", "TaskMemoryManager: page retried");
  }

  private static String tail(String s) {
    return s.substring(Math.max(0, s.length() - 8000));
  }
}
