package io.embstore.spark;

import io.embstore.format.Partitioner;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TableStorage;
import io.embstore.format.TableWriter;
import io.embstore.format.Vocabulary;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.Optimizer;
import io.embstore.shard.ShardHealth;
import io.embstore.shard.ShardServer;
import io.embstore.shard.TableSnapshot;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.UUID;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.SparkEnv;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple2;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag$;

/**
 * Both matrices as shards hosted inside the executors. A short hosting job places one task on
 * each executor (preferred location {@code executor_HOST_ID}); the task starts, in that JVM, one
 * {@link ShardServer} per matrix for the shards assigned to that executor (shard s goes to
 * executor s mod E) and returns the endpoints. The servers then outlive the task: they live in
 * the JVM-wide {@link Host} and hold no task slot, so every slot trains. Training tasks route
 * through an {@link EmbeddingClient} per executor JVM; the driver checkpoints with {@link
 * EmbeddingClient#snapshot}: each server writes its own shard files straight to the table's
 * storage (with the driver's Hadoop configuration, sent along with the hosting task), the driver
 * only the manifest. A resume onto another shard count has the servers re-partition the
 * checkpoint as they load it ({@link ShardServer.Builder#table(TableLocation, Partitioner)}).
 */
final class ShardHosting implements Hosting {
  private static final Logger LOG = LoggerFactory.getLogger(ShardHosting.class);

  private final JavaSparkContext sc;
  private final String key;
  private final TableManifest inputShape;
  private final TableManifest outputShape;
  private final List<String> inputEndpoints;
  private final List<String> outputEndpoints;
  private final List<Placement> placements;
  private final BufferAllocator allocator;
  /** Whether tasks reach the shards of their own executor in process ({@code --local-shards}). */
  private final boolean localShards;
  private TableManifest inputCommitted;
  private TableManifest outputCommitted;

  /** Where a hosting task ran and what it serves. */
  record Placement(String executor, String host, String input, String output, int[] shards) implements java.io.Serializable {}

  private ShardHosting(JavaSparkContext sc, String key, TableManifest in, TableManifest out, List<Placement> placements,
      boolean localShards) {
    this.sc = sc;
    this.localShards = localShards;
    this.key = key;
    this.inputShape = in;
    this.outputShape = out;
    this.placements = placements;
    this.inputEndpoints = placements.stream().map(Placement::input).collect(Collectors.toList());
    this.outputEndpoints = placements.stream().map(Placement::output).collect(Collectors.toList());
    this.allocator = new RootAllocator();
  }

  static TableManifest shape(long rows, int dim, int shards, Optimizer spec) {
    Partitioner p = Partitioner.modulo(rows, shards);
    TableManifest.Builder b = TableManifest.builder().rows(rows).dim(dim).partitioner(Partitioner.MODULO).tableVersion(1);
    for (int s = 0; s < shards; s++) {
      b.addShard(new TableManifest.ShardEntry(s, "placeholder", p.shardRows(s), p.minId(s), p.maxId(s), 0, 0));
    }
    return b.build();
  }

  static Hosting start(SparkSession spark, TrainOptions o, long rows, int shards, TableLocation resumeOut,
      TableLocation resumeCtx) throws IOException {
    return start(spark, o, rows, shards, resumeOut, resumeCtx, 1);
  }

