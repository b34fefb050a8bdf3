package io.embstore.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Tables of float16 and bfloat16 rows: stored in 2 bytes a value, read back as float32, checked like float32 tables. */
class CompactTableTest {
  static final int DIM = 7;
  static final long ROWS = 1001;

  @TempDir Path tmp;
  BufferAllocator allocator;

  @BeforeEach
  void setUp() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void tearDown() {
    allocator.close(); // fails the test on a leak
  }

  static float[] rounded(float[] m, ValueType type) {
    float[] out = new float[m.length];
    for (int i = 0; i < m.length; i++) {
      out[i] = type == ValueType.FLOAT16
          ? HalfFloats.float16ToFloat(HalfFloats.toFloat16(m[i]))
          : type == ValueType.BFLOAT16 ? HalfFloats.bfloat16ToFloat(HalfFloats.toBfloat16(m[i])) : m[i];
    }
    return out;
  }

  @ParameterizedTest
  @EnumSource(value = ValueType.class, names = {"FLOAT16", "BFLOAT16"})
  void sixteenBitTablesStoreTwoBytesAValueAndReadBackTheRoundedRows(ValueType type) throws IOException {
    float[] m = TestMatrices.random(ROWS, DIM, 5);
    m[3] = 1e-7f; // a float16 subnormal
    m[4] = 70000f; // beyond float16's range: infinity there
    m[5] = -0.0f;
    Path f32 = tmp.resolve("f32");
    TestMatrices.write(f32, m, ROWS, DIM, 3, "modulo", allocator);
    for (String partitioner : new String[] {"modulo", "range"}) {
      Path dir = tmp.resolve(type + "-" + partitioner);
      TableManifest written = TestMatrices.write(TableLocation.of(dir), m, ROWS, DIM, 3, partitioner, type, allocator);
      Table t = Table.open(dir);
      assertThat(t.manifest().valueType()).isEqualTo(type);
      assertThat(t.manifest()).isEqualTo(written);
      assertThat(Files.readString(dir.resolve("manifest.json"))).contains("\"valueType\" : \"" + type.label() + "\"");
      assertThat(t.verify(allocator)).hasSize(4);
      assertThat(TestMatrices.readBits(dir, allocator)).isEqualTo(TestMatrices.bits(rounded(m, type)));
      float[] row = new float[DIM];
      t.readRow(4 / DIM, row, allocator);
      assertThat(row).isEqualTo(Arrays.copyOfRange(rounded(m, type), 0, DIM));
      // The stored bits are the narrowed values, and the embedding data is half of float32's.
      try (ShardReader r = t.openShard(0, allocator, true)) {
        assertThat(r.loadNextBatch()).isTrue();
        ArrowBuf stored = r.storedEmbeddings();
        long firstId = t.manifest().partitioner().idAt(0, 0);
        for (int c = 0; c < DIM; c++) {
          float f = m[(int) firstId * DIM + c];
          short expected = type == ValueType.FLOAT16 ? HalfFloats.toFloat16(f) : HalfFloats.toBfloat16(f);
          assertThat(stored.getShort(2L * c)).isEqualTo(expected);
        }
      }
      long compact = 0;
      long full = 0;
      for (int s = 0; s < 3; s++) {
        compact += t.manifest().shard(s).bytes();
        full += Table.open(f32).manifest().shard(s).bytes();
      }
      // Two bytes less per value, less a little schema metadata (3 files' schemas and footers).
      assertThat(full - compact).isGreaterThan(ROWS * DIM * 2 - 3 * 512);
      assertThat(t.manifest().rowBytes()).isEqualTo(2L * DIM);
    }
  }

  @Test
  void aValueTypeThisBuildDoesNotKnowIsRefusedInOneLine() throws IOException {
    Path dir = tmp.resolve("t");
    TestMatrices.write(dir, TestMatrices.random(10, DIM, 1), 10, DIM, 2, "modulo", allocator);
    rewriteManifest(dir, text -> text.replace("\"valueType\" : \"float32\"", "\"valueType\" : \"int4\""));
    assertThatThrownBy(() -> Table.open(dir))
        .isInstanceOf(TableFormatException.class)
        .hasMessage("Cannot read " + dir.resolve("manifest.json") + ": valueType is 'int4' (this build knows float32, float16, bfloat16, int8; upgrade embstore to read it)");
    assertThatThrownBy(() -> TableManifest.builder().rows(1).dim(1).valueType("float8").build())
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("valueType is 'float8'");
  }

  @Test
  void aManifestWhoseTypeDisagreesWithTheShardsIsRefused() throws IOException {
    Path dir = tmp.resolve("t");
    TableManifest m = TestMatrices.write(dir, TestMatrices.random(10, DIM, 1), 10, DIM, 2, "modulo", allocator);
    Files.write(dir.resolve("manifest.json"), m.toBuilder().valueType(ValueType.FLOAT16).build().toJson());
    assertThatThrownBy(() -> Table.open(dir).verify(allocator))
        .isInstanceOf(TableFormatException.class)
        .hasMessageStartingWith("Cannot open " + dir.resolve("shard-00000-v000001.arrow") + ": column embedding: FixedSizeList(7)")
        .hasMessageEndingWith(", expected embedding: FixedSizeList<float16>[7]");

    Path half = tmp.resolve("half");
    TableManifest h = TestMatrices.write(TableLocation.of(half), TestMatrices.random(10, DIM, 1), 10, DIM, 2, "modulo", ValueType.BFLOAT16, allocator);
    Files.write(half.resolve("manifest.json"), h.toBuilder().valueType(ValueType.FLOAT32).build().toJson());
    assertThatThrownBy(() -> Table.open(half).verify(allocator))
        .isInstanceOf(TableFormatException.class)
        .hasMessage("Cannot open " + half.resolve("shard-00000-v000001.arrow") + ": metadata embstore.valueType is 'bfloat16', the manifest says float32");
  }

