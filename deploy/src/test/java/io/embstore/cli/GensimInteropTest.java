package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.embstore.format.Matrices;
import io.embstore.format.Table;
import io.embstore.format.TestMatrices;
import io.embstore.format.Tools;
import io.embstore.format.Vocabulary;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The real gensim (Debian's python3-gensim) loads our word2vec files, and we load its. */
class GensimInteropTest {
  private static final String LOAD =
      "import sys, json\n"
          + "from gensim.models import KeyedVectors\n"
          + "kv = KeyedVectors.load_word2vec_format(sys.argv[1], binary=(sys.argv[2] == 'True'))\n"
          + "print(json.dumps({'tokens': list(kv.index_to_key), 'dtype': str(kv.vectors.dtype),"
          + " 'vectors': kv.vectors.astype(float).tolist()}))\n";

  @TempDir Path tmp;

  @BeforeAll
  static void needsGensim() {
    assumeTrue(Tools.pythonHas("gensim"), "/usr/bin/python3 cannot import gensim (apt-get install python3-gensim)");
  }

  private static void ok(CliRun r) {
    assertThat(r.exit()).as(r.err()).isZero();
  }

  @ParameterizedTest
  @ValueSource(strings = {"word2vec", "word2vec-bin"})
  void gensimLoadsOurExportWithTheSameTokensAndVectors(String format) throws IOException {
    int rows = 500;
    int dim = 16;
    float[] m = TestMatrices.random(rows, dim, 5);
    m[3] = 1e-40f; // subnormal
    m[4] = 123456.79f;
    List<String> tokens = new ArrayList<>();
    for (int i = 0; i < rows; i++) {
      tokens.add(i == 1 ? "café" : i == 2 ? "[CLS]" : "w" + i);
    }
    Path npy = Matrices.npy(tmp.resolve("m.npy"), m, rows, dim);
    Path vocab = Files.writeString(tmp.resolve("v.txt"), String.join("\n", tokens) + "\n");
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", "npy", "--input", npy.toString(), "--vocab", vocab.toString(), "--shards", "3", "--output", table.toString()));
    Path out = tmp.resolve("out." + format);
    ok(CliRun.exporting("--to", format, "--table", table.toString(), "--output", out.toString()));
    JsonNode n = new ObjectMapper().readTree(Tools.python(LOAD, out.toString(), format.equals("word2vec-bin") ? "True" : "False"));
    assertThat(n.get("dtype").asText()).isEqualTo("float32");
    List<String> got = new ArrayList<>();
    n.get("tokens").forEach(t -> got.add(t.asText()));
    assertThat(got).isEqualTo(tokens);
    assertThat(floats(n.get("vectors"), dim)).isEqualTo(m);
  }

  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void weImportWhatGensimWrites(boolean binary) throws IOException {
    Path file = tmp.resolve(binary ? "g.bin" : "g.txt");
    String json =
        Tools.python(
            "import sys, json, numpy as np\n"
                + "from gensim.models import KeyedVectors\n"
                + "rng = np.random.default_rng(3)\n"
                + "kv = KeyedVectors(vector_size=10)\n"
                + "keys = ['the', 'of', 'and', 'naïve', 'x'] + ['t%d' % i for i in range(295)]\n"
                + "kv.add_vectors(keys, rng.standard_normal((300, 10)).astype(np.float32))\n"
                + "kv.save_word2vec_format(sys.argv[1], binary=(sys.argv[2] == 'True'))\n"
                + "print(json.dumps({'tokens': keys, 'vectors': kv.vectors.astype(float).tolist()}))\n",
            file.toString(),
            binary ? "True" : "False");
    JsonNode n = new ObjectMapper().readTree(json);
    Path table = tmp.resolve("t");
    ok(CliRun.importing("--from", binary ? "word2vec-bin" : "word2vec", "--input", file.toString(), "--shards", "2", "--output", table.toString()));
    float[] want = floats(n.get("vectors"), 10);
    float[] got = new float[want.length];
    try (BufferAllocator allocator = new RootAllocator()) {
      Table t = Table.open(table);
      t.forEachRowInIdOrder(allocator, true, (firstId, rows, buf, offset) -> {
        for (int i = 0; i < rows * 10; i++) {
          got[(int) firstId * 10 + i] = buf.getFloat(offset + 4L * i);
        }
      });
      Vocabulary v = t.vocabulary(allocator);
      List<String> tokens = new ArrayList<>();
      n.get("tokens").forEach(x -> tokens.add(x.asText()));
      assertThat(v.tokens()).isEqualTo(tokens);
    }
    // Exact for text too: gensim prints float32 values with repr(), which reads back exactly.
    assertThat(got).isEqualTo(want);
  }

  private static float[] floats(JsonNode rows, int dim) {
    float[] out = new float[rows.size() * dim];
    for (int r = 0; r < rows.size(); r++) {
      for (int c = 0; c < dim; c++) {
        out[r * dim + c] = (float) rows.get(r).get(c).asDouble();
      }
    }
    return out;
  }
}
