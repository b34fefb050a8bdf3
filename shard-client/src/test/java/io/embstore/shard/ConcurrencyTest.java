package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConcurrencyTest {
  static final long V = 2000;
  static final int C = 16;
  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardFixture fx;

  @BeforeEach
  void open() throws Exception {
    allocator = new RootAllocator();
    fx = new ShardFixture(tmp.resolve("t"), V, C, 4, "modulo", allocator);
  }

  @AfterEach
  void close() {
    fx.close();
    allocator.close();
  }

  /**
   * Threads look up and update overlapping hot rows (ids below 200) while another snapshots; rows
   * never updated stay bit-identical, every snapshot verifies, and the final table equals the
   * servers' rows.
   */
  @Test
  void concurrentLookupsUpdatesAndSnapshotsKeepUntouchedRowsAndWriteValidTables() throws Exception {
    Optimizer spec = Optimizer.rowwiseAdagrad(0.01, 1e-8);
    fx.start(ShardServer.builder().table(fx.dir).shards(0, 2).optimizer(spec).snapshotDir(tmp).allocator(allocator));
    fx.start(ShardServer.builder().table(fx.dir).shards(1, 3).optimizer(spec).snapshotDir(tmp).allocator(allocator));
    try (EmbeddingClient client =
        EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      AtomicBoolean stop = new AtomicBoolean();
      List<CompletableFuture<Void>> workers = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        int seed = t;
        boolean updater = t % 2 == 0;
        workers.add(CompletableFuture.runAsync(() -> {
          SplittableRandom r = new SplittableRandom(seed);
          long[] ids = new long[64];
          float[] buf = new float[64 * C];
          try {
            for (int round = 0; round < 40 && !stop.get(); round++) {
              for (int i = 0; i < ids.length; i++) {
                ids[i] = r.nextInt(200);
              }
              if (updater) {
                for (int i = 0; i < buf.length; i++) {
                  buf[i] = (float) (r.nextDouble() - 0.5);
                }
                client.update(ids, buf, 0.01f);
              } else {
                client.lookup(ids, buf);
                for (float x : buf) {
                  assertThat(Float.isFinite(x)).isTrue();
                }
              }
            }
          } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
        }));
      }
      List<TableManifest> snaps = new ArrayList<>();
      for (int i = 0; i < 2; i++) {
        snaps.add(TableSnapshot.write(client, tmp.resolve("snap")));
      }
      CompletableFuture.allOf(workers.toArray(new CompletableFuture[0])).join();
      assertThat(snaps.get(1).tableVersion()).isEqualTo(snaps.get(0).tableVersion() + 1);
      assertThat(Table.open(tmp.resolve("snap")).verify(allocator)).hasSize(5);

      long[] all = new long[(int) V];
      for (int i = 0; i < V; i++) {
        all[i] = i;
      }
      float[] now = new float[(int) V * C];
      client.lookup(all, now);
      for (int i = 200 * C; i < now.length; i++) {
        assertThat(Float.floatToRawIntBits(now[i])).isEqualTo(Float.floatToRawIntBits(fx.matrix[i]));
      }
      // A final snapshot with no writers running equals the served rows exactly.
      TableManifest last = TableSnapshot.write(client, tmp.resolve("snap"));
      assertThat(last.tableVersion()).isEqualTo(4); // the table is version 1; snapshots 2, 3, 4
      float[] onDisk = new float[(int) V * C];
      Table.open(tmp.resolve("snap")).forEachRowInIdOrder(allocator, true, (first, n, b, off) -> {
        for (int i = 0; i < n * C; i++) {
          onDisk[(int) (first * C) + i] = b.getFloat(off + 4L * i);
        }
      });
      assertThat(onDisk).isEqualTo(now);
    }
  }

  /** A server that describes itself like a real one but never answers exchanges: a slow shard. */
  @Test
  void aSlowShardFailsAtTheDeadlineNamingShardAndEndpoint() throws Exception {
    ShardServer real = fx.start(allocator, 0, 1, 2, 3);
    try (SlowShardServer slow = new SlowShardServer(real, allocator)) {
      String endpoint = slow.endpoint();
      try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(List.of(endpoint))
          .deadline(Duration.ofMillis(300)).allocator(allocator).build()) {
        assertThatThrownBy(() -> client.lookup(new long[] {2}, new float[C]))
            .isInstanceOf(ShardException.class)
            .hasMessageStartingWith("Cannot look up 1 ids on shard 2 at " + endpoint + ": TIMED_OUT")
            .satisfies(e -> assertThat(((ShardException) e).code()).isEqualTo(FlightStatusCode.TIMED_OUT));
      }
    }
  }
}
