package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import java.io.IOException;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Each optimizer against a dense double-precision reference of its formula, written here
 * independently of the server; then a snapshot, a restart from it, and more updates, which only
 * match the reference when the optimizer state was saved with the shards.
 */
class OptimizerTest {
  static final int V = 120;
  static final int C = 6;
  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardFixture fx;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    if (fx != null) {
      fx.close();
    }
    allocator.close();
  }

  /** The dense reference: every row and every state value as doubles. */
  static final class Reference {
    final String name;
    final double lr;
    final double eps = 1e-8;
    final double b1 = 0.9;
    final double b2 = 0.999;
    final double[][] w;
    final double[][] sum = new double[V][C];
    final double[] rowSum = new double[V];
    final double[][] m = new double[V][C];
    final double[][] v = new double[V][C];
    final int[] t = new int[V];
    final int[] shardUpdates = new int[4];

    Reference(String name, double lr, float[] matrix) {
      this.name = name;
      this.lr = lr;
      w = new double[V][C];
      for (int i = 0; i < V; i++) {
        for (int c = 0; c < C; c++) {
          w[i][c] = matrix[i * C + c];
        }
      }
    }

    void apply(long[] ids, float[] grads, double rate) {
      double[][] g = new double[V][];
      for (int i = 0; i < ids.length; i++) {
        int id = (int) ids[i];
        if (g[id] == null) {
          g[id] = new double[C];
        }
        for (int c = 0; c < C; c++) {
          g[id][c] += grads[i * C + c];
        }
      }
      boolean[] touched = new boolean[4];
      for (long id : ids) {
        touched[(int) (id % 4)] = true;
      }
      for (int s = 0; s < 4; s++) {
        shardUpdates[s] += touched[s] ? 1 : 0;
      }
      for (int id = 0; id < V; id++) {
        if (g[id] == null) {
          continue;
        }
        double[] x = g[id];
        switch (name) {
          case "sgd":
            for (int c = 0; c < C; c++) {
              w[id][c] -= rate * x[c];
            }
            break;
          case "adagrad":
            for (int c = 0; c < C; c++) {
              sum[id][c] += x[c] * x[c];
              w[id][c] -= rate * x[c] / (Math.sqrt(sum[id][c]) + eps);
            }
            break;
          case "rowwise-adagrad": {
            double mean = 0;
            for (int c = 0; c < C; c++) {
              mean += x[c] * x[c] / C;
            }
            rowSum[id] += mean;
            for (int c = 0; c < C; c++) {
              w[id][c] -= rate * x[c] / (Math.sqrt(rowSum[id]) + eps);
            }
            break;
          }
          case "adam":
            t[id]++;
            for (int c = 0; c < C; c++) {
              m[id][c] = b1 * m[id][c] + (1 - b1) * x[c];
              v[id][c] = b2 * v[id][c] + (1 - b2) * x[c] * x[c];
              double mh = m[id][c] / (1 - Math.pow(b1, t[id]));
              double vh = v[id][c] / (1 - Math.pow(b2, t[id]));
              w[id][c] -= rate * mh / (Math.sqrt(vh) + eps);
            }
            break;
          default:
            throw new AssertionError(name);
        }
      }
    }
  }

  static Optimizer spec(String name, double lr) {
    switch (name) {
      case "sgd":
        return Optimizer.sgd(lr);
      case "adagrad":
        return Optimizer.adagrad(lr, 1e-8);
      case "rowwise-adagrad":
        return Optimizer.rowwiseAdagrad(lr, 1e-8);
      default:
        return Optimizer.adam(lr, 0.9, 0.999, 1e-8);
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"sgd", "adagrad", "rowwise-adagrad", "adam"})
  void updatesMatchTheDenseReferenceAndStateSurvivesASnapshot(String name) throws IOException {
    double lr = 0.05;
    fx = new ShardFixture(tmp.resolve("t"), V, C, 4, "modulo", allocator);
    Optimizer spec = spec(name, lr);
    fx.start(ShardServer.builder().table(fx.dir).shards(0, 2).optimizer(spec).snapshotDir(tmp).allocator(allocator));
    fx.start(ShardServer.builder().table(fx.dir).shards(1, 3).optimizer(spec).snapshotDir(tmp).allocator(allocator));
    Reference ref = new Reference(name, lr, fx.matrix);
    SplittableRandom r = new SplittableRandom(11);
    TableManifest snap;
    try (EmbeddingClient client =
        EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      for (int step = 0; step < 20; step++) {
        applyRandomUpdate(client, ref, r, step);
      }
      assertMatches(client, ref);
      snap = TableSnapshot.write(client, tmp.resolve("snap"));
    }
    assertThat(snap.optimizer().name()).isEqualTo(name);
    assertThat(snap.stateColumns()).isEqualTo(spec.stateColumns(C));
    // step: the most update batches one shard applied (each call sends every touched shard one).
    assertThat(snap.optimizer().step()).isEqualTo(java.util.Arrays.stream(ref.shardUpdates).max().getAsInt());
    assertThat(Table.open(tmp.resolve("snap")).verify(allocator)).hasSize(5);
    fx.close();
    // Restart from the snapshot: the table's optimizer (and its state) is used without being named.
    fx.start(ShardServer.builder().table(tmp.resolve("snap")).shards(0, 1).allocator(allocator));
    fx.start(ShardServer.builder().table(tmp.resolve("snap")).shards(2, 3).allocator(allocator));
    try (EmbeddingClient client =
        EmbeddingClient.builder().table(tmp.resolve("snap")).endpoints(fx.endpoints()).allocator(allocator).build()) {
      for (int step = 20; step < 30; step++) {
        applyRandomUpdate(client, ref, r, step);
      }
      assertMatches(client, ref);
    }
  }

  private static void applyRandomUpdate(EmbeddingClient client, Reference ref, SplittableRandom r, int step)
      throws IOException {
    int n = 1 + r.nextInt(40);
    long[] ids = new long[n];
    float[] grads = new float[n * C];
    for (int i = 0; i < n; i++) {
      ids[i] = r.nextInt(10) < 3 ? r.nextInt(5) : r.nextInt(V); // some hot, repeated rows
      for (int c = 0; c < C; c++) {
        grads[i * C + c] = (float) (r.nextDouble() * 2 - 1);
      }
    }
    if (step % 3 == 0) {
      client.update(ids, grads); // the server's learning rate
      ref.apply(ids, grads, ref.lr);
    } else {
      float rate = (float) (ref.lr / (1 + step * 0.1));
      client.update(ids, grads, rate);
      ref.apply(ids, grads, rate);
    }
  }

  private static void assertMatches(EmbeddingClient client, Reference ref) throws IOException {
    long[] all = new long[V];
    for (int i = 0; i < V; i++) {
      all[i] = i;
    }
    float[] out = new float[V * C];
    client.lookup(all, out);
    for (int i = 0; i < V; i++) {
      for (int c = 0; c < C; c++) {
        assertThat((double) out[i * C + c]).as("%s row %d col %d", ref.name, i, c).isCloseTo(ref.w[i][c], within(2e-4));
      }
    }
  }
}