  /**
   * Starts the servers of both matrices: from the committed tables {@code resumeOut} and {@code
   * resumeCtx} when given, else initialised. Waits (bounded) until at least {@code minExecutors}
   * executors run, so that after an executor loss the shards spread over its replacement too.
   */
  static Hosting start(SparkSession spark, TrainOptions o, long rows, int shards, TableLocation resumeOut,
      TableLocation resumeCtx, int minExecutors) throws IOException {
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    Optimizer spec = o.optimizer();
    TableManifest in = resumeOut != null ? inShards(Table.open(resumeOut).manifest(), shards) : shape(rows, o.dim, shards, spec);
    long contextRows = TrainJob.contextRows(o, rows);
    TableManifest out = resumeCtx != null ? inShards(Table.open(resumeCtx).manifest(), shards) : shape(contextRows, o.dim, shards, spec);
    if (in.numShards() != out.numShards() || in.rows() != rows || out.rows() != contextRows) {
      throw new IllegalArgumentException("Cannot resume " + resumeOut + ": " + in.rows() + " rows in "
          + in.numShards() + " shards, the corpus gives " + rows + " rows (and the context table has " + out.rows()
          + " rows in " + out.numShards() + " shards, these options need " + contextRows + ")");
    }
    String key = UUID.randomUUID().toString();
    byte[] hadoopConf = serialize(sc.hadoopConfiguration());
    List<String[]> executors = executors(sc, minExecutors);
    int e = executors.size();
    int p = in.numShards();
    List<Tuple2<HostRequest, scala.collection.immutable.Seq<String>>> tasks = new ArrayList<>();
    for (int i = 0; i < Math.min(e, p); i++) {
      int k = i;
      int[] mine = IntStream.range(0, p).filter(s -> s % Math.min(e, p) == k).toArray();
      String[] ex = executors.get(i);
      HostRequest r = new HostRequest(key, in.toJson(), out.toJson(), mine, o.seed, spec.name(), o.alpha,
          resumeOut == null ? null : resumeOut.uri(), resumeCtx == null ? null : resumeCtx.uri(), hadoopConf);
      tasks.add(new Tuple2<>(r, CollectionConverters.asScala(List.of(location(ex[0], ex[1]))).toList()));
    }
    List<Placement> placed = sc.sc()
        .makeRDD(CollectionConverters.asScala(tasks).toSeq(), ClassTag$.MODULE$.apply(HostRequest.class))
        .toJavaRDD()
        .map(ShardHosting::host)
        .collect();
    for (Placement pl : placed) {
      LOG.info("executor {} on {} hosts shards {} of both matrices: input {} context {}",
          pl.executor(), pl.host(), Arrays.toString(pl.shards()), pl.input(), pl.output());
    }
    ShardHosting h = new ShardHosting(sc, key, in, out, placed, o.localShards);
    h.inputCommitted = resumeOut == null ? null : in;
    h.outputCommitted = resumeCtx == null ? null : out;
    return h;
  }

  /** The preferred location of a task on executor {@code executor} of {@code host} (the driver in local mode). */
  static String location(String executor, String host) {
    return executor.equals("driver") ? host : "executor_" + host + "_" + executor;
  }

  /**
   * A committed table's manifest in {@code shards} shards: itself, or its shape re-partitioned
   * (same partitioner kind and rows, placeholder shard entries) for servers that re-partition it
   * as they load it.
   */
  static TableManifest inShards(TableManifest committed, int shards) {
    if (committed.numShards() == shards) {
      return committed;
    }
    return committed.withPartitioning(Partitioner.of(committed.partitioner().name(), committed.rows(), shards));
  }

