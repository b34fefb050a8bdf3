package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.TableManifest;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A client built with {@code inProcess(servers)} reads and updates the shards of those servers in its
 * own JVM without Flight: the same rows and the same optimizer results as through Flight, counted by
 * the server; a server with tokens only with its write token (a client with another token, or
 * another table's server, is called through Flight); a
 * closing server fails the call (UNAVAILABLE, naming shard and endpoint) and frees nothing under it.
 */
class InProcessTest {
  static final int DIM = 6;
  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardFixture viaFlight;
  ShardFixture inProcess;

  @BeforeEach
  void open() throws IOException {
    allocator = new RootAllocator();
    // two copies of one table: one served to a Flight-only client, one to an in-process client
    viaFlight = new ShardFixture(tmp.resolve("a"), 500, DIM, 4, "modulo", allocator);
    inProcess = new ShardFixture(tmp.resolve("b"), 500, DIM, 4, "modulo", allocator);
    for (ShardFixture fx : List.of(viaFlight, inProcess)) {
      fx.start(ShardServer.builder().table(fx.dir).shards(0, 2).optimizer(Optimizer.rowwiseAdagrad(0.05, 1e-8)).snapshotDir(tmp).allocator(allocator));
      fx.start(ShardServer.builder().table(fx.dir).shards(1, 3).optimizer(Optimizer.rowwiseAdagrad(0.05, 1e-8)).snapshotDir(tmp).allocator(allocator));
    }
  }

  @AfterEach
  void close() {
    viaFlight.close();
    inProcess.close();
    allocator.close();
  }

  private EmbeddingClient client(ShardFixture fx, boolean local) throws IOException {
    return EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).inProcess(local ? fx.servers : List.of()).allocator(allocator).build();
  }

  private static long inProcessRequests(ShardFixture fx) {
    long n = 0;
    for (ShardServer s : fx.servers) {
      n += s.stats().inProcessRequests();
    }
    return n;
  }

  @Test
  void lookupsAndUpdatesGiveWhatTheyGiveThroughFlight() throws Exception {
    SplittableRandom r = new SplittableRandom(5);
    try (EmbeddingClient flight = client(viaFlight, false); EmbeddingClient local = client(inProcess, true)) {
      for (int round = 0; round < 20; round++) {
        long[] ids = new long[64];
        for (int i = 0; i < ids.length; i++) {
          ids[i] = i % 8 == 0 ? ids[0] : r.nextLong(500); // duplicates included
        }
        float[] grads = new float[ids.length * DIM];
        for (int i = 0; i < grads.length; i++) {
          grads[i] = (float) (r.nextDouble() - 0.5);
        }
        if (round % 4 == 0) {
          flight.update(ids, grads, 0.1f);
          local.update(ids, grads, 0.1f);
        } else if (round % 4 == 2) { // the servers' own learning rate
          flight.update(ids, grads);
          local.update(ids, grads);
        } else {
          CompletableFuture.allOf(flight.updateAsync(ids, grads, 0.1f), local.updateAsync(ids, grads, 0.1f)).join();
        }
        float[] a = new float[ids.length * DIM];
        float[] b = new float[ids.length * DIM];
        flight.lookup(ids, a);
        if (round % 2 == 0) {
          local.lookup(ids, b);
        } else {
          local.lookupAsync(ids, b).join();
        }
        assertThat(b).as("round %d", round).containsExactly(a);
      }
      long[] all = new long[500];
      for (int i = 0; i < all.length; i++) {
        all[i] = i;
      }
      float[] a = new float[500 * DIM];
      flight.lookup(all, a);
      try (ArrowBuf b = allocator.buffer(500L * DIM * 4)) {
        local.lookup(all, b, 0);
        for (int i = 0; i < a.length; i++) {
          assertThat(b.getFloat(4L * i)).isEqualTo(a[i]);
        }
      }
    }
    assertThat(inProcessRequests(viaFlight)).isZero();
    // 20 updates and 20 lookups on 4 shards, then one lookup: 164 shard parts at most, each one request
    assertThat(inProcessRequests(inProcess)).isGreaterThan(100).isLessThanOrEqualTo(164);
    for (int i = 0; i < 2; i++) {
      assertThat(inProcess.servers.get(i).stats().updateRows())
          .isEqualTo(viaFlight.servers.get(i).stats().updateRows());
    }
  }

  /** Searches and snapshots go the in-process way too, with the answers and files of the Flight way. */
  @Test
  void theClientCountsTheDistinctRowsItSentByPath() throws Exception {
    // modulo over 4 shards: the first server's shards 0 and 2 (even ids) in process, 1 and 3 through Flight
    long[] ids = {0, 1, 2, 3, 4, 5, 4, 7, 1}; // distinct: 0, 2, 4 in process; 1, 3, 5, 7 through Flight
    float[] rows = new float[ids.length * DIM];
    float[] grads = new float[ids.length * DIM];
    Arrays.fill(grads, 0.01f);
    try (EmbeddingClient mixed = EmbeddingClient.builder().table(inProcess.dir).endpoints(inProcess.endpoints())
            .inProcess(List.of(inProcess.servers.get(0))).allocator(allocator).build();
        EmbeddingClient flight = client(viaFlight, false)) {
      assertThat(mixed.inProcessShards()).containsExactly(0, 2);
      assertThat(mixed.rowCounts()).isEqualTo(new EmbeddingClient.RowCounts(0, 0, 0, 0));
      mixed.lookup(ids, rows);
      assertThat(mixed.rowCounts()).isEqualTo(new EmbeddingClient.RowCounts(3, 4, 0, 0));
      mixed.lookupAsync(ids, rows).join();
      mixed.update(ids, grads, 0.1f);
      mixed.updateAsync(new long[] {6, 9}, new float[2 * DIM], 0.1f).join();
      EmbeddingClient.RowCounts before = mixed.rowCounts();
      assertThat(before).isEqualTo(new EmbeddingClient.RowCounts(6, 8, 4, 5));
      assertThat(before.inProcess()).isEqualTo(10);
      assertThat(before.overFlight()).isEqualTo(13);
      // searches move no rows; a call refused before sending counts nothing
      mixed.nearest(Arrays.copyOf(new float[] {1}, DIM), 3);
      assertThatThrownBy(() -> mixed.lookup(new long[] {1, 500}, new float[2 * DIM])).isInstanceOf(IllegalArgumentException.class);
      assertThatThrownBy(() -> mixed.update(new long[] {2}, new float[] {1, 2, 3, 4, 5, Float.NaN}, 0.1f))
          .isInstanceOf(IllegalArgumentException.class);
      assertThat(mixed.rowCounts()).isEqualTo(before);
      assertThat(mixed.rowCounts().minus(new EmbeddingClient.RowCounts(1, 2, 3, 4)))
          .isEqualTo(new EmbeddingClient.RowCounts(5, 6, 1, 1));
      // what each server received: the in-process server's rows, the Flight server's rows
      Messages.Stats local = inProcess.servers.get(0).stats();
      Messages.Stats remote = inProcess.servers.get(1).stats();
      assertThat(new long[] {local.lookupRows(), remote.lookupRows(), local.updateRows(), remote.updateRows()})
          .containsExactly(6, 8, 4, 5);
      assertThat(remote.inProcessRequests()).isZero();

      flight.lookup(ids, rows);
      flight.update(ids, grads, 0.1f);
      assertThat(flight.rowCounts()).isEqualTo(new EmbeddingClient.RowCounts(0, 7, 0, 7));
      assertThat(inProcessRequests(viaFlight)).isZero();
    }
  }

  @Test
  void searchesAndSnapshotsGiveWhatTheyGiveThroughFlight() throws Exception {
    try (EmbeddingClient flight = client(viaFlight, false); EmbeddingClient local = client(inProcess, true)) {
      float[] query = new float[DIM];
      flight.lookup(new long[] {7}, query);
      assertThat(local.nearest(query, 5)).isEqualTo(flight.nearest(query, 5));
      assertThat(local.nearest(7L, 5)).isEqualTo(flight.nearest(7L, 5));
      long before = inProcessRequests(inProcess);
      assertThatThrownBy(() -> local.nearest(new float[DIM], 3)) // same check as the server's handler
          .isInstanceOf(ShardException.class).hasMessageContaining("INVALID_ARGUMENT: Cannot search: the query vector is zero");
      TableManifest a = TableSnapshot.write(flight, tmp.resolve("snap-a"));
      TableManifest b = TableSnapshot.write(local, tmp.resolve("snap-b"));
      assertThat(b.shards()).hasSize(4);
      for (int s = 0; s < 4; s++) {
        assertThat(b.shard(s).crc32c()).as("shard %d", s).isEqualTo(a.shard(s).crc32c());
      }
      assertThat(local.manifest().tableVersion()).isEqualTo(b.tableVersion());
      assertThat(inProcessRequests(inProcess)).isGreaterThan(before);
    }
  }

  /** A call larger than one batch (2 MiB of rows) goes in several, like on the wire. */
  @Test
  void aCallOfSeveralBatchesGivesWhatItGivesThroughFlight() throws Exception {
    int dim = 256;
    long rows = 6000; // 6 MB
    try (ShardFixture a = new ShardFixture(tmp.resolve("big-a"), rows, dim, 2, "range", allocator);
        ShardFixture b = new ShardFixture(tmp.resolve("big-b"), rows, dim, 2, "range", allocator)) {
      a.start(allocator, 0, 1);
      b.start(allocator, 0, 1);
      long[] ids = new long[(int) rows];
      for (int i = 0; i < ids.length; i++) {
        ids[i] = rows - 1 - i;
      }
      float[] grads = new float[ids.length * dim];
      for (int i = 0; i < grads.length; i++) {
        grads[i] = (i % 17) * 0.01f;
      }
      float[] viaFlight = new float[grads.length];
      float[] local = new float[grads.length];
      try (EmbeddingClient fa = client(a, false); EmbeddingClient lb = client(b, true)) {
        assertThat(lb.inProcessShards()).containsExactly(0, 1);
        assertThat(fa.inProcessShards()).isEmpty();
        lb.lookup(ids, local);
        for (int i = 0; i < ids.length; i++) {
          assertThat(java.util.Arrays.copyOfRange(local, i * dim, (i + 1) * dim)).containsExactly(b.row(ids[i]));
        }
        fa.update(ids, grads, 0.5f);
        lb.update(ids, grads, 0.5f);
        fa.lookup(ids, viaFlight);
        lb.lookup(ids, local);
      }
      for (int i = 0; i < local.length; i++) { // (AssertJ's containsExactly is quadratic on 1.5 M values)
        if (local[i] != viaFlight[i]) {
          throw new AssertionError("value " + i + " (id " + ids[i / dim] + ", col " + i % dim + "): in process " + local[i] + ", through Flight " + viaFlight[i]);
        }
      }
      // 3 calls x 2 shards x 2 batches (3,000 rows of 1 KB per shard, 2 MiB per batch)
      assertThat(inProcessRequests(b)).isEqualTo(3 * 2 * 2);
    }
  }

  @Test
  void onlyTheServersHandedToTheClientAreReachedInProcessTokensOrNot() throws Exception {
    Path dir = tmp.resolve("c");
    try (ShardFixture fx = new ShardFixture(dir, 100, DIM, 2, "modulo", allocator)) {
      fx.start(ShardServer.builder().table(dir).shards(0).readToken("r").writeToken("w").allocator(allocator));
      fx.start(ShardServer.builder().table(dir).shards(1).readToken("r").writeToken("w").allocator(allocator));
      // server 0 is handed over (its holder needs no token in process); server 1, in the same JVM, is not
      try (EmbeddingClient c = EmbeddingClient.builder().table(dir).endpoints(fx.endpoints()).token("w")
          .inProcess(List.of(fx.servers.get(0))).allocator(allocator).build()) {
        assertThat(c.inProcessShards()).containsExactly(0);
        float[] out = new float[2 * DIM];
        c.lookup(new long[] {42, 43}, out);
        assertThat(Arrays.copyOfRange(out, 0, DIM)).containsExactly(fx.row(42));
        assertThat(Arrays.copyOfRange(out, DIM, 2 * DIM)).containsExactly(fx.row(43));
        c.update(new long[] {42, 43}, new float[2 * DIM], 0.1f);
      }
      assertThat(fx.servers.get(0).stats().inProcessRequests()).isEqualTo(2);
      assertThat(fx.servers.get(1).stats().inProcessRequests()).isZero();
      assertThat(fx.servers.get(1).stats().updateRows()).isEqualTo(1);
    }
  }

  @Test
  void aClosedServerFailsTheCallNamingShardAndEndpoint() throws Exception {
    try (EmbeddingClient local = client(inProcess, true)) {
      ShardServer odd = inProcess.servers.get(1);
      String endpoint = odd.endpoint();
      odd.close();
      assertThatThrownBy(() -> local.lookup(new long[] {0, 1}, new float[2 * DIM]))
          .isInstanceOf(ShardException.class)
          .hasMessageContaining("shard 1 at " + endpoint + ": UNAVAILABLE")
          .satisfies(e -> assertThat(((ShardException) e).code()).isEqualTo(FlightStatusCode.UNAVAILABLE));
      assertThatThrownBy(() -> local.update(new long[] {3}, new float[DIM], 0.1f))
          .isInstanceOf(ShardException.class).hasMessageContaining("shard 3 at " + endpoint);
      assertThatThrownBy(() -> local.lookupAsync(new long[] {5}, new float[DIM]).join())
          .isInstanceOf(CompletionException.class).hasCauseInstanceOf(ShardException.class);
      // the other server's shards still answer
      float[] out = new float[DIM];
      local.lookup(new long[] {2}, out);
      assertThat(out).containsExactly(inProcess.row(2));
    }
  }

  /** Close while other threads look up and update in process: each call succeeds or fails cleanly, and no memory is used after it is freed. */
  @Test
  void closingUnderInProcessCallsFailsThemCleanly() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(4);
    CountDownLatch running = new CountDownLatch(4);
    AtomicBoolean closed = new AtomicBoolean();
    try (EmbeddingClient local = client(inProcess, true)) {
      List<Future<int[]>> done = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        int seed = t;
        done.add(pool.submit(() -> {
          SplittableRandom r = new SplittableRandom(seed);
          int successes = 0;
          int failures = 0;
          int callsAfterClose = 0;
          // calls go on until this thread has seen the server closed for 200 calls: the close
          // lands in the middle of the calls however fast the machine is
          for (int i = 0; callsAfterClose < 200; i++) {
            if (i == 100) {
              running.countDown();
            }
            boolean wasClosed = closed.get();
            long[] ids = {r.nextLong(500), r.nextLong(500)};
            try {
              if (i % 2 == 0) {
                local.lookup(ids, new float[2 * DIM]);
              } else {
                local.update(ids, new float[2 * DIM], 0.01f);
              }
              successes++;
            } catch (ShardException e) {
              assertThat(e.code()).isEqualTo(FlightStatusCode.UNAVAILABLE);
              failures++;
            }
            if (wasClosed) {
              callsAfterClose++;
            }
          }
          return new int[] {successes, failures};
        }));
      }
      assertThat(running.await(120, TimeUnit.SECONDS)).isTrue();
      inProcess.servers.get(0).close();
      closed.set(true);
      for (Future<int[]> f : done) {
        int[] counts = f.get(120, TimeUnit.SECONDS);
        // at least the first 100 calls before the close succeed; of the 200 after it, those that
        // touch an even id (server 0's shards 0 and 2) fail
        assertThat(counts[0]).isGreaterThanOrEqualTo(100);
        assertThat(counts[1]).isPositive();
      }
    } finally {
      pool.shutdownNow();
    }
  }
}
