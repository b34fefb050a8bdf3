package io.embstore.format.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.embstore.format.Checksums;
import io.embstore.format.ShardReader;
import io.embstore.format.Table;
import io.embstore.format.TableFormatException;
import io.embstore.format.TableManifest;
import io.embstore.format.TestMatrices;
import io.embstore.format.convert.ImportFormat;
import io.embstore.format.convert.Importer;
import io.embstore.format.convert.InputFormatException;
import io.embstore.format.fault.TableFiles;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Coverage-guided fuzz targets (Jazzer) for everything that reads bytes from outside into a table:
 * the manifest parser, the shard file reader (past its checksum: the manifest is rewritten with the
 * input's length and CRC-32C, so the reader itself meets the bytes) and every importer (NumPy,
 * word2vec text and binary, GloVe). A target fails on any exception other than the format's own
 * ({@link TableFormatException} for tables; {@link InputFormatException} or another {@link
 * IOException}, or an IllegalArgumentException starting "Cannot", for imports), and on a leak of
 * off-heap memory.
 *
 * <p>By default (the test run) each target runs on the empty input and on every file in {@code
 * src/test/resources/io/embstore/format/fuzz/FormatFuzzTestInputs/<target>/}: the seeds and every
 * finding, each a regression test. {@code JAZZER_FUZZ=1} fuzzes one target ({@code bench/fuzz.sh}
 * runs each in turn and reports executions, coverage and findings). A safetensors importer (being
 * added on another branch) gets its target here, next to the others: {@code importSafetensors}
 * with seeds of a valid file.
 */
class FormatFuzzTest {
  static Path work;
  static Path table;
  static TableManifest template;
  static long counter;

  @BeforeAll
  static void setUp() throws IOException {
    work = Files.createTempDirectory("embstore-format-fuzz");
    table = work.resolve("t");
    try (BufferAllocator a = new RootAllocator()) {
      template = TestMatrices.write(table, TestMatrices.random(10, 3, 1), 10, 3, 1, "modulo", a);
    }
  }

  @AfterAll
  static void tearDown() throws IOException {
    TableFiles.deleteTree(work);
  }



  /**
   * Runs {@code body} with its own allocator; a leak fails, except the one Arrow 19 is known for
   * (docs/reliability.md, "Known limits") after a refusal that came through its MessageSerializer.
   * {@code body} returns the exception it expected and caught, or null.
   */
  private static void withAllocator(IoBody body) {
    BufferAllocator a = new RootAllocator();
    Throwable seen = null;
    try {
      seen = body.run(a);
    } catch (IOException e) {
      seen = e;
      throw new UncheckedIOException(e);
    } catch (RuntimeException | Error e) {
      seen = e;
      throw e;
    } finally {
      try {
        a.close();
      } catch (IllegalStateException leak) {
        if (seen == null || !causedIn(seen, "org.apache.arrow.vector.ipc.message.MessageSerializer")) {
          AssertionError e = new AssertionError("off-heap memory leaked after " + (seen == null ? "success" : seen) + ": "
              + leak.getMessage().lines().findFirst().orElse(""), leak);
          if (seen != null) {
            e.addSuppressed(seen);
          }
          throw e;
        }
      }
    }
  }

  interface IoBody {
    Throwable run(BufferAllocator a) throws IOException;
  }

  static boolean causedIn(Throwable t, String className) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      for (StackTraceElement e : c.getStackTrace()) {
        if (e.getClassName().equals(className)) {
          return true;
        }
      }
    }
    return false;
  }

  /** The manifest parser on the input, and on the input with a matching checksum member appended (so the JSON itself is parsed). */
  @FuzzTest(maxDuration = "10s")
  void manifest(byte[] data) {
    for (byte[] bytes : new byte[][] {data, withChecksum(data)}) {
      try {
        TableManifest.parse(bytes, "manifest.json");
      } catch (TableFormatException expected) {
        // refused with the format's own exception
      }
    }
  }

  /** {@code head}, then the checksum member a manifest ends with, over {@code head} and the comma before it. */
  static byte[] withChecksum(byte[] head) {
    byte[] covered = java.util.Arrays.copyOf(head, head.length + 2);
    covered[head.length] = ',';
    covered[head.length + 1] = '\n';
    byte[] tail = ("  \"checksum\" : \"crc32c:" + Checksums.hex(Checksums.crc32c(covered, 0, covered.length)) + "\"\n}\n")
        .getBytes(java.nio.charset.StandardCharsets.UTF_8);
    byte[] all = java.util.Arrays.copyOf(covered, covered.length + tail.length);
    System.arraycopy(tail, 0, all, covered.length, tail.length);
    return all;
  }

  @FuzzTest(maxDuration = "10s")
  void shardFile(byte[] data) throws IOException {
    Path shard = table.resolve(template.shard(0).file());
    Files.write(shard, data);
    TableManifest.ShardEntry e = template.shard(0);
    TableManifest m = template.toBuilder()
        .setShard(new TableManifest.ShardEntry(e.index(), e.file(), e.rows(), e.minId(), e.maxId(), data.length, Checksums.crc32c(data, 0, data.length)))
        .build();
    Files.write(table.resolve("manifest.json"), m.toJson());
    withAllocator(a -> {
      try {
        Table t = Table.open(table);
        t.verify(a);
        try (ShardReader r = t.openShard(0, a, true)) {
          while (r.loadNextBatch()) {
            r.embeddings().getFloat(0);
          }
        }
        return null;
      } catch (TableFormatException expected) {
        return expected; // refused with the format's own exception
      }
    });
  }

  private static void importFrom(ImportFormat format, byte[] data) {
    withAllocator(a -> {
      Path dir = work.resolve("import-" + (counter++));
      Files.createDirectories(dir);
      Path input = dir.resolve("input");
      Files.write(input, data);
      try {
        Importer.run(new Importer.Options(format, input, null, 2, "modulo", io.embstore.format.TableLocation.of(dir.resolve("out")), false, null), a);
        return null;
      } catch (IOException expected) {
        return expected; // InputFormatException and the like: refused naming the input
      } catch (IllegalArgumentException e) {
        if (!String.valueOf(e.getMessage()).startsWith("Cannot")) {
          throw e;
        }
        return e;
      } finally {
        TableFiles.deleteTree(dir);
      }
    });
  }

  @FuzzTest(maxDuration = "10s")
  void importNpy(byte[] data) {
    importFrom(ImportFormat.NPY, data);
  }

  @FuzzTest(maxDuration = "10s")
  void importWord2vecText(byte[] data) {
    importFrom(ImportFormat.WORD2VEC, data);
  }

  @FuzzTest(maxDuration = "10s")
  void importWord2vecBinary(byte[] data) {
    importFrom(ImportFormat.WORD2VEC_BIN, data);
  }

  @FuzzTest(maxDuration = "10s")
  void importGlove(byte[] data) {
    importFrom(ImportFormat.GLOVE, data);
  }

  /** A safetensors file of one tensor (the seeds: F32, F16 and BF16): header length, JSON header, offsets, data. */
  @FuzzTest(maxDuration = "10s")
  void importSafetensors(byte[] data) {
    importFrom(ImportFormat.SAFETENSORS, data);
  }
}
