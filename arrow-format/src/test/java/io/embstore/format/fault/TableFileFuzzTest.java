package io.embstore.format.fault;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.embstore.format.Checksums;
import io.embstore.format.Table;
import io.embstore.format.TableFormatException;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import io.embstore.format.TestMatrices;
import io.embstore.format.Vocabulary;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fuzz-style, seeded and bounded: every file of a table (manifest, shards with optimizer state
 * columns, a vocabulary in two pieces) is damaged many ways, and the readers must answer with a {@link
 * TableFormatException} naming the file: never another exception type, never a hang, never a
 * leak. Two levels:
 *
 * <ul>
 *   <li>as on disk: bit flips, byte overwrites and truncations at every length; the checksums must
 *       catch every one;
 *   <li>past the checksums: the damaged file's length and CRC are written into the manifest (the
 *       manifest's own checksum recomputed), so the Arrow IPC and JSON parsers and the structural
 *       checks see the damaged bytes. A damaged float is a legal table, so success is allowed
 *       here; any exception other than TableFormatException is a finding.
 * </ul>
 */
class TableFileFuzzTest {
  static final long ROWS = 40;
  static final int DIM = 3;
  static final int SHARDS = 2;
  /** Last-resort bound of a whole loop (the machine may be very loaded; this is no speed check). */
  static final Duration HANG_GUARD = Duration.ofMinutes(20);
  /** A single read of a damaged table taking longer than this is reported as a hang. */
  static final long READ_HANG_SECONDS = 60;

  @TempDir Path tmp;
  BufferAllocator allocator;
  Path dir;
  List<Path> files;

  @BeforeEach
  void setUp() throws IOException {
    allocator = new RootAllocator();
    dir = tmp.resolve("t");
    TableManifest.Builder spec =
        TableManifest.builder()
            .rows(ROWS)
            .dim(DIM)
            .partitioner("modulo")
            .optimizer(new TableManifest.Optimizer("adagrad", Map.of("lr", 0.1), List.of(new TableManifest.StateColumn("accum", 1)), 7));
    float[] m = TestMatrices.random(ROWS, DIM, 3);
    List<String> tokens = new ArrayList<>();
    for (int i = 0; i < ROWS; i++) {
      tokens.add("tok" + i + (i % 3 == 0 ? "é" : ""));
    }
    try (TableWriter w = TableWriter.create(dir, spec, SHARDS, allocator)) {
      // Two pieces of the vocabulary (as a training job's executors write it): ids 0..24, 25..39.
      List<TableManifest.FileEntry> pieces = new ArrayList<>();
      for (int[] range : new int[][] {{0, 25}, {25, (int) ROWS}}) {
        try (Vocabulary.TokenWriter v = Vocabulary.pieceWriter(dir, range[0], w.tableVersion(), range[0], allocator)) {
          for (int i = range[0]; i < range[1]; i++) {
            v.add(tokens.get(i), i % 7);
          }
          pieces.add(v.finish());
        }
      }
      w.vocabularyFiles(pieces);
      ByteBuffer buf = ByteBuffer.allocateDirect(m.length * 4).order(ByteOrder.LITTLE_ENDIAN);
      buf.asFloatBuffer().put(m);
      w.appendInIdOrder(buf, (int) ROWS);
      w.commit();
    }
    files = new ArrayList<>();
    for (String f : TableFiles.list(dir)) {
      files.add(dir.resolve(f));
    }
    assertThat(files).hasSize(SHARDS + 3);
    assertThat(Table.open(dir).verify(allocator)).hasSize(SHARDS + 3);
  }

  @AfterEach
  void tearDown() {
    allocator.close();
  }

