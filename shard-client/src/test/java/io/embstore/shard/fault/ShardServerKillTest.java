package io.embstore.shard.fault;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.TestMatrices;
import io.embstore.format.fault.ChildJvm;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.ShardException;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * kill -9 of a shard-server process under lookup load. Two servers run as separate JVMs ({@link
 * ShardServerMain}), A hosting shards 0 and 1, B shards 2 and 3 (modulo: id mod 4 is the shard).
 * Client threads look up in a loop through one {@link EmbeddingClient}: some only ids of B's
 * shards, some ids of every shard. A is killed with SIGKILL: lookups touching A's shards fail with a
 * {@link ShardException} naming the shard and A's endpoint, within the deadline; B-only lookups
 * keep succeeding with the right rows. A is restarted from the table on the same port: the same
 * client (not rebuilt) serves every shard again.
 */
class ShardServerKillTest {
  static final long ROWS = 20_000;
  static final int DIM = 16;
  static final Duration DEADLINE = Duration.ofSeconds(5);

  @TempDir Path tmp;
  BufferAllocator allocator;
  float[] matrix;
  Path dir;
  final List<ChildJvm> children = new ArrayList<>();

  @BeforeEach
  void setUp() throws IOException {
    allocator = new RootAllocator();
    dir = tmp.resolve("t");
    matrix = TestMatrices.random(ROWS, DIM, 5);
    TestMatrices.write(dir, matrix, ROWS, DIM, 4, "modulo", allocator);
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

  private String startServer(int port, String shards) throws Exception {
    ChildJvm c = ChildJvm.start(ShardServerMain.class, ChildJvm.defaultJvmArgs(), Files.createTempFile(tmp, "server", ".err"), dir.toString(), Integer.toString(port), shards);
    children.add(c);
    String line = c.awaitLine(l -> l.startsWith("ENDPOINT "), 120_000);
    assertThat(line).as("server (%s) did not start; stderr: %s", shards, c.stderrText()).isNotNull();
    return line.substring("ENDPOINT ".length());
  }

  @Test
  void killedServerFailsOnlyItsShardsNamingThemAndTheClientRecoversAfterARestart() throws Exception {
    String a = startServer(0, "0,1");
    String b = startServer(0, "2,3");
    ChildJvm processA = children.get(0);
    int portA = URI.create(a).getPort();
    try (EmbeddingClient client = EmbeddingClient.builder().table(dir).endpoints(List.of(a, b)).allocator(allocator).deadline(DEADLINE).build()) {
      AtomicBoolean stop = new AtomicBoolean();
      AtomicBoolean killed = new AtomicBoolean();
      AtomicLong bOnlyOkAfterKill = new AtomicLong();
      AtomicLong mixedFailedAfterKill = new AtomicLong();
      ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
      ConcurrentLinkedQueue<Long> failureMillis = new ConcurrentLinkedQueue<>();
      List<Thread> threads = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        boolean bOnly = t < 2;
        int seed = t;
        Thread th = new Thread(() -> {
          SplittableRandom r = new SplittableRandom(seed);
          long[] ids = new long[64];
          float[] out = new float[ids.length * DIM];
          while (!stop.get()) {
            for (int i = 0; i < ids.length; i++) {
              long id = r.nextLong(ROWS / 4) * 4;
              ids[i] = bOnly ? id + 2 + r.nextInt(2) : id + r.nextInt(4);
            }
            boolean afterKill = killed.get();
            long t0 = System.nanoTime();
            try {
              client.lookup(ids, out);
              if (!rowsMatch(ids, out)) {
                problems.add("wrong rows returned for " + Arrays.toString(Arrays.copyOf(ids, 4)));
              }
              if (bOnly && afterKill) {
                bOnlyOkAfterKill.incrementAndGet();
              }
            } catch (ShardException e) {
              long ms = (System.nanoTime() - t0) / 1_000_000;
              if (bOnly) {
                problems.add("lookup on B's shards failed: " + e.getMessage());
              } else if (!killed.get()) {
                problems.add("lookup failed before the kill: " + e.getMessage());
              } else {
                mixedFailedAfterKill.incrementAndGet();
                failureMillis.add(ms);
                if (!(e.shard() == 0 || e.shard() == 1) || !a.equals(e.endpoint())
                    || !e.getMessage().contains("shard " + e.shard()) || !e.getMessage().contains(a)) {
                  problems.add("failure does not name A's shard and endpoint: shard=" + e.shard() + " endpoint=" + e.endpoint() + " message=" + e.getMessage());
                }
              }
            } catch (IOException | RuntimeException e) {
              problems.add("not a ShardException: " + e);
            }
          }
        }, "lookup-" + t);
        th.start();
        threads.add(th);
      }
      Thread.sleep(2000);
      killed.set(true);
      processA.kill();
      long until = System.nanoTime() + 20_000_000_000L;
      while (System.nanoTime() < until && (mixedFailedAfterKill.get() < 5 || bOnlyOkAfterKill.get() < 50)) {
        Thread.sleep(100);
      }
      stop.set(true);
      for (Thread th : threads) {
        th.join(DEADLINE.toMillis() * 4);
        assertThat(th.isAlive()).as("%s stopped", th.getName()).isFalse();
      }
      System.out.printf("kill -9: %d B-only lookups succeeded after the kill, %d mixed lookups failed, failure latency ms %s%n",
          bOnlyOkAfterKill.get(), mixedFailedAfterKill.get(), failureMillis.stream().sorted().toList());
      assertThat(problems).isEmpty();
      assertThat(mixedFailedAfterKill.get()).as("lookups touching the killed server's shards failed").isPositive();
      assertThat(bOnlyOkAfterKill.get()).as("lookups on the live server's shards succeeded after the kill").isPositive();
      // Within the deadline (plus one retry the client makes on UNAVAILABLE, plus scheduling slack).
      assertThat(failureMillis).allSatisfy(ms -> assertThat(ms).isLessThan(2 * DEADLINE.toMillis() + 5000));

      // Restart A on the same port; the same client object must serve every shard again.
      startServer(portA, "0,1");
      long[] all = new long[400];
      for (int i = 0; i < all.length; i++) {
        all[i] = i * (ROWS / all.length);
      }
      float[] out = new float[all.length * DIM];
      IOException last = null;
      boolean recovered = false;
      for (int attempt = 0; attempt < 30 && !recovered; attempt++) {
        try {
          client.lookup(all, out);
          recovered = true;
        } catch (IOException e) {
          last = e;
          Thread.sleep(1000);
        }
      }
      assertThat(recovered).as("the same client recovers after A restarts on port %d; last error: %s", portA, last).isTrue();
      assertThat(rowsMatch(all, out)).isTrue();
    }
  }

  private boolean rowsMatch(long[] ids, float[] out) {
    for (int i = 0; i < ids.length; i++) {
      for (int c = 0; c < DIM; c++) {
        if (Float.floatToRawIntBits(out[i * DIM + c]) != Float.floatToRawIntBits(matrix[(int) ids[i] * DIM + c])) {
          return false;
        }
      }
    }
    return true;
  }
}
