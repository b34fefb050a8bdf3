package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The counted forms {@code lookupAsync(ids, n, out)} and {@code updateAsync(ids, n, grads, lr)} read
 * only the first {@code n} ids and {@code n x C} values of larger arrays (a trainer reuses its
 * buffers): the same rows and the same updates as the exact-length calls, over Flight and in
 * process; a count outside the arrays is refused before anything is sent, naming the count and the
 * limit, and the shards keep serving.
 */
class PrefixCallsTest {
  static final int DIM = 5;
  @org.junit.jupiter.api.io.TempDir Path tmp;
  BufferAllocator allocator;
  ShardFixture exact;
  ShardFixture counted;

  @BeforeEach
  void open() throws IOException {
    allocator = new RootAllocator();
    // two copies of one table: exact-length calls on one, counted calls on the other
    exact = new ShardFixture(tmp.resolve("a"), 300, DIM, 2, "modulo", allocator);
    counted = new ShardFixture(tmp.resolve("b"), 300, DIM, 2, "modulo", allocator);
    for (ShardFixture fx : List.of(exact, counted)) {
      fx.start(ShardServer.builder().table(fx.dir).shards(0, 1).optimizer(Optimizer.rowwiseAdagrad(0.05, 1e-8)).snapshotDir(tmp).allocator(allocator));
    }
  }

  @AfterEach
  void close() {
    exact.close();
    counted.close();
    allocator.close();
  }

  private EmbeddingClient client(ShardFixture fx, boolean inProcess) throws IOException {
    return EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).inProcess(inProcess ? fx.servers : List.of())
        .allocator(allocator).build();
  }

  @ParameterizedTest(name = "in process: {0}")
  @ValueSource(booleans = {false, true})
  void countedCallsReadOnlyTheirPrefix(boolean inProcess) throws Exception {
    SplittableRandom r = new SplittableRandom(11);
    try (EmbeddingClient a = client(exact, inProcess); EmbeddingClient b = client(counted, inProcess)) {
      for (int round = 0; round < 10; round++) {
        int n = 1 + r.nextInt(40);
        long[] ids = new long[n];
        for (int i = 0; i < n; i++) {
          ids[i] = r.nextInt(300); // duplicates too: they are summed
        }
        float[] grads = new float[n * DIM];
        for (int i = 0; i < grads.length; i++) {
          grads[i] = (float) r.nextGaussian();
        }
        // larger arrays whose tails hold values that must not be read: ids outside [0, V), NaN gradients
        long[] bigIds = Arrays.copyOf(ids, n + 7);
        Arrays.fill(bigIds, n, bigIds.length, Long.MAX_VALUE);
        float[] bigGrads = Arrays.copyOf(grads, (n + 7) * DIM);
        Arrays.fill(bigGrads, n * DIM, bigGrads.length, Float.NaN);

        a.updateAsync(ids, grads, 0.1f).get();
        b.updateAsync(bigIds, n, bigGrads, 0.1f).get();

        float[] want = new float[n * DIM];
        a.lookup(ids, want);
        float[] got = new float[(n + 7) * DIM];
        Arrays.fill(got, -7f);
        b.lookupAsync(bigIds, n, got).get();
        assertThat(Arrays.copyOf(got, n * DIM)).containsExactly(want);
        assertThat(Arrays.copyOfRange(got, n * DIM, got.length)).containsOnly(-7f); // the tail is not written
      }
      long[] all = new long[300];
      Arrays.setAll(all, i -> i);
      float[] rowsA = new float[300 * DIM];
      float[] rowsB = new float[300 * DIM];
      a.lookup(all, rowsA);
      b.lookup(all, rowsB);
      assertThat(rowsB).containsExactly(rowsA);
    }
  }

  @ParameterizedTest(name = "in process: {0}")
  @ValueSource(booleans = {false, true})
  void countsOutsideTheArraysAreRefusedAndNothingIsSent(boolean inProcess) throws Exception {
    try (EmbeddingClient c = client(counted, inProcess)) {
      long[] ids = {1, 2, 3};
      float[] before = new float[3 * DIM];
      c.lookup(ids, before);
      assertThat(failure(c.lookupAsync(ids, 4, new float[4 * DIM])))
          .hasMessage("Cannot look up 4 ids: the id array holds 3");
      assertThat(failure(c.lookupAsync(ids, -1, new float[0])))
          .hasMessage("Cannot look up -1 ids: the id array holds 3");
      assertThat(failure(c.lookupAsync(ids, 3, new float[3 * DIM - 1])))
          .hasMessage("Cannot look up 3 ids: the output holds 14 floats, need 15 (C=5)");
      assertThat(failure(c.updateAsync(ids, 4, new float[4 * DIM], 0.1f)))
          .hasMessage("Cannot update 4 ids: the id array holds 3");
      assertThat(failure(c.updateAsync(ids, 2, new float[2 * DIM - 1], 0.1f)))
          .hasMessage("Cannot update 2 ids: 9 gradient values, need 10 (C=5)");
      float[] nan = new float[3 * DIM];
      nan[DIM + 2] = Float.NaN;
      assertThat(failure(c.updateAsync(ids, 2, nan, 0.1f)))
          .hasMessageContaining("Cannot update id 2: gradient value 2 is NaN");
      float[] after = new float[3 * DIM];
      c.lookup(ids, after); // still serving, and nothing was applied
      assertThat(after).containsExactly(before);
    }
  }

  private static Throwable failure(CompletableFuture<Void> f) {
    assertThatThrownBy(f::get).isInstanceOf(ExecutionException.class);
    try {
      f.get();
      throw new AssertionError("not failed");
    } catch (ExecutionException e) {
      return e.getCause();
    } catch (InterruptedException e) {
      throw new AssertionError(e);
    }
  }
}
