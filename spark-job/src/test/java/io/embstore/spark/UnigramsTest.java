package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.function.IntSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The compact unigram statistics ({@link Unigrams}) against the exact distributions, on a
 * vocabulary with a known Zipf law: negatives drawn from runs of equal counts follow unigram^0.75
 * (a chi-square test at a fixed seed and a fixed p-value threshold, which deliberately wrong
 * samplers fail), with ids in count order (built vocabularies) and in any order (id input, through
 * the mapped order file); the keep probabilities of sub-sampling equal word2vec's formula for every
 * id.
 */
class UnigramsTest {
  /** V and the Zipf law: count of rank r is floor(TOP / (r + 1)), exponent 1. */
  static final int V = 200_000;
  static final long TOP = 1_000_000;
  static final int DRAWS = 3_000_000;
  /** The test passes a sampler whose p-value is at least this; fixed seeds make it deterministic. */
  static final double P_MIN = 1e-3;
  @TempDir Path tmp;

  static long[] zipfCounts() {
    long[] c = new long[V];
    for (int r = 0; r < V; r++) {
      c[r] = TOP / (r + 1);
    }
    return c;
  }

  /** Exact unigram^0.75 probabilities of {@code countsById}. */
  static double[] exact(long[] countsById) {
    double[] p = new double[countsById.length];
    double z = 0;
    for (int i = 0; i < p.length; i++) {
      p[i] = Math.pow(countsById[i], Unigrams.POWER);
      z += p[i];
    }
    for (int i = 0; i < p.length; i++) {
      p[i] /= z;
    }
    return p;
  }

  /**
   * Pearson's chi-square p-value of {@code DRAWS} draws against {@code p}, ids binned in {@code
   * binOrder} (rank order, so that bins cut through runs and test uniformity inside them too) with an
   * expected count of at least 200 per bin.
   */
  static double pValue(IntSupplier draw, double[] p, int[] binOrder) {
    long[] hits = new long[p.length];
    for (int i = 0; i < DRAWS; i++) {
      hits[draw.getAsInt()]++;
    }
    double chi2 = 0;
    int bins = 0;
    double expected = 0;
    long observed = 0;
    for (int k = 0; k < binOrder.length; k++) {
      expected += p[binOrder[k]] * DRAWS;
      observed += hits[binOrder[k]];
      if (expected >= 200 || k == binOrder.length - 1) {
        chi2 += (observed - expected) * (observed - expected) / expected;
        bins++;
        expected = 0;
        observed = 0;
      }
    }
    assertThat(bins).as("bins").isGreaterThan(1_000);
    return upperGamma((bins - 1) / 2.0, chi2 / 2);
  }

  static int[] identity(int n) {
    int[] o = new int[n];
    for (int i = 0; i < n; i++) {
      o[i] = i;
    }
    return o;
  }

  static IntSupplier draws(Unigrams u, long seed) {
    long[] state = {seed};
    return () -> {
      state[0] += 0x9E3779B97F4A7C15L;
      return u.sample(SkipGram.mix64(state[0]));
    };
  }

  @Test
  void drawsFollowUnigramToThePowerThreeQuartersAndWrongSamplersFailTheSameTest() {
    long[] counts = zipfCounts();
    Unigrams u = Unigrams.ofCounts(counts, 1e-3);
    // Ids are in count order: no order file, and thousands of runs, not V entries.
    assertThat(u.spec().orderFile()).isNull();
    assertThat(u.spec().runs()).isBetween(500, 2_000);
    double[] p = exact(counts);
    double good = pValue(draws(u, 11), p, identity(V));
    System.out.printf("chi-square p-value, compact sampler (%d runs for %d ids): %.4f%n", u.spec().runs(), V, good);
    assertThat(good).as("p-value of the compact sampler").isGreaterThanOrEqualTo(P_MIN);

    // Wrong 1: runs drawn by count^0.75 alone, forgetting how many ids share the count.
    Unigrams.Spec spec = u.spec();
    double[] perRun = new double[spec.runs()];
    for (int r = 0; r < perRun.length; r++) {
      perRun[r] = Math.pow(spec.runCounts()[r], Unigrams.POWER);
    }
    AliasSampler runs = new AliasSampler(perRun);
    long[] s1 = {11};
    double forgotSize = pValue(() -> {
      s1[0] += 0x9E3779B97F4A7C15L;
      long bits = SkipGram.mix64(s1[0]);
      int r = runs.sample(bits);
      return (int) (spec.runStarts()[r] + (((SkipGram.mix64(bits ^ 0x5DEECE66DL) >>> 32) * spec.runSize(r)) >>> 32));
    }, p, identity(V));
    // Wrong 2: the id inside a run drawn from one id too many (the next run's first id leaks in).
    long[] s2 = {11};
    AliasSampler right = new AliasSampler(java.util.stream.IntStream.range(0, spec.runs())
        .mapToDouble(r -> spec.runSize(r) * Math.pow(spec.runCounts()[r], Unigrams.POWER)).toArray());
    double offByOne = pValue(() -> {
      s2[0] += 0x9E3779B97F4A7C15L;
      long bits = SkipGram.mix64(s2[0]);
      int r = right.sample(bits);
      long n = r == spec.runs() - 1 ? spec.runSize(r) : spec.runSize(r) + 1;
      return (int) (spec.runStarts()[r] + (((SkipGram.mix64(bits ^ 0x5DEECE66DL) >>> 32) * n) >>> 32));
    }, p, identity(V));
    // Wrong 3: unigram^1 (the power forgotten), one cell per id.
    AliasSampler unigram = new AliasSampler(counts, 1.0);
    long[] s3 = {11};
    double powerOne = pValue(() -> unigram.sample(SkipGram.mix64(s3[0] += 0x9E3779B97F4A7C15L)), p, identity(V));
    System.out.printf("chi-square p-values of wrong samplers: run size forgotten %.3g, one id too many per run %.3g, power 1 %.3g%n",
        forgotSize, offByOne, powerOne);
    assertThat(forgotSize).isLessThan(P_MIN);
    assertThat(offByOne).isLessThan(P_MIN);
    assertThat(powerOne).isLessThan(P_MIN);
  }

