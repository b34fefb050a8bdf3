package io.embstore.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Another Arrow implementation reads our shard files: the JavaScript {@code apache-arrow} package
 * (npm, installed by {@code npm ci --prefix arrow-format/src/test/js}) reads a shard and prints its
 * ids, values and metadata, which must equal what we wrote; float16 shards through Arrow's own
 * HalfFloat decoding, bfloat16 and int8 shards by the recipes of {@code docs/format.md} (int8: the
 * same float32 bits as {@code ShardReader} decodes).
 */
class ArrowJsReadsShardTest {
  private static Path js;

  @TempDir Path tmp;

  @BeforeAll
  static void needsNodeAndArrowJs() {
    js = Tools.repoDir().resolve("arrow-format/src/test/js");
    assumeTrue(Tools.nodeAvailable(), "node is not on PATH (apt-get install nodejs npm)");
    assumeTrue(
        Files.isDirectory(js.resolve("node_modules/apache-arrow")),
        "apache-arrow is not installed in " + js + " (run: npm ci --prefix arrow-format/src/test/js)");
  }

  @ParameterizedTest
  @CsvSource({
    // one shard in several record batches (8 MiB / (8 + 2048 x 4) bytes = 1023 rows per batch)
    "modulo, 1, 0, 2100, 2048, float32",
    "modulo, 3, 1, 1000, 7, float32",
    "range, 3, 2, 1000, 7, float32",
    // 16-bit rows: 8 MiB / (8 + 2048 x 2) bytes = 2044 rows per batch
    "modulo, 1, 0, 4100, 2048, float16",
    "range, 3, 2, 1000, 7, float16",
    "modulo, 3, 1, 1000, 7, bfloat16",
    // int8 rows: C + 8 bytes, decoded by the recipe of docs/format.md to the same float32 bits as ShardReader
    "modulo, 1, 0, 4100, 2048, int8",
    "range, 3, 2, 1000, 7, int8"
  })
  void javascriptArrowReadsIdsValuesAndMetadata(String partitioner, int shards, int shard, int rows, int dim, String valueType)
      throws IOException {
    ValueType type = ValueType.of(valueType);
    float[] m = TestMatrices.random(rows, dim, rows + dim);
    m[0] = 1e-6f; // a float16 subnormal
    Path table = tmp.resolve("t");
    TableManifest manifest;
    try (BufferAllocator allocator = new RootAllocator()) {
      manifest = TestMatrices.write(TableLocation.of(table), m, rows, dim, shards, partitioner, type, allocator);
      if (type == ValueType.INT8) {
        int[] decoded = TestMatrices.readBits(table, allocator);
        for (int i = 0; i < m.length; i++) {
          m[i] = Float.intBitsToFloat(decoded[i]);
        }
      }
    }
    for (int i = 0; i < m.length; i++) {
      if (type == ValueType.FLOAT16) {
        m[i] = HalfFloats.float16ToFloat(HalfFloats.toFloat16(m[i]));
      } else if (type == ValueType.BFLOAT16) {
        m[i] = HalfFloats.bfloat16ToFloat(HalfFloats.toBfloat16(m[i]));
      }
    }
    Path file = table.resolve(manifest.shard(shard).file());
    Tools.Result r = Tools.run("node", js.resolve("read-shard.mjs").toString(), file.toString());
    assertThat(r.exit()).as(r.err()).isZero();
    JsonNode n = new ObjectMapper().readTree(r.out());

    assertThat(n.get("valueType").asText()).isEqualTo(valueType);
    JsonNode meta = n.get("metadata");
    assertThat(meta.get(TableFormat.META_FORMAT).asText()).isEqualTo(TableFormat.SHARD_FORMAT_NAME);
    assertThat(meta.get(TableFormat.META_DIM).asInt()).isEqualTo(dim);
    assertThat(meta.get(TableFormat.META_SHARD).asInt()).isEqualTo(shard);
    assertThat(meta.get(TableFormat.META_PARTITIONER).asText()).isEqualTo(partitioner);

    Partitioner p = manifest.partitioner();
    JsonNode ids = n.get("ids");
    JsonNode emb = n.get("embeddings");
    assertThat(ids.size()).isEqualTo(p.shardRows(shard));
    assertThat(emb.size()).isEqualTo(ids.size());
    for (int i = 0; i < ids.size(); i++) {
      long id = ids.get(i).asLong();
      assertThat(id).isEqualTo(p.idAt(shard, i));
      JsonNode row = emb.get(i);
      assertThat(row.size()).isEqualTo(dim);
      for (int c = 0; c < dim; c++) {
        float v = (float) row.get(c).asDouble();
        if (v != m[(int) id * dim + c]) {
          throw new AssertionError("id " + id + " column " + c + ": JavaScript read " + v + ", we wrote " + m[(int) id * dim + c]);
        }
      }
    }
  }
}
