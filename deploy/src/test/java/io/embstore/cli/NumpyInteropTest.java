package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.embstore.format.TestMatrices;
import io.embstore.format.Tools;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** NumPy (Debian's python3-numpy) writes what we import and reads what we export. */
class NumpyInteropTest {
  @TempDir Path tmp;

  @BeforeAll
  static void needsNumpy() {
    assumeTrue(Tools.pythonHas("numpy"), "/usr/bin/python3 cannot import numpy (apt-get install python3-numpy)");
  }

  private static void ok(CliRun r) {
    assertThat(r.exit()).as(r.err()).isZero();
  }

  @Test
  void numpyFileSurvivesImportAndExportByteForByte() throws IOException {
    Path npy = tmp.resolve("np.npy");
    Tools.python(
        "import numpy as np, sys\n"
            + "rng = np.random.default_rng(42)\n"
            + "a = rng.standard_normal((1001, 37)).astype('<f4')\n"
            + "a[0, 0] = np.float32(1e-45); a[1, 1] = np.finfo(np.float32).max; a[2, 2] = -0.0\n"
            + "np.save(sys.argv[1], a)\n",
        npy.toString());
    for (String partitioner : new String[] {"modulo", "range"}) {
      Path table = tmp.resolve("t-" + partitioner);
      ok(CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "3", "--partitioner", partitioner, "--output", table.toString()));
      Path back = tmp.resolve("back-" + partitioner + ".npy");
      ok(CliRun.exporting("--to", "npy", "--table", table.toString(), "--output", back.toString()));
      assertThat(Files.readAllBytes(back)).isEqualTo(Files.readAllBytes(npy));
    }
  }

  @Test
  void numpyLoadsOurExportWithTheSameValues() throws IOException {
    int rows = 257;
    int dim = 9;
    float[] m = TestMatrices.random(rows, dim, 77);
    Path table = tmp.resolve("t");
    try (BufferAllocator allocator = new RootAllocator()) {
      TestMatrices.write(table, m, rows, dim, 4, "modulo", allocator);
    }
    Path out = tmp.resolve("ours.npy");
    ok(CliRun.exporting("--to", "npy", "--table", table.toString(), "--output", out.toString()));
    String json =
        Tools.python(
            "import numpy as np, sys, json\n"
                + "a = np.load(sys.argv[1])\n"
                + "assert a.dtype == np.dtype('<f4') and a.flags['C_CONTIGUOUS'], a.dtype\n"
                + "print(json.dumps({'shape': list(a.shape), 'values': a.astype(float).ravel().tolist()}))\n",
            out.toString());
    JsonNode n = new ObjectMapper().readTree(json);
    assertThat(n.get("shape").get(0).asLong()).isEqualTo(rows);
    assertThat(n.get("shape").get(1).asInt()).isEqualTo(dim);
    float[] got = new float[rows * dim];
    for (int i = 0; i < got.length; i++) {
      got[i] = (float) n.get("values").get(i).asDouble();
    }
    assertThat(got).isEqualTo(m);
  }
}
