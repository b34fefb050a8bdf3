package io.embstore.spark;

import io.embstore.format.Partitioner;
import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TableStorage;
import io.embstore.format.TableWriter;
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
 * the JVM-wide {@link ExecutorHost} and hold no task slot, so every slot trains. Training tasks route
 * through an {@link EmbeddingClient} per executor JVM; the driver checkpoints with {@link
 * TableSnapshot}: each server writes its own shard files straight to the table's storage (with the
 * driver's Hadoop configuration, sent along with the hosting task), the driver only the manifest. A
 * resume onto another shard count has the servers re-partition the checkpoint as they load it
 * ({@link ShardServer.Builder#table(TableLocation, Partitioner)}).
 *
 * <p>The executors are the ones registered with the driver ({@link #executors}), at least {@code
 * --min-executors} of them, waited for up to {@code --executor-wait}. The servers require the job's
 * secret (their write token) on every Flight call, which the job's own clients carry, and write
 * snapshots only below the job's output table.
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
  /** The job's secret: the servers' write token. */
  private final String secret;
  private TableManifest inputCommitted;
  private TableManifest outputCommitted;

  /** Where a hosting task ran and what it serves. */
  record Placement(String executor, String host, String input, String output, int[] shards) implements java.io.Serializable {}

  private ShardHosting(JavaSparkContext sc, String key, TableManifest in, TableManifest out, List<Placement> placements,
      boolean localShards, String secret) {
    this.sc = sc;
    this.localShards = localShards;
    this.secret = secret;
    this.key = key;
    this.inputShape = in;
    this.outputShape = out;
    this.placements = placements;
    this.inputEndpoints = placements.stream().map(Placement::input).collect(Collectors.toList());
    this.outputEndpoints = placements.stream().map(Placement::output).collect(Collectors.toList());
    this.allocator = new RootAllocator();
  }

  static TableManifest shape(long rows, int dim, int shards, Optimizer spec) {
    return shape(rows, dim, io.embstore.format.ValueType.FLOAT32, shards, spec);
  }

  static TableManifest shape(long rows, int dim, io.embstore.format.ValueType type, int shards, Optimizer spec) {
    Partitioner p = Partitioner.modulo(rows, shards);
    TableManifest.Builder b = TableManifest.builder().rows(rows).dim(dim).valueType(type).partitioner(Partitioner.MODULO).tableVersion(1);
    for (int s = 0; s < shards; s++) {
      b.addShard(new TableManifest.ShardEntry(s, "placeholder", p.shardRows(s), p.minId(s), p.maxId(s), 0, 0));
    }
    return b.build();
  }

  /**
   * Starts the servers of both matrices: from the committed tables {@code resumeOut} and {@code
   * resumeCtx} when given, else initialised. Waits (up to {@code --executor-wait}) until at least
   * {@code --min-executors} executors, and as many as {@code wanted}, have registered, so that after
   * an executor loss the shards spread over its replacement too.
   *
   * @param snapshotRoot the only directory (tree) the servers may write snapshots into: the output
   * @param secret the servers' write token, which every Flight call must carry
   */
  static Hosting start(SparkSession spark, TrainOptions o, long rows, int shards, TableLocation resumeOut,
      TableLocation resumeCtx, int wanted, TableLocation snapshotRoot, String secret) throws IOException {
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    Optimizer spec = o.optimizer();
    TableManifest in = resumeOut != null ? inShards(Table.open(resumeOut).manifest(), shards) : shape(rows, o.dim, o.valueType(), shards, spec);
    long contextRows = TrainJob.contextRows(o, rows);
    TableManifest out = resumeCtx != null ? inShards(Table.open(resumeCtx).manifest(), shards) : shape(contextRows, o.dim, o.valueType(), shards, spec);
    Resume.checkValueType(resumeOut, in, o);
    if (in.numShards() != out.numShards() || in.rows() != rows || out.rows() != contextRows) {
      throw new IllegalArgumentException("Cannot resume " + resumeOut + ": " + in.rows() + " rows in "
          + in.numShards() + " shards, the corpus gives " + rows + " rows (and the context table has " + out.rows()
          + " rows in " + out.numShards() + " shards, these options need " + contextRows + ")");
    }
    String key = UUID.randomUUID().toString();
    byte[] hadoopConf = serialize(sc.hadoopConfiguration());
    List<String[]> executors = executors(sc, o.minExecutors, wanted, o.executorWait);
    int e = executors.size();
    int p = in.numShards();
    List<Tuple2<HostRequest, scala.collection.immutable.Seq<String>>> tasks = new ArrayList<>();
    for (int i = 0; i < Math.min(e, p); i++) {
      int k = i;
      int[] mine = IntStream.range(0, p).filter(s -> s % Math.min(e, p) == k).toArray();
      String[] ex = executors.get(i);
      HostRequest r = new HostRequest(key, in.toJson(), out.toJson(), mine, o.seed, spec.name(), o.alpha,
          resumeOut == null ? null : resumeOut.uri(), resumeCtx == null ? null : resumeCtx.uri(), hadoopConf,
          snapshotRoot.uri(), secret);
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
    ShardHosting h = new ShardHosting(sc, key, in, out, placed, o.localShards, secret);
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

  /**
   * {executorId, host} of the executors registered with the driver (the driver in local mode),
   * sorted by id. Waits up to {@code waitSeconds} until at least {@code min} (and, when they come in
   * time, {@code wanted}) have registered: the executors Spark knows of are the block managers
   * registered with the driver ({@code getExecutorMemoryStatus}), and short probe tasks learn the
   * executor id of each (the preferred location of a hosting task names it). Fails naming the
   * executors found when fewer than {@code min} register in time.
   */
  static List<String[]> executors(JavaSparkContext sc, int min, int wanted, double waitSeconds) {
    if (checkMinExecutors(sc, min)) {
      List<String[]> local = new ArrayList<>();
      local.add(new String[] {"driver", SparkEnv.get().blockManager().blockManagerId().host()});
      return local;
    }
    int need = Math.max(min, wanted);
    long start = System.nanoTime();
    long deadline = start + (long) (waitSeconds * 1e9);
    long nextLog = start + 5_000_000_000L;
    String driver = SparkEnv.get().blockManager().blockManagerId().hostPort();
    Map<String, String[]> byBlockManager = new HashMap<>();
    while (true) {
      java.util.Set<String> registered = new TreeSet<>(CollectionConverters.asJava(sc.sc().getExecutorMemoryStatus().keySet()));
      registered.remove(driver);
      if (!byBlockManager.keySet().containsAll(registered)) {
        int probes = Math.max(8, 4 * sc.defaultParallelism());
        TrainJob.describe(sc, "embstore train: find the executors");
        List<String> seen = sc.parallelize(IntStream.range(0, probes).boxed().collect(Collectors.toList()), probes)
            .map(x -> {
              Thread.sleep(50);
              org.apache.spark.storage.BlockManagerId id = SparkEnv.get().blockManager().blockManagerId();
              return id.hostPort() + "\t" + SparkEnv.get().executorId() + "\t" + id.host();
            })
            .collect();
        for (String s : seen) {
          String[] f = s.split("\t");
          byBlockManager.put(f[0], new String[] {f[1], f[2]});
        }
      }
      List<String[]> found = new ArrayList<>();
      for (String bm : registered) {
        if (byBlockManager.containsKey(bm)) {
          found.add(byBlockManager.get(bm));
        }
      }
      found.sort((a, b) -> a[0].compareTo(b[0]));
      long now = System.nanoTime();
      boolean allKnown = found.size() == registered.size();
      if (allKnown && found.size() >= need) {
        return found;
      }
      if (now > deadline) {
        if (found.size() >= min) {
          LOG.warn("placing the shards on the {} executors registered after --executor-wait {} s ({} wanted): {}",
              found.size(), waitSeconds, need, describe(found));
          return found;
        }
        throw new IllegalStateException(String.format(java.util.Locale.ROOT,
            "Cannot host the shards: %d of --min-executors %d executors registered within --executor-wait %s s (%s); "
                + "check that the cluster has free cores and memory for them, or lower --min-executors",
            registered.size(), min, waitSeconds, registered.isEmpty() ? "none" : describe(found)));
      }
      if (now > nextLog) {
        LOG.info("waiting for executors: {} of {} registered ({} s of --executor-wait {} s)", registered.size(), need,
            (now - start) / 1_000_000_000L, waitSeconds);
        nextLog = now + 5_000_000_000L;
      }
      try {
        Thread.sleep(500);
      } catch (InterruptedException ie) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("Cannot host the shards: interrupted while waiting for executors", ie);
      }
    }
  }

  /**
   * Whether Spark runs in local mode (one executor: the driver); refuses {@code min} above 1 there.
   */
  static boolean checkMinExecutors(JavaSparkContext sc, int min) {
    String master = sc.master();
    boolean local = master.startsWith("local") && !master.startsWith("local-cluster");
    if (local && min > 1) {
      throw new IllegalArgumentException("Cannot host the shards on --min-executors " + min + " executors: Spark runs in "
          + master + ", one executor (the driver)");
    }
    return local;
  }

  private static String describe(List<String[]> executors) {
    return executors.stream().map(e -> "executor " + e[0] + " on " + e[1]).collect(Collectors.joining(", "));
  }

  /**
   * What one hosting task starts: the two table shapes, the shards, the tables to load (URIs), the
   * driver's Hadoop configuration (its {@code spark.hadoop.*} settings included) with which the
   * servers read them and write their checkpoint shard files, the directory snapshots may go below,
   * and the job's secret; its {@code toString} leaves the secret out.
   */
  record HostRequest(String key, byte[] in, byte[] out, int[] shards, long seed, String optimizer,
      double alpha, String resumeOut, String resumeCtx, byte[] hadoopConf, String snapshotRoot, String secret)
      implements java.io.Serializable {
    @Override
    public String toString() {
      return "HostRequest[" + key + ", shards " + Arrays.toString(shards) + "]";
    }
  }

  private static Placement host(HostRequest r) throws IOException {
    Optimizer spec = TrainOptions.optimizer(r.optimizer(), r.alpha());
    String host = SparkEnv.get().blockManager().blockManagerId().host();
    long seed = r.seed();
    TableStorage storage = TableStorage.hadoop(deserialize(r.hadoopConf()));
    ShardServer.Builder in = ShardServer.builder().shards(r.shards()).optimizer(spec).host(host).allocator(ExecutorHost.allocator())
        .storage(storage).writeToken(r.secret()).snapshotDir(r.snapshotRoot());
    ShardServer.Builder out = ShardServer.builder().shards(r.shards()).optimizer(spec).host(host).allocator(ExecutorHost.allocator())
        .storage(storage).writeToken(r.secret()).snapshotDir(r.snapshotRoot());
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
    ExecutorHost.addServer(r.key(), "in", a);
    ExecutorHost.addServer(r.key(), "out", b);
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
          ShardHealth.check(allocator, endpoint, 5000, secret);
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
    return new RemoteOpener(key, inputShape.toJson(), outputShape.toJson(), inputEndpoints, outputEndpoints, localShards, secret);
  }

  /**
   * Opens the per-JVM routing clients of a run, which carry the job's secret; with {@code
   * localShards} they reach the shards that this JVM's own servers host in process
   * (EmbeddingClient.Builder#inProcess), the others through Flight. Its {@code toString} leaves the
   * secret out.
   */
  record RemoteOpener(String key, byte[] in, byte[] out, List<String> inEndpoints, List<String> outEndpoints,
      boolean localShards, String secret) implements Opener {
    @Override
    public RowStore input() throws IOException {
      return new RemoteRowStore(ExecutorHost.client(key, "in", parse(in), inEndpoints, localShards, secret));
    }

    @Override
    public RowStore output() throws IOException {
      return new RemoteRowStore(ExecutorHost.client(key, "out", parse(out), outEndpoints, localShards, secret));
    }

    @Override
    public String toString() {
      return "RemoteOpener[" + key + ", input " + inEndpoints + ", context " + outEndpoints + "]";
    }
  }

  @Override
  public TableManifest checkpoint(TableLocation output, TableLocation context, VocabularyWriter vocabulary,
      Map<String, String> properties) throws IOException {
    // The first checkpoint creates the output directory, so it commits before _context goes in it.
    boolean first = !output.hasManifest();
    if (!first) {
      outputCommitted = snapshot(context, outputShape, outputCommitted, properties);
    }
    TableManifest m = snapshot(output, inputShape, inputCommitted, properties);
    if (vocabulary != null) {
      // Given once (the first checkpoint, or the first after the output lost it): the executors
      // write its pieces as files of the next version, which commits them; later snapshots carry
      // the same files along.
      try (TableWriter w = TableWriter.nextVersion(output, m, allocator)) {
        TrainJob.describe(sc, "embstore train: write the vocabulary into " + output);
        w.vocabularyFiles(vocabulary.write(output, w.tableVersion()));
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
        .token(secret).deadline(Duration.ofMinutes(30)).build()) {
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
          .toJavaRDD().foreach(ExecutorHost::release);
    } catch (RuntimeException e) {
      LOG.warn("Cannot stop every shard server of run {}: {} (they end with their executors)", key, e.toString());
    } finally {
      ExecutorHost.release(key);
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
    List<String[]> executors = executors(sc, 1, 1, 120);
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
        .allocator(ExecutorHost.allocator()).start();
    ExecutorHost.addServer(r.key(), "rows", server);
    return new Placement(SparkEnv.get().executorId(), host, server.endpoint(), null, r.shards());
  }
}
