package io.embstore.shard.fault;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Partitioner;
import io.embstore.format.TableManifest;
import io.embstore.format.TestMatrices;
import io.embstore.format.fault.ChildJvm;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.Optimizer;
import io.embstore.shard.ReferenceRows;
import io.embstore.shard.ShardException;
import io.embstore.shard.TableSnapshot;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * kill -9 of an {@code embstore serve --wal} process ({@link ServeMain}, a JVM of its own) while
 * 4 writers send update batches through one {@link EmbeddingClient}, {@value #DEFAULT_KILLS} times
 * at random moments (system property {@code embstore.walKills}); every other round a snapshot runs
 * at the same time, so a kill may also cut a snapshot, or come after one was committed (the next
 * start then replays the log on top of it). After each restart with the same {@code --wal} the
 * server's rows and Adam state (read from a snapshot) equal, bit for bit, a reference computed from
 * the acknowledged batches; each unacknowledged batch is, on each shard, either absent or applied
 * exactly once. Each writer owns its ids (id / 2 mod 4), so that the order of each row's updates is
 * its writer's order.
 */
@Timeout(900)
class WalKillTest {
  static final int DEFAULT_KILLS = 20;
  static final long ROWS = 4_000;
  static final int DIM = 16;
  static final int WRITERS = 4;
  static final Optimizer ADAM = Optimizer.adam(0.01, 0.9, 0.999, 1e-8);

  @TempDir Path tmp;
  BufferAllocator allocator;
  Path table;
  Path wal;
  float[] matrix;
  final List<ChildJvm> children = new ArrayList<>();

  record Batch(long[] ids, float[] grads, float lr) {}

  /** One writer's batches since the last check: acknowledged ones in order, then at most one that failed. */
  static final class Writer {
    final List<Batch> acked = new ArrayList<>();
    Batch unacked;
  }

  @BeforeEach
  void setUp() throws IOException {
    allocator = new RootAllocator();
    table = tmp.resolve("t");
    wal = tmp.resolve("wal");
    matrix = TestMatrices.random(ROWS, DIM, 11);
    TestMatrices.write(table, matrix, ROWS, DIM, 2, "modulo", allocator);
  }

  @AfterEach
  void tearDown() throws Exception {
    try {
      for (ChildJvm c : children) {
        c.close();
      }
    } finally {
      allocator.close();
    }
  }

  private ChildJvm serve() throws Exception {
    ChildJvm c = ChildJvm.start(ServeMain.class, ChildJvm.defaultJvmArgs(), Files.createTempFile(tmp, "serve", ".err"),
        "--table", table.toString(), "--wal", wal.toString(), "--optimizer", "adam", "--lr", "0.01", "--port", "0");
    children.add(c);
    return c;
  }

  private static String endpoint(ChildJvm c) throws InterruptedException {
    String line = c.awaitLine(l -> l.startsWith("embstore serve: serving"), 120_000);
    assertThat(line).as("serve did not start; stderr: %s", c.stderrText()).isNotNull();
    return line.substring(line.lastIndexOf(" at ") + 4).trim();
  }

  static Batch batch(SplittableRandom r, int writer) {
    Set<Long> ids = new LinkedHashSet<>();
    while (ids.size() < 24) {
      long k = r.nextLong(ROWS / 8);
      ids.add(k * 8 + writer * 2 + r.nextInt(2)); // id / 2 mod 4 == writer; both shards
    }
    float[] g = new float[ids.size() * DIM];
    for (int i = 0; i < g.length; i++) {
      g[i] = (float) (r.nextDouble() * 2 - 1);
    }
    float[] rates = {0.01f, 0.02f, 0.005f};
    return new Batch(ids.stream().mapToLong(Long::longValue).toArray(), g, rates[r.nextInt(rates.length)]);
  }

  /** The part of {@code b} on {@code shard}: its ids and their gradient rows. */
  static Batch part(Batch b, Partitioner p, int shard) {
    List<Integer> rows = new ArrayList<>();
    for (int i = 0; i < b.ids().length; i++) {
      if (p.shardOf(b.ids()[i]) == shard) {
        rows.add(i);
      }
    }
    long[] ids = new long[rows.size()];
    float[] g = new float[rows.size() * DIM];
    for (int j = 0; j < rows.size(); j++) {
      ids[j] = b.ids()[rows.get(j)];
      System.arraycopy(b.grads(), rows.get(j) * DIM, g, j * DIM, DIM);
    }
    return new Batch(ids, g, b.lr());
  }

  @Test
  void acknowledgedUpdatesSurviveKillsExactlyOnceAndUnacknowledgedOnesAtMostOnce() throws Exception {
    int kills = Integer.getInteger("embstore.walKills", DEFAULT_KILLS);
    Writer[] writers = new Writer[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
      writers[w] = new Writer();
    }
    SplittableRandom timing = new SplittableRandom(42);
    long acked = 0;
    int unackedApplied = 0;
    int unackedAbsent = 0;
    int snapshotsCut = 0;
    int snapshotsCommitted = 0;
    List<Long> replayedFrom = new ArrayList<>();
    ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
    try (ReferenceRows ref = new ReferenceRows(allocator, matrix, ROWS, DIM, ADAM)) {
      for (int round = 0; round <= kills; round++) {
        long startVersion = TableManifest.read(table).tableVersion();
        ChildJvm server = serve();
        String endpoint = endpoint(server);
        try (EmbeddingClient client = EmbeddingClient.builder().table(table).endpoints(List.of(endpoint)).allocator(allocator)
            .deadline(Duration.ofSeconds(20)).build()) {
          // --- check: what the restarted server holds is the acknowledged batches, each once
          replayedFrom.add(startVersion);
          TableSnapshot.write(client, table);
          try (ReferenceRows.Snapshot snap = new ReferenceRows.Snapshot(table, allocator)) {
            Partitioner p = TableManifest.read(table).partitioner();
            for (Writer w : writers) {
              for (Batch b : w.acked) {
                ref.apply(b.ids(), b.grads(), ReferenceRows.wireRate(b.lr()));
              }
              acked += w.acked.size();
              w.acked.clear();
              if (w.unacked != null) {
                for (int s = 0; s < 2; s++) {
                  Batch part = part(w.unacked, p, s);
                  if (ref.matches(snap, part.ids())) {
                    unackedAbsent++;
                  } else {
                    ref.apply(part.ids(), part.grads(), ReferenceRows.wireRate(part.lr()));
                    assertThat(ref.matches(snap, part.ids()))
                        .as("round %d: an unacknowledged batch on shard %d is neither absent nor applied once", round, s).isTrue();
                    unackedApplied++;
                  }
                }
                w.unacked = null;
              }
            }
            assertThat(ref.diff(snap)).as("round %d: ids whose row or Adam state differs from the acknowledged batches", round).isEmpty();
          }
          if (round == kills) {
            break;
          }
          // --- run: 4 writers (and every other round a snapshot), killed at a random moment
          List<Thread> threads = new ArrayList<>();
          for (int w = 0; w < WRITERS; w++) {
            Writer mine = writers[w];
            int lane = w;
            SplittableRandom r = new SplittableRandom(1000L * round + w);
            Thread t = new Thread(() -> {
              while (true) { // until the kill makes a call fail
                Batch b = batch(r, lane);
                try {
                  client.update(b.ids(), b.grads(), b.lr());
                  mine.acked.add(b);
                } catch (ShardException e) {
                  mine.unacked = b;
                  return;
                } catch (IOException | RuntimeException e) {
                  problems.add("writer " + lane + ": not a ShardException: " + e);
                  mine.unacked = b;
                  return;
                }
              }
            }, "writer-" + w);
            t.start();
            threads.add(t);
          }
          boolean[] snapshotDone = new boolean[1];
          Thread snapshot = null;
          if (round % 2 == 1) {
            long delay = 50 + timing.nextLong(400);
            snapshot = new Thread(() -> {
              try {
                Thread.sleep(delay);
                TableSnapshot.write(client, table);
                snapshotDone[0] = true;
              } catch (IOException | InterruptedException | RuntimeException e) {
                // cut by the kill: the next start loads the version before it
              }
            }, "snapshot");
            snapshot.start();
          }
          Thread.sleep(150 + timing.nextLong(900));
          server.kill();
          for (Thread t : threads) {
            t.join(60_000);
            assertThat(t.isAlive()).as("%s stopped after the kill", t.getName()).isFalse();
          }
          if (snapshot != null) {
            snapshot.join(60_000);
            if (snapshotDone[0]) {
              snapshotsCommitted++;
            } else {
              snapshotsCut++;
            }
          }
        }
      }
    }
    System.out.printf("wal kills: %d kills, %d acknowledged batches of 24 rows, unacknowledged shard parts: %d applied once, %d absent;"
        + " concurrent snapshots: %d committed before the kill, %d cut by it; restarts loaded table versions %s%n",
        kills, acked, unackedApplied, unackedAbsent, snapshotsCommitted, snapshotsCut, replayedFrom);
    assertThat(problems).isEmpty();
    assertThat(acked).isGreaterThan(kills);
  }
}
