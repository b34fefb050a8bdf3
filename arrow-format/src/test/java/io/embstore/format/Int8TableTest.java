package io.embstore.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.ipc.ArrowFileReader;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** int8 row-wise quantized tables: FBGEMM's fused layout (C codes, scale, bias), decoded within the quantization bound. */
class Int8TableTest {
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

  /** The largest allowed |x - decoded| of a row: half a step plus float32 rounding of the decode. */
  static double bound(float[] m, int row, int dim) {
    float min = Float.POSITIVE_INFINITY;
    float max = Float.NEGATIVE_INFINITY;
    for (int c = 0; c < dim; c++) {
      min = Math.min(min, m[row * dim + c]);
      max = Math.max(max, m[row * dim + c]);
    }
    float scale = (float) (((double) max - min) / 255);
    return scale / 2.0 + 2 * Math.ulp(Math.max(Math.abs(min), Math.abs(max)));
  }

  /** Decodes every row of a table (checksums verified). */
  static float[] decoded(Path dir, BufferAllocator allocator) throws IOException {
    int[] bits = TestMatrices.readBits(dir, allocator);
    float[] out = new float[bits.length];
    for (int i = 0; i < bits.length; i++) {
      out[i] = Float.intBitsToFloat(bits[i]);
    }
    return out;
  }

  @Test
  void rowsAreStoredAsCodesScaleAndBiasAndDecodeWithinHalfAStep() throws IOException {
    float[] m = TestMatrices.random(ROWS, DIM, 5);
    for (int c = 0; c < DIM; c++) {
      m[3 * DIM + c] = 0.25f; // a constant row: decodes exactly
      m[4 * DIM + c] = c * 1000f - 3000f; // a wide row
      m[5 * DIM + c] = 1e-30f * c; // a tiny one
    }
    for (String partitioner : new String[] {"modulo", "range"}) {
      Path dir = tmp.resolve("int8-" + partitioner);
      TableManifest written = TestMatrices.write(TableLocation.of(dir), m, ROWS, DIM, 3, partitioner, ValueType.INT8, allocator);
      Table t = Table.open(dir);
      assertThat(t.manifest()).isEqualTo(written);
      assertThat(t.manifest().valueType()).isEqualTo(ValueType.INT8);
      assertThat(t.manifest().rowBytes()).isEqualTo(DIM + 8L);
      assertThat(Files.readString(dir.resolve("manifest.json"))).contains("\"valueType\" : \"int8\"");
      assertThat(t.verify(allocator)).hasSize(4);
      float[] back = decoded(dir, allocator);
      for (int r = 0; r < ROWS; r++) {
        double bound = bound(m, r, DIM);
        for (int c = 0; c < DIM; c++) {
          assertThat((double) Math.abs(m[r * DIM + c] - back[r * DIM + c])).as("row %d column %d", r, c).isLessThanOrEqualTo(bound);
        }
      }
      for (int c = 0; c < DIM; c++) {
        assertThat(back[3 * DIM + c]).isEqualTo(0.25f);
      }
      // The stored row: C uint8 codes, float32 scale = (max - min) / 255, float32 bias = min.
      long id = t.manifest().partitioner().idAt(1, 0);
      try (ShardReader r = t.openShard(1, allocator, true)) {
        assertThat(r.loadNextBatch()).isTrue();
        ArrowBuf stored = r.storedEmbeddings();
        float min = Float.POSITIVE_INFINITY;
        float max = Float.NEGATIVE_INFINITY;
        for (int c = 0; c < DIM; c++) {
          min = Math.min(min, m[(int) id * DIM + c]);
          max = Math.max(max, m[(int) id * DIM + c]);
        }
        assertThat(stored.getFloat(DIM)).isEqualTo((float) (((double) max - min) / 255));
        assertThat(stored.getFloat(DIM + 4)).isEqualTo(min);
        for (int c = 0; c < DIM; c++) {
          int code = stored.getByte(c) & 0xff;
          assertThat(code).isEqualTo((int) Math.rint((m[(int) id * DIM + c] - (double) min) * 255 / ((double) max - min)));
        }
      }
    }
  }

