package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Matrices;
import io.embstore.format.TestMatrices;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every kind of bad input: the command exits 1 with one line naming the value and the limit, and
 * no output directory is left behind.
 */
class ImportRejectsBadInputTest {
  @TempDir Path tmp;

  private Path out() {
    return tmp.resolve("table");
  }

  private String importNpy(Path input, String... extra) {
    boolean shards = Arrays.asList(extra).contains("--shards");
    String[] base =
        shards
            ? new String[] {"--from", "npy", "--input", input.toString(), "--output", out().toString()}
            : new String[] {"--from", "npy", "--input", input.toString(), "--shards", "2", "--output", out().toString()};
    String[] args = Arrays.copyOf(base, base.length + extra.length);
    System.arraycopy(extra, 0, args, base.length, extra.length);
    CliRun r = CliRun.importing(args);
    assertThat(r.exit()).as(r.err()).isEqualTo(Cli.EXIT_FAILURE);
    List<String> lines = withoutProgress(r.err());
    assertThat(lines).hasSize(1);
    assertThat(lines.get(0)).startsWith("embstore import: ");
    assertThat(out()).doesNotExist();
    return lines.get(0);
  }

  private String importAs(String format, Path input) {
    CliRun r = CliRun.importing("--from", format, "--input", input.toString(), "--shards", "2", "--output", out().toString());
    assertThat(r.exit()).as(r.err()).isEqualTo(Cli.EXIT_FAILURE);
    List<String> lines = withoutProgress(r.err());
    assertThat(lines).hasSize(1);
    assertThat(out()).doesNotExist();
    return lines.get(0);
  }

  /** stderr without the progress lines a slow import prints every few seconds. */
  private static List<String> withoutProgress(String err) {
    return err.lines().filter(l -> !l.startsWith("embstore import: progress ")).toList();
  }

  private Path goodNpy(int rows, int dim) throws IOException {
    return Matrices.npy(tmp.resolve("m.npy"), TestMatrices.random(rows, dim, 1), rows, dim);
  }

  @Test
  void float64IsRejected() throws IOException {
    Path f = Matrices.npy(tmp.resolve("m.npy"), Matrices.dict("<f8", false, "(2, 3)"), new byte[48]);
    assertThat(importNpy(f)).contains("dtype '<f8'").contains("little-endian float32 '<f4'");
  }

  @Test
  void bigEndianFloat32IsRejected() throws IOException {
    Path f = Matrices.npy(tmp.resolve("m.npy"), Matrices.dict(">f4", false, "(2, 3)"), new byte[24]);
    assertThat(importNpy(f)).contains("dtype '>f4'");
  }

  @Test
  void rankOneIsRejected() throws IOException {
    Path f = Matrices.npy(tmp.resolve("m.npy"), Matrices.dict("<f4", false, "(6,)"), new byte[24]);
    assertThat(importNpy(f)).contains("shape (6,) has rank 1 (expected a 2-D matrix (V, C))");
  }

  @Test
  void rankThreeIsRejected() throws IOException {
    Path f = Matrices.npy(tmp.resolve("m.npy"), Matrices.dict("<f4", false, "(2, 3, 4)"), new byte[96]);
    assertThat(importNpy(f)).contains("shape (2, 3, 4) has rank 3");
  }

  @Test
  void zeroRowsAreRejected() throws IOException {
    Path f = Matrices.npy(tmp.resolve("m.npy"), Matrices.dict("<f4", false, "(0, 3)"), new byte[0]);
    assertThat(importNpy(f)).contains("shape (0, 3) has 0 rows (at least 1)");
  }

  @Test
  void fortranOrderIsRejected() throws IOException {
    Path f = Matrices.npy(tmp.resolve("m.npy"), Matrices.dict("<f4", true, "(2, 3)"), new byte[24]);
    assertThat(importNpy(f)).contains("fortran_order is true").contains("np.ascontiguousarray");
  }

