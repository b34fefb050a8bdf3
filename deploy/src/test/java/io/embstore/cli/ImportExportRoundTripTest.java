package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Matrices;
import io.embstore.format.Table;
import io.embstore.format.TestMatrices;
import io.embstore.format.Vocabulary;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Import then export through the commands gives back the same bytes, values and tokens. */
class ImportExportRoundTripTest {
  @TempDir Path tmp;
  private BufferAllocator allocator;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    allocator.close();
  }

  private static void ok(CliRun r) {
    assertThat(r.exit()).as(r.err()).isZero();
  }

  @ParameterizedTest
  @CsvSource({"modulo, 1, 7, 3", "modulo, 4, 30000, 40", "range, 3, 30000, 40", "modulo, 7, 7, 1"})
  void npyRoundTripIsByteExact(String partitioner, int shards, int rows, int dim) throws IOException {
    Path npy = Matrices.npy(tmp.resolve("m.npy"), TestMatrices.random(rows, dim, rows), rows, dim);
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "" + shards, "--partitioner", partitioner, "--output", table.toString()));
    Path back = tmp.resolve("back.npy");
    ok(CliRun.exporting("--to", "npy", "--table", table.toString(), "--output", back.toString()));
    assertThat(Files.readAllBytes(back)).isEqualTo(Files.readAllBytes(npy));
    ok(CliRun.verifying("--table", table.toString()));
  }

  @Test
  void gzipInputIsReadTransparently() throws IOException {
    float[] m = TestMatrices.random(50, 4, 5);
    Path npy = Matrices.npy(tmp.resolve("m.npy"), m, 50, 4);
    Path gz = tmp.resolve("m.npy.gz");
    try (OutputStream o = new GZIPOutputStream(Files.newOutputStream(gz))) {
      o.write(Files.readAllBytes(npy));
    }
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "npy", "--input", gz.toString(), "--shards", "2", "--output", table.toString()));
    Path back = tmp.resolve("back.npy");
    ok(CliRun.exporting("--to", "npy", "--table", table.toString(), "--output", back.toString()));
    assertThat(Files.readAllBytes(back)).isEqualTo(Files.readAllBytes(npy));
  }

  @Test
  void npyHeaderVersions2And3AreRead() throws IOException {
    float[] m = TestMatrices.random(3, 2, 6);
    for (int major : new int[] {2, 3}) {
      String dict = Matrices.dict("<f4", false, "(3, 2)");
      byte[] body = dict.getBytes(StandardCharsets.UTF_8);
      int hlen = body.length + 1;
      int pad = 64 - ((12 + hlen) % 64);
      ByteBuffer b = ByteBuffer.allocate(12 + hlen + pad + 24).order(ByteOrder.LITTLE_ENDIAN);
      b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) major, 0}).putInt(hlen + pad).put(body);
      for (int i = 0; i < pad; i++) {
        b.put((byte) ' ');
      }
      b.put((byte) '\n').put(Matrices.le(m));
      Path f = Files.write(tmp.resolve("v" + major + ".npy"), b.array());
      Path table = tmp.resolve("t" + major);
      ok(CliRun.importing("--from", "npy", "--input", f.toString(), "--shards", "1", "--output", table.toString()));
      assertThat(CliRun.inspecting("--table", table.toString(), "--id", "2").out()).isEqualTo("2\t" + m[4] + " " + m[5] + "\n");
    }
  }

  @ParameterizedTest
  @CsvSource({"word2vec, word2vec", "word2vec-bin, word2vec-bin", "word2vec, word2vec-bin", "word2vec-bin, word2vec"})
  void word2VecRoundTripKeepsValuesAndTokens(String exportAs, String reimportAs) throws IOException {
    int rows = 300;
    int dim = 5;
    float[] m = TestMatrices.random(rows, dim, 11);
    m[7] = Float.MIN_VALUE;
    m[8] = -Float.MAX_VALUE;
    m[9] = 1e-30f;
    String[] tokens = Matrices.tokens(rows);
    tokens[3] = "naïve";
    tokens[4] = "東京";
    Path npy = Matrices.npy(tmp.resolve("m.npy"), m, rows, dim);
    Path vocab = Files.writeString(tmp.resolve("v.txt"), String.join("\n", tokens) + "\n");
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "npy", "--input", npy.toString(), "--vocab", vocab.toString(), "--shards", "3", "--output", table.toString()));
    Path file = tmp.resolve("w." + exportAs);
    ok(CliRun.exporting("--to", exportAs, "--table", table.toString(), "--output", file.toString()));
    Path again = tmp.resolve("again");
    ok(CliRun.importing("--from", exportAs, "--input", file.toString(), "--shards", "2", "--output", again.toString()));
    assertSameTable(again, m, rows, dim, List.of(tokens));
    Path back = tmp.resolve("back.npy");
    ok(CliRun.exporting("--to", "npy", "--table", again.toString(), "--output", back.toString()));
    assertThat(Files.readAllBytes(back)).isEqualTo(Files.readAllBytes(npy));
  }

  @Test
  void gloveTextIsImportedWithItsTokens() throws IOException {
    float[] m = TestMatrices.random(4, 3, 12);
    String[] tokens = {"the", ",", "of", "<unk>"};
    Path f = Matrices.text(tmp.resolve("glove.txt"), null, tokens, m, 3);
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "glove", "--input", f.toString(), "--shards", "2", "--partitioner", "range", "--output", table.toString()));
    assertSameTable(table, m, 4, 3, List.of(tokens));
    assertThat(CliRun.inspecting("--table", table.toString(), "--token", "<unk>").out())
        .isEqualTo("<unk>\t" + m[9] + " " + m[10] + " " + m[11] + "\n");
  }

  @Test
  void word2VecTextWithTrailingSpacesAndCrLfIsImported() throws IOException {
    Path f = Files.writeString(tmp.resolve("w.txt"), "2 2\r\na 1.5 -2 \r\nb 3e-2 4 \r\n");
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "word2vec", "--input", f.toString(), "--shards", "1", "--output", table.toString()));
    assertSameTable(table, new float[] {1.5f, -2f, 3e-2f, 4f}, 2, 2, List.of("a", "b"));
  }

  @Test
  void tableWithoutVocabularyExportsIdsAsTokens() throws IOException {
    float[] m = TestMatrices.random(3, 2, 13);
    Path npy = Matrices.npy(tmp.resolve("m.npy"), m, 3, 2);
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "1", "--output", table.toString()));
    Path w = tmp.resolve("w.txt");
    ok(CliRun.exporting("--to", "word2vec", "--table", table.toString(), "--output", w.toString()));
    assertThat(Files.readAllLines(w)).containsExactly("3 2", "0 " + m[0] + " " + m[1], "1 " + m[2] + " " + m[3], "2 " + m[4] + " " + m[5]);
  }

  @Test
  void exportRefusesAnExistingFileAndLeavesNoTemporaryFile() throws IOException {
    Path npy = Matrices.npy(tmp.resolve("m.npy"), TestMatrices.random(3, 2, 1), 3, 2);
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "1", "--output", table.toString()));
    CliRun r = CliRun.exporting("--to", "npy", "--table", table.toString(), "--output", npy.toString());
    assertThat(r.exit()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(r.err()).isEqualTo("embstore export: Cannot export to " + npy + ": it already exists (choose a new file or remove it)\n");
    Files.delete(table.resolve("manifest.json"));
    Path out = tmp.resolve("x.npy");
    CliRun broken = CliRun.exporting("--to", "npy", "--table", table.toString(), "--output", out.toString());
    assertThat(broken.exit()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(broken.err()).contains("no manifest.json");
    try (var s = Files.list(tmp)) {
      assertThat(s.map(p -> p.getFileName().toString())).containsExactlyInAnyOrder("m.npy", "t");
    }
  }

  private void assertSameTable(Path dir, float[] m, int rows, int dim, List<String> tokens) throws IOException {
    Table t = Table.open(dir);
    assertThat(t.manifest().rows()).isEqualTo(rows);
    assertThat(t.manifest().dim()).isEqualTo(dim);
    float[] got = new float[rows * dim];
    t.forEachRowInIdOrder(
        allocator,
        true,
        (firstId, n, buf, offset) -> {
          for (int i = 0; i < n * dim; i++) {
            got[(int) (firstId * dim) + i] = buf.getFloat(offset + 4L * i);
          }
        });
    assertThat(got).isEqualTo(m);
    Vocabulary v = t.vocabulary(allocator);
    assertThat(v.tokens()).isEqualTo(tokens);
  }
}
