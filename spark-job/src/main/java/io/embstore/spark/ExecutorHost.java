package io.embstore.spark;

import io.embstore.format.TableManifest;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.ShardServer;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.IntStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one per-JVM holder of the executor-side state of the hostings running in this JVM (an
 * executor's, or the driver's in local mode), by hosting key. It is the only static state of the
 * job's executor side; everything else a task needs it reaches through here, by the key its opener
 * carries.
 *
 * <p>Life cycle, in one place:
 *
 * <ul>
 *   <li>The <b>allocator</b> of the hosted shards ({@link #allocator}) is created on first use and
 *       kept for the JVM's life: a JVM-wide service has no {@code main} to close it in; every
 *       server and client of every run allocates below it, so benchmarks read the hosted bytes with
 *       {@link #memory}.
 *   <li>A hosting key's <b>entry</b> is created by the first of: a hosting task registering a shard
 *       server ({@link #addServer}: {@code ShardHosting}, {@code TableHosting}), the driver
 *       registering heap matrices ({@link #addStores}: {@code MemoryHosting}), a task asking for a
 *       routing client ({@link #client}) or for the run's tables derived from the unigram
 *       statistics ({@link #tables}: built once per JVM and hosting, not per task).
 *   <li>It ends with {@link #release}: when the driver closes the hosting (normal end, failure,
 *       before a recovery re-hosts, {@code TableHosting.close}), one task per hosting executor and
 *       the driver itself release the key; the loss hook of the tests ({@code InjectedFaults})
 *       releases its own JVM's. Release stops the servers, then closes the clients, then drops the
 *       heap matrices and derived tables. Keys are random per hosting, so jobs that follow each
 *       other in one JVM (local mode, or an application that trains twice) never see each other's
 *       entries, and a recovery's new hosting builds its own.
 * </ul>
 *
 * <p>An executor that ran training tasks but hosts no shard (one that registered after the
 * hosting job, or more executors than shards) gets no release task: its entry (clients, derived
 * tables) lasts until its JVM ends with the application.
 */
final class ExecutorHost {
  /** The hosting's log: one logger for what the servers and clients of a hosting do. */
  private static final Logger LOG = LoggerFactory.getLogger(ShardHosting.class);
  private static final Map<String, Entry> ENTRIES = new HashMap<>();
  private static BufferAllocator root;

  private ExecutorHost() {}

  /** What this JVM holds for one hosting key. */
  private static final class Entry {
    final List<ShardServer> servers = new ArrayList<>();
    /** The server of each matrix ({@code in}, {@code out}, {@code rows}) in this JVM. */
    final Map<String, ShardServer> local = new HashMap<>();
    final Map<String, EmbeddingClient> clients = new HashMap<>();
    /** The clients' row counts already added to a run's figures by a task ({@link #unreportedRows}). */
    final Map<String, EmbeddingClient.RowCounts> reported = new HashMap<>();
    /** {@code MemoryHosting}'s two matrices (driver only). */
    InMemoryRowStore[] stores;
    /** Guards the one build of {@link #tables}, apart from the host's lock (it reads files). */
    final Object tablesLock = new Object();
    volatile TrainTask.Tables tables;
  }

  /** Builds a run's derived tables (the first task of a hosting in this JVM calls it). */
  interface TablesLoader {
    TrainTask.Tables load() throws IOException;
  }

  private static Entry entry(String key) {
    return ENTRIES.computeIfAbsent(key, k -> new Entry());
  }

  static synchronized BufferAllocator allocator() {
    if (root == null) {
      root = new RootAllocator();
    }
    return root;
  }

  /**
   * Allocated and peak bytes of every allocator under this JVM's hosting root (the servers'
   * shards, their Flight buffers, the routing clients), for benchmarks that check memory per
   * shard. Keys are paths of allocator names from the root, each below the root suffixed with
   * {@code #} and the allocator's identity hash ({@code "/ROOT/shard-server#1b2c3d/shard-1#4e5f"}),
   * which tells siblings of one name apart and stays the same while the allocator lives; values
   * {@code {allocated, peak}}. Just the root before the first run.
   */
  static synchronized Map<String, long[]> memory() {
    Map<String, long[]> out = new java.util.TreeMap<>();
    if (root != null) {
      walk(root, "/" + root.getName(), out);
    }
    return out;
  }

  private static void walk(BufferAllocator a, String path, Map<String, long[]> out) {
    out.put(path, new long[] {a.getAllocatedMemory(), a.getPeakMemoryAllocation()});
    for (BufferAllocator c : a.getChildAllocators()) {
      walk(c, path + "/" + c.getName() + "#" + Integer.toHexString(System.identityHashCode(c)), out);
    }
  }

  /** The hosting keys this JVM holds state for (servers, clients, matrices or derived tables). */
  static synchronized Set<String> keys() {
    return new TreeSet<>(ENTRIES.keySet());
  }

  static synchronized void addServer(String key, String matrix, ShardServer server) {
    Entry e = entry(key);
    e.servers.add(server);
    e.local.put(matrix, server);
  }

  /** Registers the heap matrices of a {@code MemoryHosting} (input, context). */
  static synchronized void addStores(String key, InMemoryRowStore input, InMemoryRowStore output) {
    entry(key).stores = new InMemoryRowStore[] {input, output};
  }

  /** The heap matrix {@code which} (0 input, 1 context) of a {@code MemoryHosting} in this JVM. */
  static synchronized InMemoryRowStore store(String key, int which) {
    Entry e = ENTRIES.get(key);
    if (e == null || e.stores == null) {
      throw new IllegalStateException(
          "Cannot open the in-memory matrices of run " + key + ": not in this JVM (memory hosting works in local mode only)");
    }
    return e.stores[which];
  }

  /**
   * In a task: this JVM's routing client of matrix {@code matrix} of hosting {@code key}, created
   * on first use; with {@code localShards} it reaches the shards of this JVM's own server of that
   * matrix in process.
   */
  static synchronized EmbeddingClient client(String key, String matrix, TableManifest m, List<String> endpoints,
      boolean localShards, String secret) throws IOException {
    Entry e = entry(key);
    EmbeddingClient c = e.clients.get(matrix);
    if (c == null) {
      ShardServer own = e.local.get(matrix);
      c = EmbeddingClient.builder().manifest(m).endpoints(endpoints)
          .inProcess(localShards && own != null ? List.of(own) : List.of()).allocator(allocator())
          .token(secret).deadline(Duration.ofMinutes(5)).build();
      e.clients.put(matrix, c);
      int[] local = c.inProcessShards();
      int[] remote = IntStream.range(0, m.numShards()).filter(s -> Arrays.binarySearch(local, s) < 0).toArray();
      LOG.info("routing client {}/{}: in process shards {}; through Arrow Flight shards {}", key, matrix, Arrays.toString(local),
          Arrays.toString(remote));
    }
    return c;
  }

  /**
   * The rows this JVM's routing clients of hosting {@code key} have sent since the last call (every
   * matrix summed; zero when it has none), for a task to add to the run's figures as it ends. The
   * clients are shared by the tasks of this JVM, so a task reports what every task of the JVM sent
   * since the previous report: each row is reported once, and all of them once the last task of
   * the JVM has ended.
   */
  static synchronized EmbeddingClient.RowCounts unreportedRows(String key) {
    Entry e = ENTRIES.get(key);
    EmbeddingClient.RowCounts sum = new EmbeddingClient.RowCounts(0, 0, 0, 0);
    if (e == null) {
      return sum;
    }
    for (Map.Entry<String, EmbeddingClient> c : e.clients.entrySet()) {
      EmbeddingClient.RowCounts now = c.getValue().rowCounts();
      EmbeddingClient.RowCounts before = e.reported.put(c.getKey(), now);
      EmbeddingClient.RowCounts delta = before == null ? now : now.minus(before);
      sum = new EmbeddingClient.RowCounts(sum.lookedUpInProcess() + delta.lookedUpInProcess(),
          sum.lookedUpOverFlight() + delta.lookedUpOverFlight(), sum.updatedInProcess() + delta.updatedInProcess(),
          sum.updatedOverFlight() + delta.updatedOverFlight());
    }
    return sum;
  }

  /**
   * The derived tables of hosting {@code key} in this JVM: loaded by the first task that asks,
   * then shared by every task of the hosting until it is released. The load runs outside the
   * host's lock, so that tasks of other hostings (and the clients) do not wait for it.
   */
  static TrainTask.Tables tables(String key, TablesLoader loader) throws IOException {
    Entry e;
    synchronized (ExecutorHost.class) {
      e = entry(key);
    }
    TrainTask.Tables t = e.tables;
    if (t == null) {
      synchronized (e.tablesLock) {
        t = e.tables;
        if (t == null) {
          t = loader.load();
          e.tables = t;
        }
      }
    }
    return t;
  }

  /** Ends the entry of {@code key} in this JVM (see the class javadoc); a no-op for an unknown key. */
  static void release(String key) {
    List<AutoCloseable> close = new ArrayList<>();
    synchronized (ExecutorHost.class) {
      Entry e = ENTRIES.remove(key);
      if (e == null) {
        return;
      }
      // Servers first: a task whose call fails on a stopped server finds the server gone when the
      // driver checks (--lose-shards-at-task). Closing the clients first let the other task fail
      // on "the client is closed" while every server still answered the driver's health check,
      // which then saw no lost server and failed the job instead of recovering.
      close.addAll(e.servers);
      close.addAll(e.clients.values());
    }
    for (AutoCloseable c : close) {
      try {
        c.close();
      } catch (Exception ex) {
        LOG.warn("Cannot close {} of run {}: {}", c, key, ex.toString());
      }
    }
  }
}