  @Test
  void truncatedFileIsRejectedWithBothSizes() throws IOException {
    Path f = Matrices.npy(tmp.resolve("m.npy"), Matrices.dict("<f4", false, "(4, 3)"), new byte[40]);
    assertThat(importNpy(f)).contains("truncated: shape (4, 3) needs 48 data bytes, the file has 40");
  }

  @Test
  void truncatedGzipFileIsRejected() throws IOException {
    Path plain = Matrices.npy(tmp.resolve("m.npy"), Matrices.dict("<f4", false, "(4, 3)"), new byte[40]);
    Path gz = tmp.resolve("m.npy.gz");
    try (OutputStream o = new GZIPOutputStream(Files.newOutputStream(gz))) {
      o.write(Files.readAllBytes(plain));
    }
    assertThat(importNpy(gz)).contains("truncated: shape (4, 3) needs 48 data bytes, the file has 40");
  }

  @Test
  void cutGzipStreamIsRejected() throws IOException {
    Path plain = goodNpy(100, 8);
    byte[] all;
    java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
    try (OutputStream o = new GZIPOutputStream(bytes)) {
      o.write(Files.readAllBytes(plain));
    }
    all = bytes.toByteArray();
    Path gz = Files.write(tmp.resolve("cut.npy.gz"), Arrays.copyOf(all, all.length / 2));
    assertThat(importNpy(gz)).contains("the compressed stream is damaged or truncated");
  }

  @Test
  void trailingBytesAreRejected() throws IOException {
    Path f = Matrices.npy(tmp.resolve("m.npy"), Matrices.dict("<f4", false, "(2, 3)"), new byte[28]);
    assertThat(importNpy(f)).contains("4 bytes after the data of shape (2, 3)");
  }