  @Test
  void everyBitFlipOverwriteAndTruncationOfEveryFileIsDetected() {
    assertTimeoutPreemptively(
        HANG_GUARD,
        () -> {
          SplittableRandom random = new SplittableRandom(61);
          int cases = 0;
          for (Path f : files) {
            byte[] original = Files.readAllBytes(f);
            String name = f.getFileName().toString();
            String expectedInMessage = name.equals("manifest.json") ? "manifest" : name;
            for (int trial = 0; trial < 300; trial++) {
              byte[] damaged = original.clone();
              String what;
              if (trial % 3 != 2) {
                int at = random.nextInt(damaged.length);
                int bit = random.nextInt(8);
                damaged[at] ^= (byte) (1 << bit);
                what = "bit " + bit + " of byte " + at;
              } else {
                int at = random.nextInt(damaged.length);
                int len = 1 + random.nextInt(Math.min(16, damaged.length - at));
                for (int i = 0; i < len; i++) {
                  damaged[at + i] = (byte) random.nextInt(256);
                }
                if (Arrays.equals(damaged, original)) {
                  continue;
                }
                what = len + " random bytes at " + at;
              }
              expectDetected(f, damaged, expectedInMessage, what);
              cases++;
            }
            // Truncation at every length near both ends (headers, footers), sampled in between,
            // and bytes appended.
            TreeSet<Integer> lengths = new TreeSet<>();
            for (int i = 0; i < 64 && i < original.length; i++) {
              lengths.add(i);
              lengths.add(original.length - 1 - i);
            }
            while (lengths.size() < Math.min(original.length, 300)) {
              lengths.add(random.nextInt(original.length));
            }
            for (int len : lengths) {
              expectDetected(f, Arrays.copyOf(original, len), expectedInMessage, "truncated to " + len + " bytes");
              cases++;
            }
            expectDetected(f, Arrays.copyOf(original, original.length + 1), expectedInMessage, "one byte appended");
            byte[] garbage = Arrays.copyOf(original, original.length + 3);
            garbage[original.length] = 'x';
            garbage[original.length + 1] = '{';
            garbage[original.length + 2] = '}';
            expectDetected(f, garbage, expectedInMessage, "'x{}' appended");
            Files.write(f, original);
          }
          assertThat(Table.open(dir).verify(allocator)).hasSize(SHARDS + 3);
          System.out.printf("file fuzz (checksummed): %d damaged files, all detected%n", cases);
        });
  }

  private void expectDetected(Path f, byte[] damaged, String expectedInMessage, String what) throws IOException {
    Files.write(f, damaged);
    Throwable t = org.assertj.core.api.Assertions.catchThrowable(() -> Table.open(dir).verify(allocator));
    if (t == null && f.getFileName().toString().equals("manifest.json") && onlyTrailingWhitespaceDiffers(damaged)) {
      // Dropping the final newline of manifest.json loses nothing: the JSON is whole and checked.
      return;
    }
    assertThat(t)
        .as("%s of %s", what, f.getFileName())
        .isInstanceOf(TableFormatException.class)
        .hasMessageContaining(expectedInMessage);
  }

