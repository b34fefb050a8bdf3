package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Matrices;
import io.embstore.format.TestMatrices;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code embstore verify} and {@code embstore inspect} on sound and damaged tables. */
class VerifyAndInspectCommandTest {
  private static final int ROWS = 60;
  private static final int DIM = 4;

  @TempDir Path tmp;
  private Path table;
  private float[] m;

  @BeforeEach
  void importTable() throws IOException {
    m = TestMatrices.random(ROWS, DIM, 21);
    Path npy = Matrices.npy(tmp.resolve("m.npy"), m, ROWS, DIM);
    Path vocab = Files.writeString(tmp.resolve("v.txt"), String.join("\n", Matrices.tokens(ROWS)) + "\n");
    table = tmp.resolve("t");
    CliRun r = CliRun.importing("--from", "npy", "--input", npy.toString(), "--vocab", vocab.toString(), "--shards", "3", "--output", table.toString());
    assertThat(r.exit()).as(r.err()).isZero();
  }

  @Test
  void verifyReportsEveryFileOfASoundTable() {
    CliRun r = CliRun.verifying("--table", table.toString());
    assertThat(r.exit()).isZero();
    assertThat(r.out().lines())
        .containsExactly(
            "manifest.json: ok (table version 1, V=60, C=4, P=3, modulo)",
            r.out().lines().toList().get(1),
            r.out().lines().toList().get(2),
            r.out().lines().toList().get(3),
            "vocab-v000001.arrow: ok (60 tokens)",
            "ok: " + table);
    assertThat(r.out()).contains("shard-00002-v000001.arrow: ok (20 rows, ids 2..59, crc32c ");
  }

  @Test
  void verifyDetectsBitFlipsInEveryFile() throws IOException {
    List<Path> files = new ArrayList<>();
    try (var s = Files.list(table)) {
      s.sorted().forEach(files::add);
    }
    assertThat(files).hasSize(5); // manifest, 3 shards, vocabulary
    Random random = new Random(5);
    for (Path f : files) {
      byte[] original = Files.readAllBytes(f);
      for (int trial = 0; trial < 8; trial++) {
        byte[] flipped = original.clone();
        int at = random.nextInt(flipped.length);
        flipped[at] ^= (byte) (1 << random.nextInt(8));
        Files.write(f, flipped);
        CliRun r = CliRun.verifying("--table", table.toString());
        assertThat(r.exit()).as("flip at byte %d of %s", at, f.getFileName()).isEqualTo(Cli.EXIT_FAILURE);
        assertThat(r.err().lines()).hasSize(1);
        assertThat(r.err()).startsWith("embstore verify: ").contains(f.getFileName().toString());
        Files.write(f, original);
      }
    }
    assertThat(CliRun.verifying("--table", table.toString()).exit()).isZero();
  }

  @Test
  void verifyDetectsATruncatedShard() throws IOException {
    Path shard = table.resolve("shard-00001-v000001.arrow");
    byte[] b = Files.readAllBytes(shard);
    Files.write(shard, java.util.Arrays.copyOf(b, b.length - 10));
    CliRun r = CliRun.verifying("--table", table.toString());
    assertThat(r.exit()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(r.err())
        .contains("shard-00001-v000001.arrow: length is " + (b.length - 10) + " bytes, the manifest says " + b.length);
  }

  @Test
  void verifyOfADirectoryWithoutManifestFails() throws IOException {
    Files.createDirectories(tmp.resolve("empty"));
    CliRun r = CliRun.verifying("--table", tmp.resolve("empty").toString());
    assertThat(r.exit()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(r.err()).contains("no manifest.json (not a table, or a write that never committed)");
  }

  @Test
  void inspectRowParsesBackExactly() {
    for (long id : new long[] {0, 1, 31, 59}) {
      CliRun r = CliRun.inspecting("--table", table.toString(), "--id", Long.toString(id));
      assertThat(r.exit()).as(r.err()).isZero();
      String[] parts = r.out().stripTrailing().split("\t");
      assertThat(parts[0]).isEqualTo(Long.toString(id));
      String[] values = parts[1].split(" ");
      assertThat(values).hasSize(DIM);
      for (int c = 0; c < DIM; c++) {
        assertThat(Float.parseFloat(values[c])).isEqualTo(m[(int) id * DIM + c]);
      }
    }
    assertThat(CliRun.inspecting("--table", table.toString(), "--token", "tok31").out())
        .isEqualTo(CliRun.inspecting("--table", table.toString(), "--id", "31").out().replaceFirst("^31", "tok31"));
  }

  @Test
  void inspectRejectsUnknownTokenAndIdOutOfRange() {
    CliRun t = CliRun.inspecting("--table", table.toString(), "--token", "nope");
    assertThat(t.exit()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(t.err()).isEqualTo("embstore inspect: Unknown token 'nope' (not in the vocabulary of 60 tokens)\n");
    CliRun i = CliRun.inspecting("--table", table.toString(), "--id", "60");
    assertThat(i.exit()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(i.err()).isEqualTo("embstore inspect: Cannot read id 60: outside [0, 60)\n");
    CliRun both = CliRun.inspecting("--table", table.toString(), "--id", "1", "--token", "tok1");
    assertThat(both.exit()).isEqualTo(Cli.EXIT_USAGE);
    assertThat(both.err()).contains("mutually exclusive");
  }

  @Test
  void inspectSummaryNamesShapeShardsAndVocabulary() {
    CliRun r = CliRun.inspecting("--table", table.toString());
    assertThat(r.exit()).isZero();
    assertThat(r.out())
        .contains("format       embstore-table 2, table version 1")
        .contains("shape        60 rows (V) x 4 dims (C), float32")
        .contains("partitioner  modulo, 3 shards")
        .contains("shard-00000-v000001.arrow  20 rows, ids 0..57")
        .contains("vocabulary   vocab-v000001.arrow  60 tokens")
        .contains("created      by=embstore import --from npy");
  }

  @Test
  void everyCommandHasHelp() {
    for (Object c : new Object[] {new ImportCommand(), new ExportCommand(), new InspectCommand(), new VerifyCommand()}) {
      CliRun r = CliRun.of(c, "--help");
      assertThat(r.exit()).isZero();
      assertThat(r.out()).contains("Usage: ").contains("-h, --help");
    }
    assertThat(CliRun.of(new ImportCommand(), "--help").out()).contains("--allow-non-finite").contains("--partitioner=NAME");
  }
}