  @Test
  void corruptHeaderIsRejected() throws IOException {
    Path f = Matrices.npy(tmp.resolve("m.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", new byte[24]);
    assertThat(importNpy(f)).contains("corrupt .npy header (expected a number in the shape at offset");
  }

  @Test
  void missingMagicIsRejected() throws IOException {
    Path f = Files.writeString(tmp.resolve("m.npy"), "not numpy at all");
    assertThat(importNpy(f)).contains("not a NumPy .npy file");
  }

  @Test
  void headerWithoutShapeIsRejected() throws IOException {
    Path f = Matrices.npy(tmp.resolve("m.npy"), "{'descr': '<f4', 'fortran_order': False}", new byte[24]);
    assertThat(importNpy(f)).contains("corrupt .npy header (no 'shape')");
  }

  @Test
  void nanIsRejectedWithIdAndColumn() throws IOException {
    float[] m = TestMatrices.random(5, 3, 2);
    m[3 * 3 + 2] = Float.NaN;
    Path f = Matrices.npy(tmp.resolve("m.npy"), m, 5, 3);
    assertThat(importNpy(f)).contains("row 3, column 2 is NaN").contains("--allow-non-finite");
  }

  @Test
  void infinityDeepInALargeFileLeavesNoShardBehind() throws IOException {
    // 3 x 4 MiB staging buffers: shard files exist on disk when the bad value is met.
    int rows = 12_000;
    int dim = 256;
    float[] m = TestMatrices.random(rows, dim, 3);
    m[(rows - 1) * dim + 7] = Float.NEGATIVE_INFINITY;
    Path f = Matrices.npy(tmp.resolve("m.npy"), m, rows, dim);
    assertThat(importNpy(f)).contains("row 11999, column 7 is -Infinity");
  }

  @Test
  void nonFiniteValuesAreKeptWhenAllowed() throws IOException {
    float[] m = TestMatrices.random(5, 3, 2);
    m[4] = Float.POSITIVE_INFINITY;
    m[5] = Float.NaN;
    Path f = Matrices.npy(tmp.resolve("m.npy"), m, 5, 3);
    CliRun r = CliRun.importing("--from", "npy", "--input", f.toString(), "--shards", "2", "--output", out().toString(), "--allow-non-finite");
    assertThat(r.exit()).as(r.err()).isZero();
    CliRun row = CliRun.inspecting("--table", out().toString(), "--id", "1");
    assertThat(row.out()).startsWith("1\t" + m[3] + " Infinity NaN");
  }

  @Test
  void zeroShardsAreRejected() throws IOException {
    assertThat(importNpy(goodNpy(4, 3), "--shards", "0")).contains("shards=0 (must be at least 1)");
  }

  @Test
  void moreShardsThanRowsAreRejected() throws IOException {
    assertThat(importNpy(goodNpy(4, 3), "--shards", "5"))
        .contains("Cannot partition 4 rows into 5 shards (shards must be at most the number of rows)");
  }

  @Test
  void unknownPartitionerIsRejected() throws IOException {
    assertThat(importNpy(goodNpy(4, 3), "--partitioner", "hash")).contains("unknown partitioner 'hash' (known: modulo, range)");
  }

  @Test
  void existingOutputDirectoryIsRejectedAndKept() throws IOException {
    Files.createDirectories(out());
    Path keep = Files.writeString(out().resolve("keep.txt"), "mine");
    CliRun r = CliRun.importing("--from", "npy", "--input", goodNpy(4, 3).toString(), "--shards", "2", "--output", out().toString());
    assertThat(r.exit()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(r.err()).contains("Cannot import into " + out() + ": it already exists");
    assertThat(keep).hasContent("mine");
    try (var s = Files.list(out())) {
      assertThat(s).containsExactly(keep);
    }
  }

  @Test
  void vocabularyWithWrongLineCountIsRejected() throws IOException {
    Path vocab = Files.writeString(tmp.resolve("v.txt"), "a\nb\nc\n");
    assertThat(importNpy(goodNpy(4, 3), "--vocab", vocab.toString()))
        .contains("Cannot import vocabulary " + vocab + ": 3 lines, the matrix has 4 rows");
  }

  @Test
  void vocabularyWithDuplicateTokensIsRejected() throws IOException {
    Path vocab = Files.writeString(tmp.resolve("v.txt"), "a\nb\na\nc\n");
    assertThat(importNpy(goodNpy(4, 3), "--vocab", vocab.toString()))
        .contains("duplicate token 'a' at ids 0 and 2");
  }

  @Test
  void missingInputIsRejected() {
    assertThat(importNpy(tmp.resolve("nope.npy"))).contains("nope.npy: no such file");
  }

  @Test
  void unknownFormatIsRejected() throws IOException {
    assertThat(importAs("csv", goodNpy(4, 3))).contains("Cannot import from 'csv' (known formats: npy, word2vec, word2vec-bin, glove, safetensors)");
  }

  // ---------------------------------------------------------------- text formats

  @Test
  void raggedWord2VecRowNamesLineAndCounts() throws IOException {
    Path f = Files.writeString(tmp.resolve("w.txt"), "3 2\na 1 2\nb 1 2 3\nc 1 2\n");
    assertThat(importAs("word2vec", f)).contains("line 3 has 3 values, expected 2 (ragged rows)");
  }

  @Test
  void raggedGloveRowNamesLineAndCounts() throws IOException {
    Path f = Files.writeString(tmp.resolve("g.txt"), "a 1 2\nb 1 2\nc 1\n");
    assertThat(importAs("glove", f)).contains("line 3 has 1 values, expected 2 (ragged rows)");
  }

  @Test
  void duplicateWord2VecTokenNamesBothLines() throws IOException {
    Path f = Files.writeString(tmp.resolve("w.txt"), "3 2\na 1 2\nb 1 2\na 3 4\n");
    assertThat(importAs("word2vec", f)).contains("line 4: duplicate token 'a' (first at line 2)");
  }

  @Test
  void headerCountAboveLinesIsRejected() throws IOException {
    Path f = Files.writeString(tmp.resolve("w.txt"), "4 2\na 1 2\nb 1 2\n");
    assertThat(importAs("word2vec", f)).contains("the header says 4 rows, the file has 2");
  }

  @Test
  void headerCountBelowLinesIsRejected() throws IOException {
    Path f = Files.writeString(tmp.resolve("w.txt"), "2 2\na 1 2\nb 1 2\nc 1 2\n");
    assertThat(importAs("word2vec", f)).contains("line 4: more rows than the header's 2");
  }

  @Test
  void missingHeaderIsRejected() throws IOException {
    Path f = Files.writeString(tmp.resolve("w.txt"), "a 1 2\nb 1 2\n");
    assertThat(importAs("word2vec", f)).contains("line 1 is 'a 1 2', expected the word2vec header 'ROWS DIM'");
  }

  @Test
  void textValueThatIsNotANumberIsRejected() throws IOException {
    Path f = Files.writeString(tmp.resolve("w.txt"), "2 2\na 1 2\nb 1 x2\n");
    assertThat(importAs("word2vec", f)).contains("line 3, column 1: 'x2' is not a number");
  }

  @Test
  void textNanIsRejectedWithIdAndToken() throws IOException {
    Path f = Files.writeString(tmp.resolve("w.txt"), "2 2\na 1 2\nb nan 2\n");
    assertThat(importAs("word2vec", f)).contains("row 1 ('b'), column 0 is NaN");
  }

  @Test
  void truncatedWord2VecBinaryIsRejected() throws IOException {
    byte[] header = "2 3\n".getBytes(StandardCharsets.US_ASCII);
    byte[] row = Matrices.le(new float[] {1, 2, 3});
    java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
    b.write(header);
    b.write("a ".getBytes(StandardCharsets.UTF_8));
    b.write(row);
    b.write("\nb ".getBytes(StandardCharsets.UTF_8));
    b.write(row, 0, 5);
    Path f = Files.write(tmp.resolve("w.bin"), b.toByteArray());
    assertThat(importAs("word2vec-bin", f)).contains("truncated: row 1 ('b') has 5 of 12 vector bytes");
  }

  @Test
  void word2VecBinaryWithFewerRowsThanItsHeaderIsRejected() throws IOException {
    java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
    b.write("3 1\n".getBytes(StandardCharsets.US_ASCII));
    b.write("a ".getBytes(StandardCharsets.UTF_8));
    b.write(Matrices.le(new float[] {1}));
    b.write('\n');
    Path f = Files.write(tmp.resolve("w.bin"), b.toByteArray());
    assertThat(importAs("word2vec-bin", f)).contains("the header says 3 rows, the file has 1");
  }

  @Test
  void vocabOptionIsRejectedForWord2Vec() throws IOException {
    Path f = Files.writeString(tmp.resolve("w.txt"), "1 2\na 1 2\n");
    Path vocab = Files.writeString(tmp.resolve("v.txt"), "a\n");
    CliRun r = CliRun.importing("--from", "word2vec", "--input", f.toString(), "--vocab", vocab.toString(), "--shards", "1", "--output", out().toString());
    assertThat(r.exit()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(r.err()).contains("--vocab applies to npy and safetensors only (word2vec files carry their tokens)");
    assertThat(out()).doesNotExist();
  }

  @Test
  void missingRequiredOptionIsAUsageError() {
    CliRun r = CliRun.importing("--from", "npy");
    assertThat(r.exit()).isEqualTo(Cli.EXIT_USAGE);
    assertThat(r.err()).contains("Missing required option: '--input=FILE'").contains("Usage: import");
    CliRun noShardsNoOutput = CliRun.importing("--from", "npy", "--input", "m.npy");
    assertThat(noShardsNoOutput.exit()).isEqualTo(Cli.EXIT_USAGE);
    assertThat(noShardsNoOutput.err()).contains("Missing required options: '--shards=P', '--output=TABLE'").contains("Usage: import");
  }
}
