package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.embstore.format.Table;
import io.embstore.format.TestMatrices;
import io.embstore.format.Tools;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * safetensors files written by an independent writer (Python's {@code struct} and {@code json}
 * with NumPy's bytes, as the format's specification lays them out) import bit-exactly; F16 and
 * BF16 tensors, every one of their 65,536 bit patterns, widen to the float32 NumPy computes; and
 * Python reads what {@code export --to safetensors} writes.
 */
class SafetensorsInteropTest {
  /** A safetensors writer: sorted-free JSON header with data_offsets, padded to 8 bytes, little-endian data. */
  private static final String WRITER = String.join("\n",
      "import json, struct, sys",
      "import numpy as np",
      "def save(path, tensors, metadata=None):",
      "    header = {} if metadata is None else {'__metadata__': metadata}",
      "    offset = 0",
      "    blobs = []",
      "    for name, (dtype, array) in tensors:",
      "        data = array.tobytes()",
      "        header[name] = {'dtype': dtype, 'shape': list(array.shape), 'data_offsets': [offset, offset + len(data)]}",
      "        offset += len(data)",
      "        blobs.append(data)",
      "    h = json.dumps(header).encode('utf-8')",
      "    h += b' ' * ((8 - len(h) % 8) % 8)",
      "    with open(path, 'wb') as f:",
      "        f.write(struct.pack('<Q', len(h)))",
      "        f.write(h)",
      "        for b in blobs:",
      "            f.write(b)",
      "");

  @TempDir Path tmp;

  @BeforeAll
  static void needsNumpy() {
    assumeTrue(Tools.pythonHas("numpy"), "/usr/bin/python3 cannot import numpy (apt-get install python3-numpy)");
  }

  private static void ok(CliRun r) {
    assertThat(r.exit()).as(r.err()).isZero();
  }

