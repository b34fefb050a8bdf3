package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.HalfFloats;
import io.embstore.format.Matrices;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TestMatrices;
import io.embstore.format.ValueType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code import --dtype}, {@code export --dtype}, {@code convert} and {@code inspect} on float16 and bfloat16 tables. */
class SixteenBitCommandsTest {
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
    m[1] = 1e-6f;
    m[2] = -3.0e4f;
    npy = Matrices.npy(tmp.resolve("m.npy"), m, ROWS, DIM);
  }

  @AfterEach
  void tearDown() {
    allocator.close();
  }

  private static void ok(CliRun r) {
    assertThat(r.exit()).as(r.err()).isZero();
  }

  private static float[] rounded(float[] m, ValueType type) {
    float[] out = new float[m.length];
    for (int i = 0; i < m.length; i++) {
      out[i] = type == ValueType.FLOAT16 ? HalfFloats.float16ToFloat(HalfFloats.toFloat16(m[i])) : HalfFloats.bfloat16ToFloat(HalfFloats.toBfloat16(m[i]));
    }
    return out;
  }

  private static short[] narrowed(float[] m, ValueType type) {
    short[] out = new short[m.length];
    for (int i = 0; i < m.length; i++) {
      out[i] = type == ValueType.FLOAT16 ? HalfFloats.toFloat16(m[i]) : HalfFloats.toBfloat16(m[i]);
    }
    return out;
  }

  private static short[] shorts(byte[] bytes, int from) {
    ByteBuffer b = ByteBuffer.wrap(bytes, from, bytes.length - from).order(ByteOrder.LITTLE_ENDIAN);
    short[] out = new short[(bytes.length - from) / 2];
    b.asShortBuffer().get(out);
    return out;
  }

  @Test
  void importNarrowsInspectShowsTheTypeAndExportWidensOrKeepsSixteenBits() throws IOException {
    for (ValueType type : new ValueType[] {ValueType.FLOAT16, ValueType.BFLOAT16}) {
      Path table = tmp.resolve("t-" + type);
      CliRun imported = CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "3", "--dtype", type.label(), "--output", table.toString());
      ok(imported);
      assertThat(imported.out()).contains(ROWS + " rows x " + DIM + " dims as " + type + " into");
      assertThat(Table.open(table).manifest().valueType()).isEqualTo(type);
      assertThat(TestMatrices.readBits(table, allocator)).isEqualTo(TestMatrices.bits(rounded(m, type)));
      CliRun inspect = CliRun.inspecting("--table", table.toString());
      ok(inspect);
      assertThat(inspect.out()).contains("shape        300 rows (V) x 6 dims (C), " + type + ", 0.0 MB, 12 bytes per row");
      ok(CliRun.verifying("--table", table.toString()));

      // Default export: float32, the stored values widened exactly.
      Path f32 = tmp.resolve(type + "-f32.npy");
      ok(CliRun.exporting("--to", "npy", "--table", table.toString(), "--output", f32.toString()));
      Path back = tmp.resolve(type + "-back");
      ok(CliRun.importing("--from", "npy", "--input", f32.toString(), "--shards", "2", "--output", back.toString()));
      assertThat(TestMatrices.readBits(back, allocator)).isEqualTo(TestMatrices.bits(rounded(m, type)));

      // safetensors of the table's own type: the stored bits; imported again with the same dtype, the same table.
      Path st = tmp.resolve(type + ".safetensors");
      ok(CliRun.exporting("--to", "safetensors", "--table", table.toString(), "--dtype", type.label(), "--output", st.toString()));
      String dtype = type == ValueType.FLOAT16 ? "F16" : "BF16";
      CliRun list = CliRun.importing("--from", "safetensors", "--input", st.toString(), "--list");
      assertThat(list.out()).startsWith("embedding\t" + dtype + "\t[300, 6]\t3600\n");
      byte[] bytes = Files.readAllBytes(st);
      long headerLength = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
      assertThat(shorts(bytes, (int) (8 + headerLength))).isEqualTo(narrowed(m, type));
      Path again = tmp.resolve(type + "-again");
      ok(CliRun.importing("--from", "safetensors", "--input", st.toString(), "--shards", "3", "--dtype", type.label(), "--output", again.toString()));
      for (int s = 0; s < 3; s++) {
        String file = Table.open(table).manifest().shard(s).file();
        assertThat(Files.readAllBytes(again.resolve(file))).as("shard %d", s).isEqualTo(Files.readAllBytes(table.resolve(file)));
      }
    }
    // 16-bit npy: NumPy's '<f2'.
    Path f16 = tmp.resolve("f16.npy");
    ok(CliRun.exporting("--to", "npy", "--table", tmp.resolve("t-float16").toString(), "--dtype", "float16", "--output", f16.toString()));
    byte[] bytes = Files.readAllBytes(f16);
    String header = new String(bytes, 0, 128, StandardCharsets.ISO_8859_1);
    assertThat(header).contains("{'descr': '<f2', 'fortran_order': False, 'shape': (300, 6), }");
    assertThat(bytes.length).isEqualTo(128 + ROWS * DIM * 2);
    assertThat(shorts(bytes, 128)).isEqualTo(narrowed(m, ValueType.FLOAT16));
  }

  @Test
  void convertChangesTheTypeOfEveryRowAndKeepsTheRest() throws IOException {
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "4", "--partitioner", "range", "--output", table.toString()));
    Path bf16 = tmp.resolve("bf16");
    CliRun converted = CliRun.converting("--table", table.toString(), "--dtype", "bfloat16", "--output", bf16.toString());
    ok(converted);
    assertThat(converted.out()).contains("converted " + table + " (float32) into " + bf16 + ": 300 rows x 6 dims, bfloat16, 12 bytes per row");
    Table t = Table.open(bf16);
    assertThat(t.manifest().valueType()).isEqualTo(ValueType.BFLOAT16);
    assertThat(t.manifest().numShards()).isEqualTo(4);
    assertThat(t.manifest().partitioner().name()).isEqualTo("range");
    assertThat(TestMatrices.readBits(bf16, allocator)).isEqualTo(TestMatrices.bits(rounded(m, ValueType.BFLOAT16)));
    Path f32 = tmp.resolve("f32");
    ok(CliRun.converting("--table", bf16.toString(), "--dtype", "float32", "--output", f32.toString()));
    assertThat(TestMatrices.readBits(f32, allocator)).isEqualTo(TestMatrices.bits(rounded(m, ValueType.BFLOAT16)));
  }

  @Test
  void badCombinationsAreRefusedInOneLineAndLeaveNothing() throws IOException {
    Path out = tmp.resolve("out");
    CliRun r = CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "2", "--dtype", "float8", "--output", out.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("embstore import: Cannot use --dtype float8 (known: float32, float16, bfloat16, int8)\n");
    assertThat(out).doesNotExist();

    float[] big = Arrays.copyOf(m, m.length);
    big[DIM + 2] = 70000f;
    Path bigNpy = Matrices.npy(tmp.resolve("big.npy"), big, ROWS, DIM);
    r = CliRun.importing("--from", "npy", "--input", bigNpy.toString(), "--shards", "2", "--dtype", "float16", "--output", out.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("embstore import: Cannot import " + bigNpy + ": row 1, column 2 is 70000.0, beyond float16's largest value 65504"
        + " (it would be stored as infinity; use --dtype bfloat16 or float32, or pass --allow-non-finite to keep it)\n");
    assertThat(out).doesNotExist();
    ok(CliRun.importing("--from", "npy", "--input", bigNpy.toString(), "--shards", "2", "--dtype", "float16", "--allow-non-finite", "--output", out.toString()));
    float[] row = new float[DIM];
    Table.open(out).readRow(1, row, allocator);
    assertThat(row[2]).isEqualTo(Float.POSITIVE_INFINITY);

    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "npy", "--input", bigNpy.toString(), "--shards", "2", "--output", table.toString()));
    Path conv = tmp.resolve("conv");
    r = CliRun.converting("--table", table.toString(), "--dtype", "float16", "--output", conv.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("embstore convert: Cannot convert " + TableLocation.of(table) + " to float16: id 1, column 2 is 70000.0, beyond float16's"
        + " largest value 65504 (it would be stored as infinity; use bfloat16, or pass --allow-non-finite)\n");
    assertThat(conv).doesNotExist();
    r = CliRun.converting("--table", table.toString(), "--dtype", "float32", "--output", conv.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("embstore convert: Cannot convert " + table + ": it already is float32 (reshard copies a table)\n");
    assertThat(conv).doesNotExist();

    Path file = tmp.resolve("x.txt");
    r = CliRun.exporting("--to", "word2vec", "--table", table.toString(), "--dtype", "float16", "--output", file.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("embstore export: Cannot export to word2vec with --dtype float16 (word2vec files hold float32 values; export to npy or safetensors)\n");
    r = CliRun.exporting("--to", "npy", "--table", table.toString(), "--dtype", "bfloat16", "--output", file.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("embstore export: Cannot export to npy with --dtype bfloat16 (NumPy has no bfloat16 dtype; use float16 or float32, or export to safetensors)\n");
    assertThat(file).doesNotExist();
  }

  @Test
  void aSixteenBitSafetensorsTensorKeptAsItIsIsStillCheckedForNonFiniteValues() throws IOException {
    // F16 [2, 3]: 1, -2, NaN / 0.5, inf, 65504 (the bits as they are, with a NaN and an infinity).
    short[] bits = {0x3c00, (short) 0xc000, 0x7e01, 0x3800, 0x7c00, 0x7bff};
    ByteBuffer data = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
    for (short b : bits) {
      data.putShort(b);
    }
    Path file = Matrices.safetensors(tmp.resolve("h.safetensors"),
        "{\"w\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}", data.array());
    Path out = tmp.resolve("h");
    CliRun r = CliRun.importing("--from", "safetensors", "--input", file.toString(), "--shards", "1", "--dtype", "float16", "--output", out.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err()).isEqualTo("embstore import: Cannot import " + file + ": row 0, column 2 is NaN (non-finite values are rejected;"
        + " pass --allow-non-finite to keep them)\n");
    assertThat(out).doesNotExist();
    ok(CliRun.importing("--from", "safetensors", "--input", file.toString(), "--shards", "1", "--dtype", "float16", "--allow-non-finite",
        "--output", out.toString()));
    try (io.embstore.format.ShardReader reader = Table.open(out).openShard(0, allocator, true)) {
      assertThat(reader.loadNextBatch()).isTrue();
      for (int i = 0; i < bits.length; i++) {
        assertThat(reader.storedEmbeddings().getShort(2L * i)).as("value %d", i).isEqualTo(bits[i]);
      }
    }
  }
}