  @Test
  void readersFedDamagedBytesPastTheChecksumsFailOnlyWithTableFormatException() {
    assertTimeoutPreemptively(
        HANG_GUARD,
        () -> {
          SplittableRandom random = new SplittableRandom(1127);
          byte[] manifestBytes = Files.readAllBytes(dir.resolve("manifest.json"));
          TableManifest base = TableManifest.parse(manifestBytes, "manifest.json");
          Map<String, String> findings = new LinkedHashMap<>();
          int rejected = 0;
          int accepted = 0;
          int leaks = 0;
          for (Path f : files) {
            String name = f.getFileName().toString();
            if (name.equals("manifest.json")) {
              continue;
            }
            byte[] original = Files.readAllBytes(f);
            for (int trial = 0; trial < 300; trial++) {
              byte[] damaged = mutate(original, random);
              Files.write(f, damaged);
              writeManifestFor(base, name, damaged);
              String what = "trial " + trial + " on " + name;
              Throwable t;
              String leak = null;
              // Its own root: a leaked trial must not fail the next ones.
              BufferAllocator trialAllocator = new RootAllocator();
              java.util.concurrent.ExecutorService one = java.util.concurrent.Executors.newSingleThreadExecutor();
              try {
                java.util.concurrent.Future<Throwable> future = one.submit(() -> readEverything(what, trialAllocator));
                try {
                  t = future.get(READ_HANG_SECONDS, java.util.concurrent.TimeUnit.SECONDS);
                } catch (java.util.concurrent.TimeoutException e) {
                  future.cancel(true);
                  throw new AssertionError("reading the table hung for " + READ_HANG_SECONDS + " s after " + what);
                }
              } finally {
                one.shutdownNow();
                try {
                  trialAllocator.close();
                } catch (IllegalStateException e) {
                  leak = e.getMessage().lines().findFirst().orElse("");
                }
              }
              if (leak != null) {
                // Arrow's MessageSerializer.deserializeRecordBatch does not release the buffer it
                // read a record batch into when the batch's buffer offsets are bad (Arrow 19). It is
                // recognised by its stack frames, which the build keeps even for exceptions the JIT
                // would throw without one (-XX:-OmitStackTraceInFastThrow in the surefire argLine).
                leaks++;
                if (!causedIn(t, "org.apache.arrow.vector.ipc.message.MessageSerializer")) {
                  findings.putIfAbsent("leak after " + (t == null ? "success" : t.getClass().getName() + " from " + topFrame(rootCause(t))), what + ": " + leak + " / " + t);
                }
              } else if (t == null) {
                accepted++;
              } else if (t instanceof TableFormatException) {
                rejected++;
              } else {
                findings.putIfAbsent(t.getClass().getName() + " from " + topFrame(t), what + ": " + t);
              }
            }
            Files.write(f, original);
            Files.write(dir.resolve("manifest.json"), manifestBytes);
          }
          // The manifest: mutated JSON with a correct checksum, fed to the parser.
          String text = new String(manifestBytes, StandardCharsets.UTF_8);
          // The checksum covers every byte before its line, the ",\n" ending the previous member included.
          int checksumLine = text.lastIndexOf(",\n  \"checksum\"") + 2;
          byte[] head = text.substring(0, checksumLine).getBytes(StandardCharsets.UTF_8);
          assertThat(withChecksum(head)).isEqualTo(manifestBytes);
          for (int trial = 0; trial < 800; trial++) {
            byte[] damagedHead = mutate(head, random);
            byte[] bytes = withChecksum(damagedHead);
            String what = "manifest trial " + trial;
            try {
              TableManifest.parse(bytes, "fuzzed-manifest.json");
              accepted++;
            } catch (TableFormatException e) {
              rejected++;
              assertThat(e).hasMessageContaining("fuzzed-manifest.json");
            } catch (Throwable e) {
              findings.putIfAbsent(e.getClass().getName() + " from " + topFrame(e), what + ": " + e);
            }
          }
          System.out.printf(
              "file fuzz (past checksums): %d rejected with TableFormatException, %d accepted, %d other exception types,"
                  + " %d trials leaked off-heap memory inside Arrow's MessageSerializer (upstream)%n",
              rejected, accepted, findings.size(), leaks);
          findings.forEach((k, v) -> System.out.println("  finding: " + k + " -- e.g. " + v));
          assertThat(findings).as("exceptions other than TableFormatException").isEmpty();
          assertThat(Table.open(dir).verify(allocator)).hasSize(SHARDS + 3);
        });
  }

  /** Opens the table and reads every shard, state column and the vocabulary; returns the failure. */
  private Throwable readEverything(String what, BufferAllocator allocator) {
    try {
      Table t = Table.open(dir);
      t.verify(allocator);
      TableFiles.readAll(t, allocator);
      for (int s = 0; s < SHARDS; s++) {
        try (var r = t.openShard(s, allocator, false)) {
          while (r.loadNextBatch()) {
            r.state(0).getFloat(0);
          }
        }
      }
      return null;
    } catch (Throwable e) {
      return e;
    }
  }