  private static int[] rawBits(Path file) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
    int[] out = new int[b.remaining() / 4];
    b.asIntBuffer().get(out);
    return out;
  }

  private int[] importBits(Path file, String tensor, String... extra) throws IOException {
    Path table = tmp.resolve("t-" + tensor);
    String[] args = {"--from", "safetensors", "--input", file.toString(), "--tensor", tensor, "--shards", "3", "--output", table.toString()};
    String[] all = java.util.Arrays.copyOf(args, args.length + extra.length);
    System.arraycopy(extra, 0, all, args.length, extra.length);
    ok(CliRun.importing(all));
    try (BufferAllocator allocator = new RootAllocator()) {
      assertThat(Table.open(table).manifest().properties()).containsEntry("import.tensor", tensor);
      return TestMatrices.readBits(table, allocator);
    }
  }

  @Test
  void float32TensorAmongOthersImportsBitForBit() throws IOException {
    Path file = tmp.resolve("model.safetensors");
    Path expected = tmp.resolve("wte.bin");
    Tools.python(WRITER
        + "rng = np.random.default_rng(7)\n"
        + "wte = rng.standard_normal((1001, 37)).astype('<f4')\n"
        + "wte[0, 0] = np.float32(1e-45); wte[1, 1] = np.finfo(np.float32).max; wte[2, 2] = -0.0\n"
        + "save(sys.argv[1], [('wpe.weight', ('F32', rng.standard_normal((7, 37)).astype('<f4'))),\n"
        + "                   ('h.0.ln.bias', ('F16', rng.standard_normal(37).astype('<f2'))),\n"
        + "                   ('wte.weight', ('F32', wte)),\n"
        + "                   ('steps', ('I64', np.arange(3, dtype='<i8')))], {'format': 'pt'})\n"
        + "open(sys.argv[2], 'wb').write(wte.tobytes())\n",
        file.toString(), expected.toString());
    assertThat(importBits(file, "wte.weight")).isEqualTo(rawBits(expected));
    assertThat(importBits(file, "wpe.weight")).hasSize(7 * 37);
  }

  @Test
  void float16WidensExactlyForEveryBitPattern() throws IOException {
    Path file = tmp.resolve("f16.safetensors");
    Path expected = tmp.resolve("f16.bin");
    Tools.python(WRITER
        + "h = np.arange(65536, dtype='<u2').view('<f2').reshape(1024, 64)\n"
        + "save(sys.argv[1], [('h', ('F16', h))])\n"
        + "open(sys.argv[2], 'wb').write(h.astype('<f4').tobytes())\n",
        file.toString(), expected.toString());
    int[] got = importBits(file, "h", "--allow-non-finite");
    int[] numpy = rawBits(expected);
    assertThat(got).hasSize(65536);
    for (int h = 0; h < 65536; h++) {
      boolean nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
      if (nan) {
        // NumPy may set the quiet bit of a signalling NaN; the value is NaN either way. Ours keeps
        // sign and payload: 0x7f800000 | sign | payload << 13.
        assertThat(Float.isNaN(Float.intBitsToFloat(numpy[h]))).as("numpy NaN at %04x", h).isTrue();
        assertThat(got[h]).as("bits of f16 %04x", h).isEqualTo(((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13));
      } else {
        assertThat(got[h]).as("bits of f16 %04x", h).isEqualTo(numpy[h]);
      }
    }
  }

  @Test
  void bfloat16WidensExactlyForEveryBitPattern() throws IOException {
    Path file = tmp.resolve("bf16.safetensors");
    Path expected = tmp.resolve("bf16.bin");
    Tools.python(WRITER
        + "bits = np.arange(65536, dtype='<u2').reshape(256, 256)\n"
        + "save(sys.argv[1], [('b', ('BF16', bits))])\n"
        + "open(sys.argv[2], 'wb').write((bits.astype('<u4') << 16).view('<f4').tobytes())\n",
        file.toString(), expected.toString());
    assertThat(importBits(file, "b", "--allow-non-finite")).isEqualTo(rawBits(expected));
  }

  @Test
  void listPrintsWhatTheWriterWrote() throws IOException {
    Path file = tmp.resolve("model.safetensors");
    String expected = Tools.python(WRITER
        + "ts = [('wte.weight', ('F32', np.zeros((50, 8), '<f4'))), ('b', ('BF16', np.zeros((3,), '<u2'))),\n"
        + "      ('a.ids', ('I32', np.zeros((2, 2, 2), '<i4')))]\n"
        + "save(sys.argv[1], ts, {'format': 'pt', 'source': 'test'})\n"
        + "for name, (dtype, a) in sorted(ts):\n"
        + "    print('%s\\t%s\\t[%s]\\t%d' % (name, dtype, ', '.join(str(d) for d in a.shape), a.nbytes))\n"
        + "print('__metadata__\\tformat=pt source=test')\n",
        file.toString());
    CliRun r = CliRun.importing("--from", "safetensors", "--input", file.toString(), "--list");
    ok(r);
    assertThat(r.out()).isEqualTo(expected);
  }

  @Test
  void pythonReadsTheExportedFile() throws IOException {
    int rows = 257;
    int dim = 9;
    float[] m = TestMatrices.random(rows, dim, 5);
    Path table = tmp.resolve("t");
    try (BufferAllocator allocator = new RootAllocator()) {
      TestMatrices.write(table, m, rows, dim, 4, "modulo", allocator);
    }
    Path out = tmp.resolve("out.safetensors");
    ok(CliRun.exporting("--to", "safetensors", "--table", table.toString(), "--output", out.toString(), "--tensor", "wte.weight"));
    String json = Tools.python(
        "import json, struct, sys\n"
            + "import numpy as np\n"
            + "raw = open(sys.argv[1], 'rb').read()\n"
            + "n = struct.unpack('<Q', raw[:8])[0]\n"
            + "header = json.loads(raw[8:8 + n].decode('utf-8'))\n"
            + "t = header['wte.weight']\n"
            + "b, e = t['data_offsets']\n"
            + "a = np.frombuffer(raw[8 + n + b:8 + n + e], dtype='<f4').reshape(t['shape'])\n"
            + "print(json.dumps({'n': n, 'dtype': t['dtype'], 'shape': t['shape'], 'end': 8 + n + e, 'size': len(raw),\n"
            + "                  'metadata': header['__metadata__'], 'names': sorted(header),\n"
            + "                  'bits': a.view('<u4').astype(int).ravel().tolist()}))\n",
        out.toString());
    JsonNode n = new ObjectMapper().readTree(json);
    assertThat(n.get("n").asLong() % 8).isZero();
    assertThat(n.get("dtype").asText()).isEqualTo("F32");
    assertThat(n.get("shape").toString()).isEqualTo("[" + rows + "," + dim + "]");
    assertThat(n.get("end").asLong()).isEqualTo(n.get("size").asLong());
    assertThat(n.get("metadata").toString()).isEqualTo("{\"format\":\"pt\"}");
    assertThat(n.get("names").toString()).isEqualTo("[\"__metadata__\",\"wte.weight\"]");
    int[] bits = new int[rows * dim];
    for (int i = 0; i < bits.length; i++) {
      bits[i] = (int) n.get("bits").get(i).asLong();
    }
    assertThat(bits).isEqualTo(TestMatrices.bits(m));
  }
}