  @Test
  void theShardSchemaIsAFixedSizeBinaryColumnTaggedInt8ThatPlainArrowReads() throws IOException {
    Path dir = tmp.resolve("t");
    float[] m = TestMatrices.random(10, DIM, 3);
    TestMatrices.write(TableLocation.of(dir), m, 10, DIM, 1, "modulo", ValueType.INT8, allocator);
    Path shard = dir.resolve(Table.open(dir).manifest().shard(0).file());
    try (FileChannel ch = FileChannel.open(shard);
        ArrowFileReader reader = new ArrowFileReader(ch, allocator)) {
      Field field = reader.getVectorSchemaRoot().getSchema().getFields().get(1);
      assertThat(field.getName()).isEqualTo("embedding");
      assertThat(field.getType()).isEqualTo(new ArrowType.FixedSizeBinary(DIM + 8));
      assertThat(field.getMetadata()).containsEntry("embstore.dtype", "int8");
      assertThat(reader.getVectorSchemaRoot().getSchema().getCustomMetadata()).containsEntry("embstore.valueType", "int8");
      assertThat(reader.loadNextBatch()).isTrue();
      var rows = (org.apache.arrow.vector.FixedSizeBinaryVector) reader.getVectorSchemaRoot().getVector(1);
      assertThat(rows.getValueCount()).isEqualTo(10);
      byte[] row = rows.get(2);
      ByteBuffer b = ByteBuffer.wrap(row).order(ByteOrder.LITTLE_ENDIAN);
      float scale = b.getFloat(DIM);
      float bias = b.getFloat(DIM + 4);
      for (int c = 0; c < DIM; c++) {
        float x = (row[c] & 0xff) * scale + bias;
        assertThat((double) Math.abs(x - m[2 * DIM + c])).isLessThanOrEqualTo(bound(m, 2, DIM));
      }
    }
    // A float32 manifest over int8 shards, and the reverse, are refused naming the column.
    Files.write(dir.resolve("manifest.json"), Table.open(dir).manifest().toBuilder().valueType(ValueType.FLOAT32).build().toJson());
    assertThatThrownBy(() -> Table.open(dir).verify(allocator))
        .isInstanceOf(TableFormatException.class)
        .hasMessage("Cannot open " + shard + ": metadata embstore.valueType is 'int8', the manifest says float32");
    Path f32 = tmp.resolve("f32");
    TableManifest f = TestMatrices.write(TableLocation.of(f32), m, 10, DIM, 1, "modulo", ValueType.FLOAT32, allocator);
    Files.write(f32.resolve("manifest.json"), f.toBuilder().valueType(ValueType.INT8).build().toJson());
    assertThatThrownBy(() -> Table.open(f32).verify(allocator))
        .isInstanceOf(TableFormatException.class)
        .hasMessageEndingWith(", expected embedding: FixedSizeBinary[15] tagged embstore.dtype=int8 (7 codes, scale, bias)");
  }

  @Test
  void rowsWithNaNInfinityOrATooWideSpanAreRefusedNamingTheId() throws IOException {
    String[] why = {
      "column 2 is NaN (int8 rows need finite values)",
      "column 2 is -Infinity (int8 rows need finite values)",
      "its values span [-3.0E38, 3.0E38], wider than float32's largest value 3.4028235E38 (the top code would decode to infinity)"
    };
    float[][] values = {{Float.NaN}, {Float.NEGATIVE_INFINITY}, {-3e38f, 3e38f}};
    for (int k = 0; k < why.length; k++) {
      float[] m = TestMatrices.random(10, DIM, 1);
      m[6 * DIM + 2] = values[k][0];
      if (values[k].length > 1) {
        m[6 * DIM] = values[k][0];
        m[6 * DIM + 2] = values[k][1];
      }
      Path dir = tmp.resolve("bad" + k);
      assertThatThrownBy(() -> TestMatrices.write(TableLocation.of(dir), m, 10, DIM, 2, "modulo", ValueType.INT8, allocator))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("Cannot write id 6 to an int8 table: " + why[k]);
      assertThat(dir.resolve("manifest.json")).doesNotExist();
    }
  }

