package io.embstore.bench.train.scale;

import io.embstore.format.Partitioner;
import io.embstore.format.ShardReader;
import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import java.io.IOException;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.apache.arrow.memory.BufferAllocator;

/**
 * Exact cosine top-K over a whole table for a batch of query ids, in one streaming pass over the
 * shard files (plus one to fetch the query rows): each batch of rows is compared with every query
 * (queries in tiles that stay in cache, 2 rows x 4 queries per inner loop, in Vector API lanes), a query's K-th best
 * similarity so far filters candidates. Q queries cost Q x V x C multiply-adds, the same as Q calls
 * of {@code EmbeddingClient.nearest}, but without a pass over the table per query; the table never
 * needs to fit in memory.
 */
public final class NearestScan {
  private static final int ROW_BLOCK = 256;
  private static final int QUERY_TILE = 128;

  private NearestScan() {}

  /** Neighbours of each query, best first: ids {@code [q][0..K)} and their similarities. */
  public record Result(long[][] ids, float[][] sims, double seconds) {}

  public static Result run(Path dir, long[] queryIds, int kNeighbours, int threads, BufferAllocator allocator)
      throws IOException, InterruptedException {
    long t0 = System.nanoTime();
    Table table = Table.open(dir);
    TableManifest m = table.manifest();
    int c = m.dim();
    Partitioner part = m.partitioner();
    int q = queryIds.length;
    int qp = (q + 3) / 4 * 4;
    float[] queries = new float[qp * c];
    fetch(table, queryIds, queries, allocator);
    for (int i = 0; i < q; i++) {
      double n = 0;
      for (int j = 0; j < c; j++) {
        n += (double) queries[i * c + j] * queries[i * c + j];
      }
      float inv = n == 0 ? 0f : (float) (1 / Math.sqrt(n));
      for (int j = 0; j < c; j++) {
        queries[i * c + j] *= inv;
      }
    }
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    List<Future<Top>> parts = new ArrayList<>();
    try {
      for (int t = 0; t < threads; t++) {
        int thread = t;
        parts.add(pool.submit(() -> {
          Top top = new Top(q, kNeighbours);
          for (int s = thread; s < m.numShards(); s += threads) {
            scanShard(table, s, part, c, queries, queryIds, qp, top, allocator);
          }
          return top;
        }));
      }
      Top all = new Top(q, kNeighbours);
      for (Future<Top> f : parts) {
        Top t = f.get();
        for (int i = 0; i < q; i++) {
          for (int j = 0; j < kNeighbours; j++) {
            if (t.ids[i][j] >= 0) {
              all.offer(i, t.ids[i][j], t.sims[i][j]);
            }
          }
        }
      }
      return new Result(all.ids, all.sims, (System.nanoTime() - t0) / 1e9);
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IOException("Cannot scan " + dir + ": " + e.getCause(), e.getCause());
    } finally {
      pool.shutdownNow();
    }
  }

  /** Copies the rows of {@code ids} into {@code out} (row-major), one pass per shard that holds any. */
  static void fetch(Table table, long[] ids, float[] out, BufferAllocator allocator) throws IOException {
    TableManifest m = table.manifest();
    Partitioner part = m.partitioner();
    int c = m.dim();
    for (int s = 0; s < m.numShards(); s++) {
      List<long[]> wanted = new ArrayList<>(); // {position, query index}
      for (int i = 0; i < ids.length; i++) {
        if (part.shardOf(ids[i]) == s) {
          wanted.add(new long[] {part.positionOf(ids[i]), i});
        }
      }
      if (wanted.isEmpty()) {
        continue;
      }
      wanted.sort((x, y) -> Long.compare(x[0], y[0]));
      int next = 0;
      try (BufferAllocator a = allocator.newChildAllocator("fetch-" + s, 0, Long.MAX_VALUE);
          ShardReader r = table.openShard(s, a, false)) {
        while (next < wanted.size() && r.loadNextBatch()) {
          long end = r.batchStart() + r.batchRows();
          FloatBuffer fb = r.embeddings().nioBuffer(0, r.batchRows() * c * 4).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
          while (next < wanted.size() && wanted.get(next)[0] < end) {
            long[] w = wanted.get(next++);
            fb.position((int) (w[0] - r.batchStart()) * c);
            fb.get(out, (int) w[1] * c, c);
          }
        }
      }
    }
  }

