package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Matrices;
import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.TestMatrices;
import io.embstore.format.Tokenizer;
import io.embstore.format.Vocabulary;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A table exported to safetensors imports back bit-for-bit, with tokens from {@code --vocab}, and
 * a matrix of GPT-2's shape imported with {@code --tokenizer gpt2} gets GPT-2's token strings and
 * records its tokenizer.
 */
class SafetensorsRoundTripTest {
  @TempDir Path tmp;

  private static void ok(CliRun r) {
    assertThat(r.exit()).as(r.err()).isZero();
  }

  @Test
  void exportThenImportGivesTheSameRowsAndTokens() throws IOException {
    int rows = 1000;
    int dim = 16;
    float[] m = TestMatrices.random(rows, dim, 3);
    m[5] = -0.0f;
    m[6] = Float.MIN_VALUE;
    Path table = tmp.resolve("t");
    Path vocab = Files.write(tmp.resolve("vocab.txt"), String.join("\n", Matrices.tokens(rows)).getBytes(StandardCharsets.UTF_8));
    try (BufferAllocator allocator = new RootAllocator()) {
      TestMatrices.write(table, m, rows, dim, 3, "range", allocator);
      Path file = tmp.resolve("t.safetensors");
      ok(CliRun.exporting("--to", "safetensors", "--table", table.toString(), "--output", file.toString()));
      CliRun list = CliRun.importing("--from", "safetensors", "--input", file.toString(), "--list");
      ok(list);
      assertThat(list.out()).isEqualTo("embedding\tF32\t[1000, 16]\t64000\n__metadata__\tformat=pt\n");
      Path back = tmp.resolve("back");
      ok(CliRun.importing("--from", "safetensors", "--input", file.toString(), "--vocab", vocab.toString(), "--shards", "4", "--output", back.toString()));
      assertThat(TestMatrices.readBits(back, allocator)).isEqualTo(TestMatrices.bits(m));
      Table t = Table.open(back);
      assertThat(t.vocabulary(allocator).tokens()).containsExactly(Matrices.tokens(rows));
      assertThat(t.manifest().properties()).containsEntry("import.tensor", "embedding").containsEntry("import.dtype", "F32");
    }
  }

  @Test
  void exportRefusesATensorNameItCannotWrite() throws IOException {
    Path table = tmp.resolve("t");
    try (BufferAllocator allocator = new RootAllocator()) {
      TestMatrices.write(table, TestMatrices.random(4, 3, 1), 4, 3, 1, "modulo", allocator);
    }
    Path out = tmp.resolve("out");
    CliRun npy = CliRun.exporting("--to", "npy", "--table", table.toString(), "--output", out.toString(), "--tensor", "w");
    assertThat(npy.exit()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(npy.err().strip()).isEqualTo("embstore export: Cannot export to npy: --tensor applies to safetensors only");
    CliRun metadata = CliRun.exporting("--to", "safetensors", "--table", table.toString(), "--output", out.toString(), "--tensor", "__metadata__");
    assertThat(metadata.exit()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(metadata.err().strip())
        .isEqualTo("embstore export: Cannot export to safetensors: tensor name '__metadata__' (must be non-empty and not __metadata__)");
    assertThat(out).doesNotExist();
  }

  @Test
  void gpt2ShapedMatrixGetsGpt2TokensAndRecordsTheTokenizer() throws IOException {
    int rows = 50_257;
    int dim = 4;
    float[] m = TestMatrices.random(rows, dim, 11);
    Path source = tmp.resolve("source");
    Path file = tmp.resolve("model.safetensors");
    Path table = tmp.resolve("gpt2");
    try (BufferAllocator allocator = new RootAllocator()) {
      TestMatrices.write(source, m, rows, dim, 1, "modulo", allocator);
      ok(CliRun.exporting("--to", "safetensors", "--table", source.toString(), "--output", file.toString(), "--tensor", "wte.weight"));
      ok(CliRun.importing("--from", "safetensors", "--input", file.toString(), "--tensor", "wte.weight", "--tokenizer", "gpt2",
          "--shards", "2", "--output", table.toString()));
      Table t = Table.open(table);
      TableManifest manifest = t.manifest();
      assertThat(manifest.properties()).containsEntry(Tokenizer.PROPERTY, "gpt2");
      Vocabulary v = t.vocabulary(allocator);
      assertThat(v.token(15496)).isEqualTo("Hello");
      assertThat(v.token(995)).isEqualTo("\u0120world");
      assertThat(Tokenizer.forTable(manifest, v).encode("Hello world")).containsExactly(15496, 995);
      assertThat(TestMatrices.readBits(table, allocator)).isEqualTo(TestMatrices.bits(m));
    }
    CliRun inspect = CliRun.inspecting("--table", table.toString(), "--token", "\u0120world");
    ok(inspect);
    assertThat(inspect.out()).startsWith("\u0120world\t" + m[995 * dim] + " ");
  }
}
