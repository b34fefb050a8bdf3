package io.embstore.shard.fault;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.TestMatrices;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.Optimizer;
import io.embstore.shard.ReferenceRows;
import io.embstore.shard.ShardException;
import io.embstore.shard.ShardServer;
import io.embstore.shard.TableSnapshot;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The disk of a write-ahead log fills up while updates are logged (a small tmpfs mounted for the
 * test; needs root and {@code mount}, skipped with the reason otherwise): the update that does not
 * fit is refused with RESOURCE_EXHAUSTED naming the log and the cause, nothing of it is applied,
 * lookups go on; once there is room again updates are accepted, and a restart replays exactly the
 * accepted ones (the part of the refused record that was written is gone).
 */
class WalDiskFullTest {
  static final long ROWS = 1_000;
  static final int DIM = 32;

  @TempDir Path tmp;
  Path mnt;
  BufferAllocator allocator;
  ShardServer server;

  @BeforeEach
  void setUp() throws IOException {
    allocator = new RootAllocator();
    mnt = Files.createDirectories(tmp.resolve("mnt"));
    Assumptions.assumeTrue("root".equals(System.getProperty("user.name")),
        "needs root to mount a tmpfs (user is " + System.getProperty("user.name") + ")");
    String out = run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt.toString());
    Assumptions.assumeTrue(out == null, "cannot mount a tmpfs: " + out);
  }

  @AfterEach
  void tearDown() throws Exception {
    try {
      if (server != null) {
        server.close();
      }
      String out = run("umount", mnt.toString());
      if (out != null) {
        run("umount", "-l", mnt.toString());
        throw new IllegalStateException("Cannot unmount " + mnt + " (a file left open?): " + out);
      }
    } finally {
      allocator.close();
    }
  }

  /** Runs a command; null when it exited 0, else its output. */
  private static String run(String... cmd) throws IOException {
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes());
      if (!p.waitFor(60, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        return "timed out";
      }
      return p.exitValue() == 0 ? null : out.strip() + " (exit " + p.exitValue() + ")";
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "interrupted";
    }
  }

  private static long[] ids(SplittableRandom r) {
    return r.longs(0, ROWS).distinct().limit(64).toArray();
  }

  private static float[] grads(SplittableRandom r, int n) {
    float[] g = new float[n * DIM];
    for (int i = 0; i < g.length; i++) {
      g[i] = (float) (r.nextDouble() - 0.5);
    }
    return g;
  }

  @Test
  void aFullLogDiskRefusesUpdatesClearlyKeepsLookupsAndLosesNothingAccepted() throws Exception {
    Path table = tmp.resolve("t");
    float[] matrix = TestMatrices.random(ROWS, DIM, 4);
    TestMatrices.write(table, matrix, ROWS, DIM, 1, "modulo", allocator);
    Optimizer adagrad = Optimizer.adagrad(0.1, 1e-8);
    Path wal = mnt.resolve("wal");
    server = ShardServer.builder().table(table).optimizer(adagrad).wal(wal).allocator(allocator).start();
    SplittableRandom r = new SplittableRandom(3);
    try (ReferenceRows ref = new ReferenceRows(allocator, matrix, ROWS, DIM, adagrad);
        EmbeddingClient client = EmbeddingClient.builder().table(table).endpoints(List.of(server.endpoint())).allocator(allocator).build()) {
      for (int i = 0; i < 5; i++) {
        long[] ids = ids(r);
        float[] g = grads(r, ids.length);
        client.update(ids, g, 0.1f);
        ref.apply(ids, g, ReferenceRows.wireRate(0.1f));
      }
      // fill the tmpfs: what is left is less than one record of 64 rows (about 8 KB)
      Path filler = mnt.resolve("filler");
      try (FileChannel ch = FileChannel.open(filler, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        ByteBuffer chunk = ByteBuffer.allocate(512);
        while (true) {
          chunk.clear();
          try {
            ch.write(chunk);
          } catch (IOException full) {
            break;
          }
        }
      }
      long[] all = java.util.stream.LongStream.range(0, ROWS).toArray();
      float[] before = new float[all.length * DIM];
      client.lookup(all, before);
      long[] ids = ids(r);
      float[] g = grads(r, ids.length);
      for (int attempt = 0; attempt < 2; attempt++) {
        assertThatThrownBy(() -> client.update(ids, g, 0.1f))
            .isInstanceOf(ShardException.class)
            .hasMessageContaining("RESOURCE_EXHAUSTED: Cannot update shard 0: cannot append to write-ahead log " + wal.resolve("shard-00000")
                + " (No space left on device); nothing was applied (updates are refused until the log's disk has room; lookups go on)")
            .satisfies(e -> assertThat(((ShardException) e).code()).isEqualTo(FlightStatusCode.RESOURCE_EXHAUSTED));
      }
      float[] after = new float[all.length * DIM];
      client.lookup(all, after);
      assertThat(after).as("lookups go on, and the refused update changed nothing").isEqualTo(before);

      Files.delete(filler);
      client.update(ids, g, 0.1f);
      ref.apply(ids, g, ReferenceRows.wireRate(0.1f));
    }
    server.close();
    server = ShardServer.builder().table(table).optimizer(adagrad).wal(wal).allocator(allocator).start();
    try (ReferenceRows ref = new ReferenceRows(allocator, matrix, ROWS, DIM, adagrad);
        EmbeddingClient client = EmbeddingClient.builder().table(table).endpoints(List.of(server.endpoint())).allocator(allocator).build()) {
      SplittableRandom again = new SplittableRandom(3);
      for (int i = 0; i < 6; i++) {
        long[] ids = ids(again);
        float[] g = grads(again, ids.length);
        ref.apply(ids, g, ReferenceRows.wireRate(0.1f));
      }
      Path snap = Files.createDirectories(table.resolve("after-restart"));
      TableSnapshot.write(client, snap);
      try (ReferenceRows.Snapshot s = new ReferenceRows.Snapshot(snap, allocator)) {
        assertThat(ref.diff(s)).as("rows and state after the restart: the 6 accepted updates, once each").isEmpty();
      }
    }
  }
}
