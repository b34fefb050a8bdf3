package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Table;
import io.embstore.format.Matrices;
import io.embstore.format.TestMatrices;
import io.embstore.format.ValueType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code import --dtype int8}, {@code convert}, {@code export}, {@code inspect} and {@code verify} on int8 serving copies. */
class Int8CommandsTest {
  static final int ROWS = 300;
  static final int DIM = 6;

  @TempDir Path tmp;
  BufferAllocator allocator;
  float[] m;
  Path npy;

  @BeforeEach
  void setUp() throws IOException {
    allocator = new RootAllocator();
    m = TestMatrices.random(ROWS, DIM, 19);
    npy = Matrices.npy(tmp.resolve("m.npy"), m, ROWS, DIM);
  }

  @AfterEach
  void tearDown() {
    allocator.close();
  }

  private static void ok(CliRun r) {
    assertThat(r.exit()).as(r.err()).isZero();
  }

  private float[] rows(Path table) throws IOException {
    int[] bits = TestMatrices.readBits(table, allocator);
    float[] out = new float[bits.length];
    for (int i = 0; i < bits.length; i++) {
      out[i] = Float.intBitsToFloat(bits[i]);
    }
    return out;
  }

  private void assertWithinHalfAStep(float[] decoded) {
    for (int r = 0; r < ROWS; r++) {
      float min = Float.POSITIVE_INFINITY;
      float max = Float.NEGATIVE_INFINITY;
      for (int c = 0; c < DIM; c++) {
        min = Math.min(min, m[r * DIM + c]);
        max = Math.max(max, m[r * DIM + c]);
      }
      double bound = (max - min) / 255.0 / 2 + 2 * Math.ulp(Math.max(Math.abs(min), Math.abs(max)));
      for (int c = 0; c < DIM; c++) {
        assertThat((double) Math.abs(decoded[r * DIM + c] - m[r * DIM + c])).as("row %d column %d", r, c).isLessThanOrEqualTo(bound);
      }
    }
  }

  @Test
  void importQuantizesFromAnyInputInspectShowsTheTypeAndExportDecodes() throws IOException {
    Path table = tmp.resolve("t");
    CliRun imported = CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "3", "--dtype", "int8", "--output", table.toString());
    ok(imported);
    assertThat(imported.out()).contains(ROWS + " rows x " + DIM + " dims as int8 into");
    assertThat(Table.open(table).manifest().valueType()).isEqualTo(ValueType.INT8);
    float[] decoded = rows(table);
    assertWithinHalfAStep(decoded);
    CliRun inspect = CliRun.inspecting("--table", table.toString());
    ok(inspect);
    assertThat(inspect.out()).contains("shape        300 rows (V) x 6 dims (C), int8, 0.0 MB, 14 bytes per row");
    CliRun verify = CliRun.verifying("--table", table.toString());
    ok(verify);

    // word2vec text: the same rows, the same quantization.
    Path w2v = Matrices.text(tmp.resolve("m.txt"), ROWS + " " + DIM, Matrices.tokens(ROWS), m, DIM);
    Path fromText = tmp.resolve("from-text");
    ok(CliRun.importing("--from", "word2vec", "--input", w2v.toString(), "--shards", "2", "--dtype", "int8", "--output", fromText.toString()));
    assertThat(rows(fromText)).isEqualTo(decoded);
    // safetensors F32: the same.
    Path st = Matrices.safetensors(tmp.resolve("m.safetensors"),
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[" + ROWS + "," + DIM + "],\"data_offsets\":[0," + ROWS * DIM * 4 + "]}}", Matrices.le(m));
    Path fromSafetensors = tmp.resolve("from-safetensors");
    ok(CliRun.importing("--from", "safetensors", "--input", st.toString(), "--shards", "1", "--dtype", "int8", "--output", fromSafetensors.toString()));
    assertThat(rows(fromSafetensors)).isEqualTo(decoded);