  /**
   * Id input: ids in any order, some never seen. The sampler maps ranks to ids through the order
   * file (4 bytes per id seen, memory-mapped); its draws pass the same test.
   */
  @Test
  void idsInAnyOrderDrawThroughTheMappedOrderFileAndPassTheSameTest() throws IOException {
    long[] byRank = zipfCounts();
    // ids: a permutation of [0, V + 1000) with 1000 ids never seen
    int[] idOfRank = new int[V];
    int[] perm = identity(V + 1000);
    SplittableRandom r = new SplittableRandom(3);
    for (int i = perm.length - 1; i > 0; i--) {
      int j = r.nextInt(i + 1);
      int t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    long[] countsById = new long[V + 1000];
    for (int rank = 0; rank < V; rank++) {
      idOfRank[rank] = perm[rank];
      countsById[perm[rank]] = byRank[rank];
    }
    // The order file as Corpus writes it: ids by descending count, ties by ascending id.
    Unigrams heap = Unigrams.ofCounts(countsById, 1e-3);
    ByteBuffer b = ByteBuffer.allocate(4 * V).order(ByteOrder.LITTLE_ENDIAN);
    for (int rank = 0; rank < V; rank++) {
      b.putInt(heap.id(rank));
    }
    Path file = tmp.resolve("order.bin");
    Files.write(file, b.array());
    Unigrams.Spec spec = Unigrams.Spec.ofSortedCounts(byRank, 1e-3, "order.bin");
    Unigrams mapped = Unigrams.open(spec, name -> tmp.resolve(name));
    assertThat(mapped.countsById(V + 1000)).isEqualTo(countsById);

    double[] p = exact(countsById);
    int[] rankOrder = new int[V];
    for (int rank = 0; rank < V; rank++) {
      rankOrder[rank] = mapped.id(rank);
    }
    double pv = pValue(draws(mapped, 17), p, rankOrder);
    System.out.printf("chi-square p-value, id input through the order file: %.4f%n", pv);
    assertThat(pv).isGreaterThanOrEqualTo(P_MIN);
    long[] never = {0};
    IntSupplier d = draws(mapped, 5);
    for (int i = 0; i < 100_000; i++) {
      never[0] += countsById[d.getAsInt()] == 0 ? 1 : 0;
    }
    assertThat(never[0]).as("draws of ids never seen").isZero();

    // Sub-sampling of id input: every id's keep probability, frequent ones from a small map.
    assertKeepProbabilitiesAreExact(mapped, countsById, 1e-3);

    Files.write(file, new byte[12]);
    assertThatThrownBy(() -> Unigrams.open(spec, name -> tmp.resolve(name)))
        .isInstanceOf(IOException.class)
        .hasMessage("Cannot map the sampler's id order " + file + ": 12 bytes, expected " + 4L * V + " (4 per id of " + V + ")");
  }

  @Test
  void keepProbabilitiesEqualWord2vecsFormulaForEveryIdFromAFewFloats() {
    long[] counts = zipfCounts();
    for (double sample : new double[] {1e-3, 1e-4, 1e-5}) {
      Unigrams u = Unigrams.ofCounts(counts, sample);
      assertKeepProbabilitiesAreExact(u, counts, sample);
      // Only ids of count above 2.618 t keep with probability below 1: fewer than 1 / (2.618 sample).
      assertThat(u.frequentRanks()).as("frequent ranks at sample %s", sample).isLessThan((int) (1 / (2.618 * sample)));
    }
    Unigrams off = Unigrams.ofCounts(counts, 0);
    assertThat(off.frequentRanks()).isZero();
    assertThat(off.keep(0)).isEqualTo(1f);
  }

  static void assertKeepProbabilitiesAreExact(Unigrams u, long[] countsById, double sample) {
    long total = java.util.Arrays.stream(countsById).sum();
    double t = sample * total;
    int below = 0;
    for (int id = 0; id < countsById.length; id++) {
      double c = countsById[id];
      double exact = c == 0 ? 1 : Math.min(1.0, (Math.sqrt(c / t) + 1) * t / c);
      assertThat((double) u.keep(id)).as("keep of id %d (count %d) at sample %s", id, countsById[id], sample)
          .isCloseTo(exact, org.assertj.core.api.Assertions.within(1e-6));
      below += exact < 1 ? 1 : 0;
    }
    assertThat(u.frequentRanks()).isEqualTo(below);
  }

  /**
   * The sampler's heap as docs/training.md states it: building it from its spec (16 bytes per run,
   * sent by the driver) allocates 32 bytes per run (the alias table's 8 stay) plus 4 per frequent
   * rank, whatever V is; measured as the bytes this thread allocates.
   */
  @Test
  void theSamplerTakesBytesPerRunNotPerId() throws IOException {
    Unigrams.Spec spec = Unigrams.ofCounts(zipfCounts(), 1e-4).spec();
    Unigrams.open(spec, name -> null); // once before measuring: class loading allocates too
    com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
    long before = mx.getThreadAllocatedBytes(Thread.currentThread().getId());
    Unigrams u = Unigrams.open(spec, name -> null);
    long allocated = mx.getThreadAllocatedBytes(Thread.currentThread().getId()) - before;
    long stated = 32L * spec.runs() + 4L * u.frequentRanks();
    System.out.printf("sampler of %,d ids: %,d runs, %,d frequent ranks: %,d bytes allocated, %,d stated + 16 KB%n",
        spec.ranks(), spec.runs(), u.frequentRanks(), allocated, stated);
    // a few KB of fixed cost besides the arrays; nothing per id (4 bytes per id would be 800 KB here)
    assertThat(allocated).isLessThanOrEqualTo(stated + 16 * 1024);
  }

  @Test
  void runsOutOfOrderAreRefusedNamingTheRun() {
    Unigrams.Builder b = new Unigrams.Builder();
    b.add(5, 2);
    assertThatThrownBy(() -> b.add(6, 1))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot build a sampler: count 6 at rank 2 after count 5 (ranks must be in descending count order)");
    assertThatThrownBy(() -> b.add(0, 1))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot build a sampler: count 0 at rank 2 (at least 1)");
    assertThatThrownBy(() -> new Unigrams.Spec(new long[] {3, 4}, new long[] {0, 2}, 5, 10, 0, null))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot build a sampler: run 1 (count 4, from rank 2) is out of order (counts must fall, starts rise from 0 below 5)");
    assertThatThrownBy(() -> Unigrams.ofCounts(new long[] {0, 0}, 0))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot build a sampler: every count is 0");
  }

  // ------------------------------------------------------------------ the chi-square distribution

  /** Q(a, x), the regularised upper incomplete gamma function: the chi-square p-value at a = df/2, x = chi2/2. */
  static double upperGamma(double a, double x) {
    if (x <= 0) {
      return 1;
    }
    double lnFront = -x + a * Math.log(x) - logGamma(a);
    if (x < a + 1) {
      // series for P(a, x)
      double sum = 1 / a;
      double term = sum;
      for (int n = 1; n < 100_000; n++) {
        term *= x / (a + n);
        sum += term;
        if (Math.abs(term) < Math.abs(sum) * 1e-15) {
          break;
        }
      }
      return 1 - Math.exp(lnFront) * sum;
    }
    // Lentz's continued fraction for Q(a, x)
    double tiny = 1e-300;
    double b = x + 1 - a;
    double c = 1 / tiny;
    double d = 1 / b;
    double h = d;
    for (int i = 1; i < 100_000; i++) {
      double an = -i * (i - a);
      b += 2;
      d = an * d + b;
      d = Math.abs(d) < tiny ? tiny : d;
      c = b + an / c;
      c = Math.abs(c) < tiny ? tiny : c;
      d = 1 / d;
      double delta = d * c;
      h *= delta;
      if (Math.abs(delta - 1) < 1e-15) {
        break;
      }
    }
    return Math.exp(lnFront) * h;
  }

  /** Lanczos' approximation (g = 7, n = 9). */
  static double logGamma(double x) {
    double[] g = {0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
        -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7};
    x -= 1;
    double a = g[0];
    double t = x + 7.5;
    for (int i = 1; i < 9; i++) {
      a += g[i] / (x + i);
    }
    return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
  }

  @Test
  void theChiSquareTailMatchesKnownValues() {
    // chi2 = 3.841 at 1 df and 124.342 at 100 df are the 5% points; 18.307 at 10 df too.
    assertThat(upperGamma(0.5, 3.841459 / 2)).isCloseTo(0.05, org.assertj.core.api.Assertions.within(1e-5));
    assertThat(upperGamma(5, 18.307038 / 2)).isCloseTo(0.05, org.assertj.core.api.Assertions.within(1e-5));
    assertThat(upperGamma(50, 124.342113 / 2)).isCloseTo(0.05, org.assertj.core.api.Assertions.within(1e-5));
  }
}