  private static void scanShard(Table table, int s, Partitioner part, int c, float[] queries, long[] queryIds,
      int qp, Top top, BufferAllocator allocator) throws IOException {
    float[] rows = new float[(ROW_BLOCK + 1) * c];
    float[] inv = new float[ROW_BLOCK + 1];
    float[] sims = new float[8];
    int q = queryIds.length;
    try (BufferAllocator a = allocator.newChildAllocator("scan-" + s, 0, Long.MAX_VALUE);
        ShardReader r = table.openShard(s, a, false)) {
      while (r.loadNextBatch()) {
        int n = r.batchRows();
        FloatBuffer fb = r.embeddings().nioBuffer(0, n * c * 4).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        for (int from = 0; from < n; from += ROW_BLOCK) {
          int len = Math.min(ROW_BLOCK, n - from);
          fb.position(from * c);
          fb.get(rows, 0, len * c);
          Arrays.fill(rows, len * c, (len + 1) * c, 0f);
          for (int i = 0; i <= len; i++) {
            double sq = 0;
            for (int j = 0; j < c; j++) {
              sq += rows[i * c + j] * rows[i * c + j];
            }
            inv[i] = sq == 0 ? 0f : (float) (1 / Math.sqrt(sq));
          }
          long base = r.batchStart() + from;
          for (int t0 = 0; t0 < qp; t0 += QUERY_TILE) {
            int t1 = Math.min(qp, t0 + QUERY_TILE);
            for (int i = 0; i < len; i += 2) {
              int ra = i * c;
              int rb = ra + c;
              for (int j = t0; j < t1; j += 4) {
                dots(rows, ra, rb, queries, j * c, c, sims);
                for (int u = 0; u < 8; u++) {
                  sims[u] *= inv[i + (u >> 2)];
                }
                for (int u = 0; u < 8; u++) {
                  int qi = j + (u & 3);
                  int ri = i + (u >> 2);
                  if (qi < q && ri < len && sims[u] > top.threshold[qi]) {
                    long id = part.idAt(s, base + ri);
                    if (id != queryIds[qi]) {
                      top.offer(qi, id, sims[u]);
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }

  private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

  /**
   * Dot products of rows {@code ra} and {@code rb} with the 4 queries from {@code qa}: {@code
   * out[0..3]} for row a, {@code out[4..7]} for row b. Vector API lanes when C is a multiple of
   * the lane count, scalar otherwise.
   */
  static void dots(float[] rows, int ra, int rb, float[] q, int qa, int c, float[] out) {
    int lanes = SPECIES.length();
    if (c % lanes == 0) {
      FloatVector a0 = FloatVector.zero(SPECIES);
      FloatVector a1 = a0;
      FloatVector a2 = a0;
      FloatVector a3 = a0;
      FloatVector b0 = a0;
      FloatVector b1 = a0;
      FloatVector b2 = a0;
      FloatVector b3 = a0;
      for (int d = 0; d < c; d += lanes) {
        FloatVector x = FloatVector.fromArray(SPECIES, rows, ra + d);
        FloatVector y = FloatVector.fromArray(SPECIES, rows, rb + d);
        FloatVector w0 = FloatVector.fromArray(SPECIES, q, qa + d);
        FloatVector w1 = FloatVector.fromArray(SPECIES, q, qa + c + d);
        FloatVector w2 = FloatVector.fromArray(SPECIES, q, qa + 2 * c + d);
        FloatVector w3 = FloatVector.fromArray(SPECIES, q, qa + 3 * c + d);
        a0 = x.fma(w0, a0);
        a1 = x.fma(w1, a1);
        a2 = x.fma(w2, a2);
        a3 = x.fma(w3, a3);
        b0 = y.fma(w0, b0);
        b1 = y.fma(w1, b1);
        b2 = y.fma(w2, b2);
        b3 = y.fma(w3, b3);
      }
      out[0] = a0.reduceLanes(VectorOperators.ADD);
      out[1] = a1.reduceLanes(VectorOperators.ADD);
      out[2] = a2.reduceLanes(VectorOperators.ADD);
      out[3] = a3.reduceLanes(VectorOperators.ADD);
      out[4] = b0.reduceLanes(VectorOperators.ADD);
      out[5] = b1.reduceLanes(VectorOperators.ADD);
      out[6] = b2.reduceLanes(VectorOperators.ADD);
      out[7] = b3.reduceLanes(VectorOperators.ADD);
      return;
    }
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    for (int d = 0; d < c; d++) {
      float x = rows[ra + d];
      float y = rows[rb + d];
      a0 += x * q[qa + d];
      a1 += x * q[qa + c + d];
      a2 += x * q[qa + 2 * c + d];
      a3 += x * q[qa + 3 * c + d];
      b0 += y * q[qa + d];
      b1 += y * q[qa + c + d];
      b2 += y * q[qa + 2 * c + d];
      b3 += y * q[qa + 3 * c + d];
    }
    out[0] = a0;
    out[1] = a1;
    out[2] = a2;
    out[3] = a3;
    out[4] = b0;
    out[5] = b1;
    out[6] = b2;
    out[7] = b3;
  }

  /** Per query, the K best (id, similarity) so far, best first; -1 ids are empty slots. */
  static final class Top {
    final long[][] ids;
    final float[][] sims;
    final float[] threshold;

    Top(int q, int k) {
      ids = new long[q][k];
      sims = new float[q][k];
      threshold = new float[q];
      for (int i = 0; i < q; i++) {
        Arrays.fill(ids[i], -1);
        Arrays.fill(sims[i], Float.NEGATIVE_INFINITY);
        threshold[i] = Float.NEGATIVE_INFINITY;
      }
    }

    void offer(int q, long id, float sim) {
      long[] is = ids[q];
      float[] ss = sims[q];
      int k = is.length;
      if (!(sim > ss[k - 1])) {
        return;
      }
      int p = k - 1;
      while (p > 0 && ss[p - 1] < sim) {
        is[p] = is[p - 1];
        ss[p] = ss[p - 1];
        p--;
      }
      is[p] = id;
      ss[p] = sim;
      threshold[q] = ss[k - 1];
    }
  }
}