  private static byte[] mutate(byte[] original, SplittableRandom random) {
    byte[] b = original.clone();
    switch (random.nextInt(5)) {
      case 0 -> b[random.nextInt(b.length)] ^= (byte) (1 << random.nextInt(8));
      case 1 -> {
        int at = random.nextInt(b.length);
        int len = 1 + random.nextInt(Math.min(8, b.length - at));
        for (int i = 0; i < len; i++) {
          b[at + i] = (byte) random.nextInt(256);
        }
      }
      case 2 -> {
        // An "interesting" integer (0, -1, huge) at a random 4-byte aligned spot: lengths, offsets.
        int at = random.nextInt(b.length / 4) * 4;
        int[] values = {0, -1, Integer.MAX_VALUE, Integer.MIN_VALUE, 1 << 30, 7};
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(Math.min(at, b.length - 4), values[random.nextInt(values.length)]);
      }
      case 3 -> {
        return Arrays.copyOf(b, random.nextInt(b.length));
      }
      default -> {
        byte[] r = new byte[random.nextInt(2 * b.length + 1)];
        for (int i = 0; i < r.length; i++) {
          r[i] = (byte) random.nextInt(256);
        }
        if (random.nextBoolean() && r.length > 12) {
          // Keep Arrow's magic at both ends so that the reader goes further than the first check.
          System.arraycopy("ARROW1".getBytes(StandardCharsets.US_ASCII), 0, r, 0, 6);
          System.arraycopy("ARROW1".getBytes(StandardCharsets.US_ASCII), 0, r, r.length - 6, 6);
        }
        return r;
      }
    }
    return b;
  }

  private void writeManifestFor(TableManifest base, String file, byte[] bytes) throws IOException {
    int crc = Checksums.crc32c(bytes, 0, bytes.length);
    TableManifest.Builder b = base.toBuilder();
    List<TableManifest.FileEntry> vocab = new ArrayList<>(base.vocabularyFiles());
    int v = vocab.stream().map(TableManifest.FileEntry::file).toList().indexOf(file);
    if (v >= 0) {
      vocab.set(v, new TableManifest.FileEntry(file, vocab.get(v).rows(), bytes.length, crc));
      b.vocabularyFiles(vocab);
    } else {
      for (TableManifest.ShardEntry s : base.shards()) {
        if (s.file().equals(file)) {
          b.setShard(new TableManifest.ShardEntry(s.index(), s.file(), s.rows(), s.minId(), s.maxId(), bytes.length, crc));
        }
      }
    }
    Files.write(dir.resolve("manifest.json"), b.build().toJson());
  }

  private static byte[] withChecksum(byte[] head) {
    int crc = Checksums.crc32c(head, 0, head.length);
    byte[] tail = ("  \"checksum\" : \"crc32c:" + Checksums.hex(crc) + "\"\n}\n").getBytes(StandardCharsets.UTF_8);
    byte[] all = Arrays.copyOf(head, head.length + tail.length);
    System.arraycopy(tail, 0, all, head.length, tail.length);
    return all;
  }

  private boolean onlyTrailingWhitespaceDiffers(byte[] damaged) throws IOException {
    String original = Table.open(dir).manifest().toString();
    return new String(damaged, StandardCharsets.UTF_8).stripTrailing().equals(original.stripTrailing());
  }

  private static boolean causedIn(Throwable t, String className) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      for (StackTraceElement e : c.getStackTrace()) {
        if (e.getClassName().equals(className)) {
          return true;
        }
      }
    }
    return false;
  }

  private static Throwable rootCause(Throwable t) {
    Throwable c = t;
    while (c.getCause() != null && c.getCause() != c) {
      c = c.getCause();
    }
    return c;
  }

  private static String topFrame(Throwable t) {
    StackTraceElement[] st = t.getStackTrace();
    return st.length == 0 ? "?" : st[0].getClassName() + "." + st[0].getMethodName() + ":" + st[0].getLineNumber();
  }
}