  static byte[] serialize(org.apache.hadoop.conf.Configuration conf) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      conf.write(out);
    } catch (IOException e) {
      throw new IllegalStateException("Cannot serialize the Hadoop configuration: " + e, e);
    }
    return bytes.toByteArray();
  }

  static org.apache.hadoop.conf.Configuration deserialize(byte[] bytes) {
    org.apache.hadoop.conf.Configuration conf = new org.apache.hadoop.conf.Configuration(false);
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes))) {
      conf.readFields(in);
    } catch (IOException e) {
      throw new IllegalStateException("Cannot read the Hadoop configuration sent by the driver: " + e, e);
    }
    return conf;
  }

  /** {executorId, host} of the executors (the driver in local mode), waiting briefly for late ones. */
  static List<String[]> executors(JavaSparkContext sc, int minExecutors) {
    String master = sc.master();
    int expected = minExecutors;
    if (master.startsWith("local-cluster[")) {
      expected = Math.max(expected, Integer.parseInt(master.substring("local-cluster[".length()).split(",")[0].trim()));
    } else if (!master.startsWith("local")) {
      expected = Math.max(expected, sc.getConf().getInt("spark.executor.instances", 1));
    }
    if (master.startsWith("local") && !master.startsWith("local-cluster")) {
      List<String[]> local = new ArrayList<>();
      local.add(new String[] {"driver", SparkEnv.get().blockManager().blockManagerId().host()});
      return local;
    }
    long deadline = System.nanoTime() + 120_000_000_000L;
    TreeSet<String> seen = new TreeSet<>();
    List<String[]> found = new ArrayList<>();
    while (true) {
      int probes = Math.max(8, 4 * sc.defaultParallelism());
      TrainJob.describe(sc, "embstore train: find the executors");
      List<String> ids = sc.parallelize(IntStream.range(0, probes).boxed().collect(Collectors.toList()), probes)
          .map(x -> {
            Thread.sleep(50);
            return SparkEnv.get().executorId() + "\t" + SparkEnv.get().blockManager().blockManagerId().host();
          })
          .collect();
      for (String s : ids) {
        if (seen.add(s)) {
          found.add(s.split("\t"));
        }
      }
      if (found.size() >= expected || System.nanoTime() > deadline) {
        found.sort((a, b) -> a[0].compareTo(b[0]));
        return found;
      }
      try {
        Thread.sleep(500);
      } catch (InterruptedException ie) {
        Thread.currentThread().interrupt();
        return found;
      }
    }
  }

  /**
   * What one hosting task starts: the two table shapes, the shards, the tables to load (URIs) and
   * the driver's Hadoop configuration (its {@code spark.hadoop.*} settings included) with which the
   * servers read them and write their checkpoint shard files.
   */
  record HostRequest(String key, byte[] in, byte[] out, int[] shards, long seed, String optimizer,
      double alpha, String resumeOut, String resumeCtx, byte[] hadoopConf) implements java.io.Serializable {}

  private static Placement host(HostRequest r) throws IOException {
    Optimizer spec = TrainOptions.optimizer(r.optimizer(), r.alpha());
    String host = SparkEnv.get().blockManager().blockManagerId().host();
    long seed = r.seed();
    TableStorage storage = TableStorage.hadoop(deserialize(r.hadoopConf()));
    ShardServer.Builder in = ShardServer.builder().shards(r.shards()).optimizer(spec).host(host).allocator(Host.allocator())
        .storage(storage);
    ShardServer.Builder out = ShardServer.builder().shards(r.shards()).optimizer(spec).host(host).allocator(Host.allocator())
        .storage(storage);
    // Each matrix from its committed table when there is one (in the job's shard count: another
    // count is re-partitioned as it loads), else its initial rows: a first checkpoint cut between
    // its two commits leaves the input table without a context table.
    if (r.resumeOut() != null) {
      in.table(storage.location(r.resumeOut()), parse(r.in()).partitioner());
    } else {
      in.initialize(parse(r.in()), (id, row) -> SkipGram.initInputRow(seed, id, row));
    }
    if (r.resumeCtx() != null) {
      out.table(storage.location(r.resumeCtx()), parse(r.out()).partitioner());
    } else {
      out.initialize(parse(r.out()), (id, row) -> Arrays.fill(row, 0f));
    }
    ShardServer a = in.start();
    ShardServer b;
    try {
      b = out.start();
    } catch (IOException | RuntimeException ex) {
      a.close();
      throw ex;
    }
    Host.add(r.key(), "in", a);
    Host.add(r.key(), "out", b);
    return new Placement(SparkEnv.get().executorId(), host, a.endpoint(), b.endpoint(), r.shards());
  }

  static TableManifest parse(byte[] json) {
    try {
      return TableManifest.parse(json, "the job's table shape");
    } catch (IOException e) {
      throw new IllegalStateException("Cannot read the table shape sent by the driver: " + e.getMessage(), e);
    }
  }

  @Override
  public List<String> lost() {
    List<String> lost = new ArrayList<>();
    for (Placement p : placements) {
      for (String endpoint : List.of(p.input(), p.output())) {
        try {
          ShardHealth.check(allocator, endpoint, 5000, null);
        } catch (IOException e) {
          lost.add(endpoint + " (shards " + Arrays.toString(p.shards()) + " on executor " + p.executor() + ": " + e.getMessage() + ")");
        }
      }
    }
    return lost;
  }

  @Override
  public int hosts() {
    return placements.size();
  }

  @Override
  public Opener opener() {
    return new RemoteOpener(key, inputShape.toJson(), outputShape.toJson(), inputEndpoints, outputEndpoints, localShards);
  }

  /**
   * Opens the per-JVM routing clients of a run; with {@code localShards} they reach the shards that
   * this JVM's own servers host in process (EmbeddingClient.Builder#inProcess), the others
   * through Flight.
   */
  record RemoteOpener(String key, byte[] in, byte[] out, List<String> inEndpoints, List<String> outEndpoints,
      boolean localShards) implements Opener {
    @Override
    public RowStore input() throws IOException {
      return new RemoteRowStore(Host.client(key, "in", parse(in), inEndpoints, localShards));
    }

    @Override
    public RowStore output() throws IOException {
      return new RemoteRowStore(Host.client(key, "out", parse(out), outEndpoints, localShards));
    }
  }

  @Override
  public TableManifest checkpoint(TableLocation output, TableLocation context, Vocabulary vocabulary,
      Map<String, String> properties) throws IOException {
    // The first checkpoint creates the output directory, so it commits before _context goes in it.
    boolean first = !output.hasManifest();
    if (!first) {
      outputCommitted = snapshot(context, outputShape, outputCommitted, properties);
    }
    TableManifest m = snapshot(output, inputShape, inputCommitted, properties);
    if (vocabulary != null) {
      // Given once (the first checkpoint, or the first after the output lost it); later snapshots
      // carry the same file along.
      try (TableWriter w = TableWriter.nextVersion(output, m, allocator)) {
        w.vocabulary(vocabulary);
        m = w.commit();
      }
    }
    inputCommitted = m;
    if (first) {
      outputCommitted = snapshot(context, outputShape, outputCommitted, properties);
    }
    return m;
  }

  private TableManifest snapshot(TableLocation dir, TableManifest shape, TableManifest committed, Map<String, String> properties)
      throws IOException {
    TableManifest base = (committed != null ? committed : shape).toBuilder().properties(properties).build();
    List<String> endpoints = shape == inputShape ? inputEndpoints : outputEndpoints;
    try (EmbeddingClient c = EmbeddingClient.builder().manifest(base).endpoints(endpoints).allocator(allocator)
        .deadline(Duration.ofMinutes(30)).build()) {
      return TableSnapshot.write(c, dir);
    }
  }

  @Override
  public void close() throws IOException {
    try {
      release(sc, key, placements, "embstore train: stop the shard servers");
    } finally {
      allocator.close();
    }
  }

  /**
   * Stops the servers and routing clients of {@code key} on the executors of {@code placements}
   * (one task on each) and in this JVM; a failure is logged: the servers end with their executors.
   */
  static void release(JavaSparkContext sc, String key, List<Placement> placements, String description) {
    try {
      List<Tuple2<String, scala.collection.immutable.Seq<String>>> tasks = new ArrayList<>();
      for (Placement p : placements) {
        tasks.add(new Tuple2<>(key, CollectionConverters.asScala(List.of(location(p.executor(), p.host()))).toList()));
      }
      TrainJob.describe(sc, description);
      sc.sc().makeRDD(CollectionConverters.asScala(tasks).toSeq(), ClassTag$.MODULE$.apply(String.class))
          .toJavaRDD().foreach(Host::release);
    } catch (RuntimeException e) {
      LOG.warn("Cannot stop every shard server of run {}: {} (they end with their executors)", key, e.toString());
    } finally {
      Host.release(key);
    }
  }

  /** What one hosting task of a single table starts: the shards {@code shards} of the table at {@code table}. */
  record TableRequest(String key, String table, int[] shards, byte[] hadoopConf) implements java.io.Serializable {}

  /**
   * Hosts the shards of the committed table at {@code table} (P shards) inside the executors under
   * {@code key}, as the training job hosts its matrices: one short job places one task on each
   * executor, which starts a {@link ShardServer} for shards s with s mod E = its index, loaded
   * from the table's files (which every executor must reach). Released with {@link #release}.
   */
  static List<Placement> hostTable(JavaSparkContext sc, String key, String table, int numShards) {
    List<String[]> executors = executors(sc, 1);
    int hosts = Math.min(executors.size(), numShards);
    List<Tuple2<TableRequest, scala.collection.immutable.Seq<String>>> tasks = new ArrayList<>();
    byte[] hadoopConf = serialize(sc.hadoopConfiguration());
    for (int i = 0; i < hosts; i++) {
      int k = i;
      int[] mine = IntStream.range(0, numShards).filter(s -> s % hosts == k).toArray();
      String[] ex = executors.get(i);
      tasks.add(new Tuple2<>(new TableRequest(key, table, mine, hadoopConf), CollectionConverters.asScala(List.of(location(ex[0], ex[1]))).toList()));
    }
    return sc.sc()
        .makeRDD(CollectionConverters.asScala(tasks).toSeq(), ClassTag$.MODULE$.apply(TableRequest.class))
        .toJavaRDD()
        .map(ShardHosting::hostTableShards)
        .collect();
  }

  private static Placement hostTableShards(TableRequest r) throws IOException {
    String host = SparkEnv.get().blockManager().blockManagerId().host();
    TableStorage storage = TableStorage.hadoop(deserialize(r.hadoopConf()));
    ShardServer server = ShardServer.builder().table(storage.location(r.table())).storage(storage).shards(r.shards()).host(host)
        .allocator(Host.allocator()).start();
    Host.add(r.key(), "rows", server);
    return new Placement(SparkEnv.get().executorId(), host, server.endpoint(), null, r.shards());
  }

  /**
   * The JVM-wide holder of the servers and clients of each run in this executor. It owns the one
   * allocator of the hosted shards (created on first use, kept for the JVM's life: a JVM-wide
   * service has no main to close it in).
   */
  static final class Host {
    private static final Map<String, List<AutoCloseable>> SERVERS = new HashMap<>();
    /** The server of each matrix of a run ({@code key/in}, {@code key/out}) in this JVM. */
    private static final Map<String, ShardServer> LOCAL = new HashMap<>();
    private static final Map<String, EmbeddingClient> CLIENTS = new HashMap<>();
    private static BufferAllocator root;

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

    static synchronized void add(String key, String matrix, ShardServer server) {
      SERVERS.computeIfAbsent(key, k -> new ArrayList<>()).add(server);
      LOCAL.put(key + "/" + matrix, server);
    }

    static synchronized EmbeddingClient client(String run, String matrix, TableManifest m, List<String> endpoints,
        boolean localShards) throws IOException {
      String key = run + "/" + matrix;
      EmbeddingClient c = CLIENTS.get(key);
      if (c == null) {
        ShardServer own = LOCAL.get(key);
        c = EmbeddingClient.builder().manifest(m).endpoints(endpoints)
            .inProcess(localShards && own != null ? List.of(own) : List.of()).allocator(allocator())
            .deadline(Duration.ofMinutes(5)).build();
        CLIENTS.put(key, c);
        int[] local = c.inProcessShards();
        int[] remote = IntStream.range(0, m.numShards()).filter(s -> Arrays.binarySearch(local, s) < 0).toArray();
        LOG.info("routing client {}: in process shards {}; through Arrow Flight shards {}", key, Arrays.toString(local),
            Arrays.toString(remote));
      }
      return c;
    }

    static void release(String key) {
      List<AutoCloseable> close = new ArrayList<>();
      synchronized (Host.class) {
        // Servers first: a task whose call fails on a stopped server finds the server gone when the
        // driver checks (--lose-shards-at-task). Closing the clients first let the other task fail
        // on "the client is closed" while every server still answered the driver's health check,
        // which then saw no lost server and failed the job instead of recovering.
        close.addAll(SERVERS.getOrDefault(key, Collections.emptyList()));
        SERVERS.remove(key);
        LOCAL.keySet().removeIf(k -> k.startsWith(key + "/"));
        for (String k : new ArrayList<>(CLIENTS.keySet())) {
          if (k.startsWith(key + "/")) {
            close.add(CLIENTS.remove(k));
          }
        }
      }
      for (AutoCloseable c : close) {
        try {
          c.close();
        } catch (Exception e) {
          LOG.warn("Cannot close {} of run {}: {}", c, key, e.toString());
        }
      }
    }
  }
}