    // export writes the decoded float32 rows.
    Path out = tmp.resolve("out.npy");
    ok(CliRun.exporting("--to", "npy", "--table", table.toString(), "--output", out.toString()));
    byte[] bytes = Files.readAllBytes(out);
    float[] exported = new float[ROWS * DIM];
    ByteBuffer.wrap(bytes, 128, bytes.length - 128).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(exported);
    assertThat(exported).isEqualTo(decoded);
  }

  @Test
  void convertQuantizesAndBackDecodes() throws IOException {
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "4", "--partitioner", "range", "--output", table.toString()));
    Path int8 = tmp.resolve("int8");
    CliRun converted = CliRun.converting("--table", table.toString(), "--dtype", "int8", "--output", int8.toString());
    ok(converted);
    assertThat(converted.out()).contains("converted " + table + " (float32) into " + int8 + ": 300 rows x 6 dims, int8, 14 bytes per row");
    Table t = Table.open(int8);
    assertThat(t.manifest().numShards()).isEqualTo(4);
    assertThat(t.manifest().partitioner().name()).isEqualTo("range");
    float[] decoded = rows(int8);
    assertWithinHalfAStep(decoded);
    for (String type : new String[] {"float32", "float16"}) {
      Path back = tmp.resolve("back-" + type);
      ok(CliRun.converting("--table", int8.toString(), "--dtype", type, "--output", back.toString()));
      assertThat(Table.open(back).manifest().valueType().label()).isEqualTo(type);
      if (type.equals("float32")) {
        assertThat(rows(back)).isEqualTo(decoded);
      }
    }
  }

  @Test
  void badCombinationsAreRefusedInOneLineAndLeaveNothing() throws IOException {
    Path out = tmp.resolve("out");
    CliRun r = CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "2", "--dtype", "int8", "--allow-non-finite", "--output", out.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("embstore import: Cannot import " + npy + " with --dtype int8 and --allow-non-finite"
        + " (int8 rows need finite values: a row's scale and bias are undefined with NaN or infinity)\n");
    assertThat(out).doesNotExist();

    float[] nan = Arrays.copyOf(m, m.length);
    nan[DIM + 2] = Float.NaN;
    Path nanNpy = Matrices.npy(tmp.resolve("nan.npy"), nan, ROWS, DIM);
    r = CliRun.importing("--from", "npy", "--input", nanNpy.toString(), "--shards", "2", "--dtype", "int8", "--output", out.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("embstore import: Cannot import " + nanNpy + ": row 1, column 2 is NaN (non-finite values are rejected; int8 rows cannot hold them)\n");
    assertThat(out).doesNotExist();

    // A float16 table may hold infinities; its int8 copy cannot.
    Path f16 = tmp.resolve("f16");
    float[] inf = Arrays.copyOf(m, m.length);
    inf[2 * DIM + 3] = 70000f;
    ok(CliRun.importing("--from", "npy", "--input", Matrices.npy(tmp.resolve("inf.npy"), inf, ROWS, DIM).toString(), "--shards", "2",
        "--dtype", "float16", "--allow-non-finite", "--output", f16.toString()));
    Path conv = tmp.resolve("conv");
    r = CliRun.converting("--table", f16.toString(), "--dtype", "int8", "--output", conv.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("embstore convert: Cannot write id 2 to an int8 table: column 3 is Infinity (int8 rows need finite values)\n");
    assertThat(conv).doesNotExist();

    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "2", "--dtype", "int8", "--output", table.toString()));
    Path file = tmp.resolve("x.npy");
    r = CliRun.exporting("--to", "npy", "--table", table.toString(), "--dtype", "int8", "--output", file.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("embstore export: Cannot export with --dtype int8 (export writes float32, float16 or bfloat16 values;"
        + " an int8 table exports decoded to float32 by default)\n");
    assertThat(file).doesNotExist();
  }

  @Test
  void verifyDetectsABitFlipInAnInt8Shard() throws IOException {
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "2", "--dtype", "int8", "--output", table.toString()));
    Path shard = table.resolve(Table.open(table).manifest().shard(1).file());
    byte[] bytes = Files.readAllBytes(shard);
    bytes[bytes.length / 2] ^= 0x10;
    Files.write(shard, bytes);
    CliRun r = CliRun.verifying("--table", table.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err() + r.out()).contains(shard.getFileName().toString()).containsIgnoringCase("checksum");
  }
}
