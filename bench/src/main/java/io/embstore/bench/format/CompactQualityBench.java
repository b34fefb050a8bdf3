package io.embstore.bench.format;

import io.embstore.format.Resharder;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.ValueType;
import io.embstore.format.convert.ImportFormat;
import io.embstore.format.convert.Importer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * How much of a real matrix's neighbourhoods a 16-bit or int8 copy keeps: the MiniLM-L6 token
 * embeddings of {@code ../shared/data/embeddings} (30,522 x 384) imported as float32, converted with
 * {@code embstore convert}'s code ({@link Resharder}) to bfloat16, float16 and int8 (row-wise
 * quantized), and read back (decoded); for {@code --queries} random query rows, the exact cosine
 * top-k (the query itself excluded) of each copy against the float32 table's, as the mean fraction
 * of the float32 top-k found. For int8 it also prints the largest quantization error in half steps
 * of its row (at most 1 plus float32 rounding).
 *
 * <p>Run: {@code bench/run format.CompactQualityBench} (1,000 queries, k = 10; about a minute).
 */
@Command(name = "CompactQualityBench", mixinStandardHelpOptions = true, description = "Top-k neighbours kept by 16-bit and int8 copies of the MiniLM table.")
public final class CompactQualityBench implements Callable<Integer> {
  @Option(names = "--queries", description = "random query rows (default: ${DEFAULT-VALUE})")
  int queries = 1000;

  @Option(names = "-k", description = "neighbours per query (default: ${DEFAULT-VALUE})")
  int k = 10;

  public static void main(String[] args) {
    System.exit(new CommandLine(new CompactQualityBench()).execute(args));
  }

  @Override
  public Integer call() throws Exception {
    Path shared = Path.of(System.getProperty("embstore.shared.dir", "../shared"));
    Path npy = shared.resolve("data/embeddings/minilm-l6-wte-30522x384-f32.npy.gz");
    if (!Files.isReadable(npy)) {
      System.out.println("CompactQualityBench: skipped, " + npy + " is not readable (the shared data directory)");
      return 0;
    }
    Path work = Files.createTempDirectory("compact-quality");
    try (BufferAllocator root = new RootAllocator()) {
      TableLocation f32 = TableLocation.of(work.resolve("float32"));
      Importer.run(new Importer.Options(ImportFormat.NPY, npy, null, 4, "modulo", f32, false, null), root);
      TableManifest m = Table.open(f32).manifest();
      int rows = (int) m.rows();
      int dim = m.dim();
      float[] base = read(f32, root);
      double[] baseNorm = norms(base, rows, dim);
      int[] qs = new int[queries];
      SplittableRandom r = new SplittableRandom(19);
      for (int i = 0; i < queries; i++) {
        qs[i] = r.nextInt(rows);
      }
      int[][] truth = new int[queries][];
      for (int i = 0; i < queries; i++) {
        truth[i] = top(base, baseNorm, rows, dim, qs[i], base, k);
      }
      System.out.printf(Locale.ROOT, "CompactQualityBench: %s, %d x %d, %d random queries, exact cosine top-%d (the query excluded)%n",
          npy.getFileName(), rows, dim, queries, k);
      for (ValueType type : new ValueType[] {ValueType.BFLOAT16, ValueType.FLOAT16, ValueType.INT8}) {
        TableLocation copy = TableLocation.of(work.resolve(type.label()));
        Resharder.run(new Resharder.Options(f32, copy, 0, null, type, null), root);
        float[] v = read(copy, root);
        double[] norm = norms(v, rows, dim);
        double kept = 0;
        double worst = 1;
        double maxError = 0;
        for (int i = 0; i < v.length; i++) {
          maxError = Math.max(maxError, Math.abs(v[i] - base[i]) / Math.max(Math.abs(base[i]), 1e-30));
        }
        for (int i = 0; i < queries; i++) {
          // The query is the copy's row: what a client of the 16-bit table would search with.
          int[] got = top(v, norm, rows, dim, qs[i], v, k);
          int same = 0;
          for (int a : got) {
            for (int b : truth[i]) {
              if (a == b) {
                same++;
                break;
              }
            }
          }
          kept += (double) same / k;
          worst = Math.min(worst, (double) same / k);
        }
        String error = String.format(Locale.ROOT, "largest relative value error %.2e", maxError);
        if (type == ValueType.INT8) {
          double halfSteps = 0;
          for (int row = 0; row < rows; row++) {
            float min = Float.POSITIVE_INFINITY;
            float max = Float.NEGATIVE_INFINITY;
            for (int c = 0; c < dim; c++) {
              min = Math.min(min, base[row * dim + c]);
              max = Math.max(max, base[row * dim + c]);
            }
            double half = ((double) max - min) / 255 / 2;
            for (int c = 0; c < dim && half > 0; c++) {
              halfSteps = Math.max(halfSteps, Math.abs(v[row * dim + c] - base[row * dim + c]) / half);
            }
          }
          error = String.format(Locale.ROOT, "largest error %.4f half steps of its row", halfSteps);
        }
        System.out.printf(Locale.ROOT, "%-8s keeps %.4f of the float32 top-%d on average (worst query %.1f); %s%n",
            type, kept / queries, k, worst, error);
      }
    } finally {
      try (var s = Files.walk(work)) {
        for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
    return 0;
  }

  private static float[] read(TableLocation t, BufferAllocator root) throws Exception {
    Table table = Table.open(t);
    int dim = table.manifest().dim();
    float[] out = new float[(int) (table.manifest().rows() * dim)];
    table.forEachRowInIdOrder(root, true, (firstId, n, buf, offset) -> {
      for (int i = 0; i < n * dim; i++) {
        out[(int) (firstId * dim) + i] = buf.getFloat(offset + 4L * i);
      }
    });
    return out;
  }

  private static double[] norms(float[] m, int rows, int dim) {
    double[] n = new double[rows];
    for (int r = 0; r < rows; r++) {
      double s = 0;
      for (int c = 0; c < dim; c++) {
        s += (double) m[r * dim + c] * m[r * dim + c];
      }
      n[r] = Math.sqrt(s);
    }
    return n;
  }

  /** The ids of the k rows of {@code m} most cosine-similar to row {@code q} of {@code queryRows}, without q. */
  private static int[] top(float[] m, double[] norm, int rows, int dim, int q, float[] queryRows, int k) {
    int[] ids = new int[k];
    double[] sims = new double[k];
    java.util.Arrays.fill(sims, Double.NEGATIVE_INFINITY);
    double qn = norm[q];
    for (int r = 0; r < rows; r++) {
      if (r == q || norm[r] == 0) {
        continue;
      }
      double dot = 0;
      int a = r * dim;
      int b = q * dim;
      for (int c = 0; c < dim; c++) {
        dot += m[a + c] * queryRows[b + c];
      }
      double sim = dot / (norm[r] * qn);
      if (sim > sims[k - 1]) {
        int at = k - 1;
        while (at > 0 && sims[at - 1] < sim) {
          sims[at] = sims[at - 1];
          ids[at] = ids[at - 1];
          at--;
        }
        sims[at] = sim;
        ids[at] = r;
      }
    }
    return ids;
  }
}
