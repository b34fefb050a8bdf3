package io.embstore.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class TableRoundTripTest {
  @TempDir Path tmp;
  BufferAllocator allocator;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    allocator.close(); // throws on a leak
  }

  @ParameterizedTest
  @CsvSource({"modulo,1000,7,5", "range,1000,7,5", "modulo,10,10,3", "range,9,6,1", "modulo,200000,3,4"})
  void rowsReadBackInIdOrderEqualWhatWasWritten(String partitioner, long rows, int shards, int dim)
      throws IOException {
    Path dir = tmp.resolve("t");
    float[] expected = TestMatrices.random(rows, dim, 42);
    TestMatrices.write(dir, expected, rows, dim, shards, partitioner, allocator);

    Table table = Table.open(dir);
    assertThat(table.manifest().rows()).isEqualTo(rows);
    assertThat(table.manifest().numShards()).isEqualTo(shards);
    float[] actual = new float[(int) (rows * dim)];
    long[] next = {0};
    table.forEachRowInIdOrder(allocator, true, (firstId, n, buf, offset) -> {
      assertThat(firstId).isEqualTo(next[0]);
      for (int i = 0; i < n * dim; i++) {
        actual[(int) (firstId * dim) + i] = buf.getFloat(offset + 4L * i);
      }
      next[0] += n;
    });
    assertThat(next[0]).isEqualTo(rows);
    assertThat(actual).isEqualTo(expected);
    assertThat(table.verify(allocator)).hasSize(shards + 1);

    float[] row = new float[dim];
    table.readRow(rows - 1, row, allocator);
    for (int c = 0; c < dim; c++) {
      assertThat(row[c]).isEqualTo(expected[(int) ((rows - 1) * dim) + c]);
    }
  }

  @Test
  void createRefusesAnExistingNonEmptyDirectory() throws IOException {
    Path dir = tmp.resolve("t");
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("other.txt"), "keep me");
    assertThatThrownBy(() -> TableWriter.create(dir, 10, 4, 2, "modulo", allocator))
        .isInstanceOf(java.nio.file.FileAlreadyExistsException.class)
        .hasMessageContaining("already exists");
    assertThat(dir.resolve("other.txt")).hasContent("keep me");
  }

  @Test
  void abandonedWriterLeavesNothingBehind() throws IOException {
    Path dir = tmp.resolve("t");
    try (TableWriter w = TableWriter.create(dir, 100, 4, 3, "modulo", allocator)) {
      ByteBuffer rows = ByteBuffer.allocate(50 * 16).order(ByteOrder.LITTLE_ENDIAN);
      w.appendInIdOrder(rows, 50);
    }
    assertThat(dir).doesNotExist();
  }

  @Test
  void nextVersionReplacesShardsAndDeletesTheOldFiles() throws IOException {
    Path dir = tmp.resolve("t");
    float[] v1 = TestMatrices.random(100, 4, 1);
    TestMatrices.write(dir, v1, 100, 4, 2, "modulo", allocator);
    TableManifest base = Table.open(dir).manifest();
    String oldShard0 = base.shard(0).file();
    TableManifest next;
    try (TableWriter w = TableWriter.nextVersion(dir, base, allocator)) {
      ShardWriter s0 = w.shard(0);
      ByteBuffer rows = ByteBuffer.allocate(50 * 16).order(ByteOrder.LITTLE_ENDIAN);
      s0.append(rows, 50);
      next = w.commit();
    }
    assertThat(next.tableVersion()).isEqualTo(2);
    assertThat(next.shard(1).file()).isEqualTo(base.shard(1).file());
    assertThat(dir.resolve(oldShard0)).doesNotExist();
    float[] row = new float[4];
    Table t = Table.open(dir);
    t.readRow(0, row, allocator);
    assertThat(row).containsExactly(0f, 0f, 0f, 0f);
    t.readRow(1, row, allocator);
    assertThat(row).containsExactly(v1[4], v1[5], v1[6], v1[7]);
  }

  @Test
  void manifestRoundTripsThroughJson() throws IOException {
    Path dir = tmp.resolve("t");
    TestMatrices.write(dir, TestMatrices.random(30, 3, 5), 30, 3, 4, "range", allocator);
    TableManifest m = Table.open(dir).manifest();
    TableManifest again = TableManifest.parse(m.toJson(), "again");
    assertThat(again).isEqualTo(m);
    assertThat(new String(m.toJson(), java.nio.charset.StandardCharsets.UTF_8))
        .contains("\"partitioner\" : \"range\"")
        .contains("\"checksum\" : \"crc32c:");
  }

  @Test
  void everySingleBitFlipInEveryFileIsDetected() throws IOException {
    Path dir = tmp.resolve("t");
    TestMatrices.write(dir, TestMatrices.random(40, 3, 9), 40, 3, 2, "modulo", allocator);
    List<Path> files = new ArrayList<>();
    try (var s = Files.list(dir)) {
      s.forEach(files::add);
    }
    java.util.Random random = new java.util.Random(7);
    for (Path f : files) {
      byte[] original = Files.readAllBytes(f);
      for (int trial = 0; trial < 25; trial++) {
        byte[] flipped = original.clone();
        int at = random.nextInt(flipped.length);
        flipped[at] ^= (byte) (1 << random.nextInt(8));
        Files.write(f, flipped);
        assertThatThrownBy(() -> Table.open(dir).verify(allocator))
            .as("bit flip at byte %d of %s", at, f.getFileName())
            .isInstanceOf(TableFormatException.class)
            .hasMessageContaining(TableFormat.MANIFEST_FILE.equals(f.getFileName().toString()) ? "manifest" : f.getFileName().toString());
      }
      Files.write(f, original);
      byte[] truncated = java.util.Arrays.copyOf(original, original.length - 1 - random.nextInt(original.length - 1));
      Files.write(f, truncated);
      assertThatThrownBy(() -> Table.open(dir).verify(allocator)).isInstanceOf(TableFormatException.class);
      Files.write(f, original);
    }
    assertThat(Table.open(dir).verify(allocator)).hasSize(3);
  }
}
