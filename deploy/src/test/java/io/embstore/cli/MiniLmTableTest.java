package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.embstore.format.Table;
import io.embstore.format.Tools;
import io.embstore.format.Vocabulary;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.zip.GZIPInputStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/** The real MiniLM-L6 token-embedding matrix (30,522 x 384) and its WordPiece vocabulary. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MiniLmTableTest {
  private static final int DIM = 384;
  private static final int HEADER = 128;

  @TempDir static Path tmp;
  private Path npyGz;
  private Path vocab;
  private Path table;
  private BufferAllocator allocator;

  @BeforeAll
  void importOnce() {
    Path dir = Tools.sharedDir().resolve("data/embeddings");
    npyGz = dir.resolve("minilm-l6-wte-30522x384-f32.npy.gz");
    vocab = dir.resolve("minilm-l6-vocab-30522.txt");
    assumeTrue(Files.isRegularFile(npyGz) && Files.isRegularFile(vocab), "shared data missing: " + dir);
    table = tmp.resolve("minilm");
    CliRun r =
        CliRun.importing(
            "--from", "npy", "--input", npyGz.toString(), "--vocab", vocab.toString(), "--shards", "4", "--output", table.toString());
    assertThat(r.exit()).as(r.err()).isZero();
    assertThat(r.out()).contains("30522 rows x 384 dims").contains("vocabulary of 30522 tokens");
    allocator = new RootAllocator();
  }

  @AfterAll
  void close() {
    if (allocator != null) {
      allocator.close();
    }
  }

  @Test
  void inspectTokenHelloShowsRow7592OfTheNpyFile() throws IOException {
    CliRun r = CliRun.inspecting("--table", table.toString(), "--token", "hello");
    assertThat(r.exit()).as(r.err()).isZero();
    String[] parts = r.out().strip().split("\t");
    assertThat(parts[0]).isEqualTo("hello");
    String[] values = parts[1].split(" ");
    assertThat(values).hasSize(DIM);
    float[] expected = npyRow(7592);
    for (int c = 0; c < DIM; c++) {
      assertThat(Float.parseFloat(values[c])).as("column %d", c).isEqualTo(expected[c]);
    }
    assertThat(CliRun.inspecting("--table", table.toString(), "--id", "7592").out()).isEqualTo("7592\t" + parts[1] + "\n");
  }

  @Test
  void cosinesOfKnownPairsMatchTheModel() throws IOException {
    Table t = Table.open(table);
    Vocabulary v = t.vocabulary(allocator);
    assertThat(v.id("hello")).isEqualTo(7592);
    assertThat(cosine(t, v, "king", "queen")).isCloseTo(0.63, within(0.03));
    assertThat(cosine(t, v, "car", "banana")).isCloseTo(0.09, within(0.03));
  }

  @Test
  void summaryAndVerifyDescribeTheTable() {
    CliRun s = CliRun.inspecting("--table", table.toString());
    assertThat(s.exit()).isZero();
    assertThat(s.out())
        .contains("shape        30522 rows (V) x 384 dims (C), float32, 46.9 MB")
        .contains("partitioner  modulo, 4 shards")
        .contains("shard-00003-v000001.arrow  7630 rows, ids 3..30519")
        .contains("vocabulary   vocab-v000001.arrow  30522 tokens")
        .contains("import.source=minilm-l6-wte-30522x384-f32.npy.gz");
    CliRun v = CliRun.verifying("--table", table.toString());
    assertThat(v.exit()).as(v.err()).isZero();
    assertThat(v.out().lines()).hasSize(7).last().asString().startsWith("ok: ");
  }

  @Test
  void exportGivesBackTheUncompressedNpyByteForByte() throws IOException, NoSuchAlgorithmException {
    Path out = tmp.resolve("minilm.npy");
    CliRun r = CliRun.exporting("--to", "npy", "--table", table.toString(), "--output", out.toString());
    assertThat(r.exit()).as(r.err()).isZero();
    MessageDigest original = MessageDigest.getInstance("SHA-256");
    MessageDigest exported = MessageDigest.getInstance("SHA-256");
    try (InputStream in = new GZIPInputStream(Files.newInputStream(npyGz), 1 << 16)) {
      original.update(in.readAllBytes());
    }
    exported.update(Files.readAllBytes(out));
    assertThat(exported.digest()).isEqualTo(original.digest());
  }

  private double cosine(Table t, Vocabulary v, String a, String b) throws IOException {
    float[] x = new float[DIM];
    float[] y = new float[DIM];
    t.readRow(v.requireId(a), x, allocator);
    t.readRow(v.requireId(b), y, allocator);
    double dot = 0;
    double nx = 0;
    double ny = 0;
    for (int i = 0; i < DIM; i++) {
      dot += x[i] * y[i];
      nx += x[i] * x[i];
      ny += y[i] * y[i];
    }
    return dot / Math.sqrt(nx * ny);
  }

  private float[] npyRow(long id) throws IOException {
    try (DataInputStream in = new DataInputStream(new GZIPInputStream(Files.newInputStream(npyGz), 1 << 16))) {
      in.skipNBytes(HEADER + id * DIM * 4);
      byte[] row = new byte[DIM * 4];
      in.readFully(row);
      float[] out = new float[DIM];
      ByteBuffer.wrap(row).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
      return out;
    }
  }
}