  @Test
  void storedRowsAreCopiedAsTheyAreInIdOrder() throws IOException {
    float[] m = TestMatrices.random(ROWS, DIM, 12);
    Path source = tmp.resolve("source");
    TestMatrices.write(TableLocation.of(source), m, ROWS, DIM, 1, "modulo", ValueType.INT8, allocator);
    ByteBuffer stored = ByteBuffer.allocateDirect((int) (ROWS * (DIM + 8))).order(ByteOrder.LITTLE_ENDIAN);
    try (ShardReader r = Table.open(source).openShard(0, allocator, true)) {
      while (r.loadNextBatch()) {
        stored.put(r.storedEmbeddings().nioBuffer(0, r.batchRows() * (DIM + 8)));
      }
    }
    stored.flip();
    for (String partitioner : new String[] {"modulo", "range"}) {
      Path dir = tmp.resolve("copy-" + partitioner);
      try (TableWriter w = TableWriter.create(TableLocation.of(dir),
          TableManifest.builder().rows(ROWS).dim(DIM).partitioner(partitioner).valueType(ValueType.INT8), 3, allocator)) {
        w.appendStoredInIdOrder(stored.duplicate(), (int) ROWS);
        w.commit();
      }
      assertThat(decoded(dir, allocator)).isEqualTo(decoded(source, allocator));
    }
  }

  @Test
  void everyFileOfAnInt8TableDetectsBitFlips() throws IOException {
    Path dir = tmp.resolve("t");
    TableManifest.Builder spec = TableManifest.builder().rows(ROWS).dim(DIM).partitioner("modulo").valueType(ValueType.INT8)
        .optimizer(new TableManifest.Optimizer("adagrad", Map.of("lr", 0.1), List.of(new TableManifest.StateColumn("accum", 1)), 3));
    List<String> tokens = new ArrayList<>();
    for (int i = 0; i < ROWS; i++) {
      tokens.add("w" + i);
    }
    try (TableWriter w = TableWriter.create(dir, spec, 2, allocator)) {
      w.vocabulary(Vocabulary.of(tokens, new long[tokens.size()]));
      float[] m = TestMatrices.random(ROWS, DIM, 9);
      ByteBuffer buf = ByteBuffer.allocateDirect(m.length * 4).order(ByteOrder.LITTLE_ENDIAN);
      buf.asFloatBuffer().put(m);
      w.appendInIdOrder(buf, (int) ROWS);
      w.commit();
    }
    List<Path> files = new ArrayList<>();
    try (var list = Files.list(dir)) {
      list.sorted().forEach(files::add);
    }
    assertThat(files).hasSize(4);
    SplittableRandom random = new SplittableRandom(8);
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
  void convertQuantizesAndDecodesAndReshardKeepsTheStoredBytes() throws IOException {
    float[] m = TestMatrices.random(ROWS, DIM, 7);
    Path f32 = tmp.resolve("f32");
    TestMatrices.write(TableLocation.of(f32), m, ROWS, DIM, 4, "modulo", ValueType.FLOAT32, allocator);
    Path int8 = tmp.resolve("int8");
    TableManifest c = Resharder.run(new Resharder.Options(TableLocation.of(f32), TableLocation.of(int8), 0, null, ValueType.INT8, null), allocator);
    assertThat(c.valueType()).isEqualTo(ValueType.INT8);
    assertThat(c.numShards()).isEqualTo(4);
    Path direct = tmp.resolve("direct");
    TestMatrices.write(TableLocation.of(direct), m, ROWS, DIM, 4, "modulo", ValueType.INT8, allocator);
    float[] quantized = decoded(direct, allocator);
    assertThat(decoded(int8, allocator)).isEqualTo(quantized);

    Path resharded = tmp.resolve("resharded");
    TableManifest r = Resharder.run(new Resharder.Options(TableLocation.of(int8), TableLocation.of(resharded), 3, "range", null), allocator);
    assertThat(r.valueType()).isEqualTo(ValueType.INT8);
    assertThat(decoded(resharded, allocator)).isEqualTo(quantized);

    // Back to float32 and bfloat16: the decoded values (bfloat16 rounds them).
    Path back = tmp.resolve("back");
    Resharder.run(new Resharder.Options(TableLocation.of(int8), TableLocation.of(back), 0, null, ValueType.FLOAT32, null), allocator);
    assertThat(decoded(back, allocator)).isEqualTo(quantized);
    Path bf16 = tmp.resolve("bf16");
    Resharder.run(new Resharder.Options(TableLocation.of(int8), TableLocation.of(bf16), 0, null, ValueType.BFLOAT16, null), allocator);
    assertThat(decoded(bf16, allocator)).isEqualTo(CompactTableTest.rounded(quantized, ValueType.BFLOAT16));
  }
}