  @Test
  void everyFileOfASixteenBitTableDetectsBitFlips() throws IOException {
    Path dir = tmp.resolve("t");
    TableManifest.Builder spec = TableManifest.builder().rows(ROWS).dim(DIM).partitioner("modulo").valueType(ValueType.BFLOAT16)
        .optimizer(new TableManifest.Optimizer("adagrad", Map.of("lr", 0.1), List.of(new TableManifest.StateColumn("accum", 1)), 3));
    List<String> tokens = new ArrayList<>();
    for (int i = 0; i < ROWS; i++) {
      tokens.add("w" + i);
    }
    try (TableWriter w = TableWriter.create(dir, spec, 2, allocator)) {
      w.vocabulary(Vocabulary.of(tokens, new long[tokens.size()]));
      float[] m = TestMatrices.random(ROWS, DIM, 9);
      java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocateDirect(m.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      buf.asFloatBuffer().put(m);
      w.appendInIdOrder(buf, (int) ROWS);
      w.commit();
    }
    List<Path> files = new ArrayList<>();
    try (var list = Files.list(dir)) {
      list.sorted().forEach(files::add);
    }
    assertThat(files).hasSize(4);
    SplittableRandom random = new SplittableRandom(16);
    for (Path f : files) {
      byte[] original = Files.readAllBytes(f);
      String name = f.getFileName().toString();
      for (int trial = 0; trial < 150; trial++) {
        byte[] damaged = original.clone();
        int bit = random.nextInt(damaged.length * 8);
        damaged[bit / 8] ^= (byte) (1 << (bit % 8));
        Files.write(f, damaged);
        assertThatThrownBy(() -> Table.open(dir).verify(allocator))
            .as("%s bit %d", name, bit)
            .isInstanceOf(TableFormatException.class)
            .hasMessageContaining(name.equals("manifest.json") ? "manifest" : name);
      }
      Files.write(f, original);
    }
    assertThat(Table.open(dir).verify(allocator)).hasSize(4);
  }

  @Test
  void reshardKeepsTheStoredBitsAndConvertChangesTheType() throws IOException {
    float[] m = TestMatrices.random(ROWS, DIM, 7);
    m[10] = Float.NaN;
    Path f16 = tmp.resolve("f16");
    TestMatrices.write(TableLocation.of(f16), m, ROWS, DIM, 4, "modulo", ValueType.FLOAT16, allocator);
    Path resharded = tmp.resolve("resharded");
    TableManifest r = Resharder.run(new Resharder.Options(TableLocation.of(f16), TableLocation.of(resharded), 3, "range", null), allocator);
    assertThat(r.valueType()).isEqualTo(ValueType.FLOAT16);
    assertThat(TestMatrices.readBits(resharded, allocator)).isEqualTo(TestMatrices.readBits(f16, allocator));

    Path bf16 = tmp.resolve("bf16");
    TableManifest c = Resharder.run(new Resharder.Options(TableLocation.of(f16), TableLocation.of(bf16), 0, null, ValueType.BFLOAT16, null), allocator);
    assertThat(c.valueType()).isEqualTo(ValueType.BFLOAT16);
    assertThat(c.numShards()).isEqualTo(4);
    assertThat(c.properties()).containsKey("convert.source");
    assertThat(TestMatrices.readBits(bf16, allocator)).isEqualTo(TestMatrices.bits(rounded(rounded(m, ValueType.FLOAT16), ValueType.BFLOAT16)));

    // float16 -> float32 -> float16 gives back the same bits.
    Path f32 = tmp.resolve("f32");
    Resharder.run(new Resharder.Options(TableLocation.of(f16), TableLocation.of(f32), 0, null, ValueType.FLOAT32, null), allocator);
    assertThat(Table.open(f32).manifest().valueType()).isEqualTo(ValueType.FLOAT32);
    Path again = tmp.resolve("again");
    Resharder.run(new Resharder.Options(TableLocation.of(f32), TableLocation.of(again), 0, null, ValueType.FLOAT16, null), allocator);
    for (int s = 0; s < 4; s++) {
      assertThat(Files.readAllBytes(again.resolve(Table.open(again).manifest().shard(s).file())))
          .isEqualTo(Files.readAllBytes(f16.resolve(Table.open(f16).manifest().shard(s).file())));
    }
  }

  private static void rewriteManifest(Path dir, java.util.function.UnaryOperator<String> edit) throws IOException {
    String text = Files.readString(dir.resolve("manifest.json"), StandardCharsets.UTF_8);
    int checksumLine = text.lastIndexOf(",\n  \"checksum\"") + 2;
    byte[] head = edit.apply(text.substring(0, checksumLine)).getBytes(StandardCharsets.UTF_8);
    int crc = Checksums.crc32c(head, 0, head.length);
    String tail = "  \"checksum\" : \"crc32c:" + Checksums.hex(crc) + "\"\n}\n";
    Files.writeString(dir.resolve("manifest.json"), new String(head, StandardCharsets.UTF_8) + tail, StandardCharsets.UTF_8);
  }
}
