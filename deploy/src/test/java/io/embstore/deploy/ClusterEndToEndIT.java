package io.embstore.deploy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.Vocabulary;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.Neighbor;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole system as an operator runs it, every part a separate process: a standalone Spark
 * cluster (Master + 2 Workers, deploy/local-cluster), the training job submitted from its shaded
 * jar alone through SparkSubmit, the table served by two {@code bin/embstore serve} processes; then
 * lookups through the routing client are compared with the rows in the table files, and {@code
 * nearest} with an exact search over those rows. Everything is stopped in {@link #stopAll}, also
 * when a step fails; every wait is bounded.
 */
class ClusterEndToEndIT {
  static final Pattern ENDPOINT = Pattern.compile("grpc\\+tcp://[0-9.]+:[0-9]+");
  /** ShardHosting's line for an executor that hosts shards: executor id, shards, the two servers. */
  static final Pattern HOSTS = Pattern.compile(
      "executor (\\S+) on \\S+ hosts shards \\[([0-9, ]+)\\] of both matrices: input (\\S+) context (\\S+)");
  /** What Spark logs when a daemon (here an executor) starts: its process id. */
  static final Pattern DAEMON_PID = Pattern.compile("Started daemon with process name: ([0-9]+)@");

  @TempDir Path tmp;
  private Path clusterDir;
  private final List<Process> servers = new ArrayList<>();
  private BufferAllocator allocator;

  @BeforeEach
  void setUp() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void stopAll() throws Exception {
    stop(servers);
    if (clusterDir != null) {
      stopCluster(tmp, clusterDir);
    }
    allocator.close();
  }

  /** TERM to each process (and KILL to what they started), KILL after 15 s. */
  static void stop(List<Process> processes) throws InterruptedException {
    for (Process p : processes) {
      p.descendants().forEach(ProcessHandle::destroyForcibly);
      p.destroy();
    }
    for (Process p : processes) {
      if (!p.waitFor(15, TimeUnit.SECONDS)) {
        p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    }
  }

  @Test
  void trainOnStandaloneClusterServeWithTwoProcessesAndReadBack() throws Exception {
    Path corpus = smallCorpus(tmp.resolve("corpus.txt"), 120);
    Path table = tmp.resolve("table");
    Path jobJar = jobJar();

    // 1. The cluster: Master + 2 Workers, separate JVMs.
    clusterDir = tmp.resolve("cluster");
    String master = startCluster(tmp, clusterDir, 2);

    // 2. Train: the shaded job jar alone on Spark's class path (spark-home has no embstore jars).
    List<String> submit = submitCommand(master, jobJar,
        "--input", corpus.toString(), "--output", table.toString(),
        "--dim", "32", "--epochs", "2", "--min-count", "3", "--shards", "4",
        "--progress-seconds", "10");
    Processes.Result trained = Processes.run(tmp, sparkEnv(), Duration.ofMinutes(15), submit);
    assertThat(trained.exit()).as("SparkSubmit TrainJob: %s", tail(trained)).isZero();
    TableManifest manifest = TableManifest.read(table);
    assertThat(manifest.numShards()).isEqualTo(4);
    assertThat(manifest.dim()).isEqualTo(32);
    // verify throws at the first problem; otherwise one "ok" line per file
    // the manifest, 4 shards, and the vocabulary's pieces (one per partition of its distributed sort)
    assertThat(Table.open(table).verify(allocator)).hasSize(1 + 4 + manifest.vocabularyFiles().size())
        .allMatch(l -> l.contains(": ok"));
    assertShardsHostedInBothExecutors(trained.out() + "\n" + trained.err());

    // 3. Serve: two bin/embstore serve processes, half of the shards each, ports chosen by the OS.
    String ep1 = serve(table, "0,2", tmp.resolve("server-1.log"));
    String ep2 = serve(table, "1,3", tmp.resolve("server-2.log"));

    // 4. Every row through the routing client equals the row in the table files.
    Table files = Table.open(table);
    int dim = manifest.dim();
    long rows = manifest.rows();
    float[] fromFiles = new float[Math.toIntExact(rows * dim)];
    files.forEachRowInIdOrder(allocator, true, (first, n, buf, off) -> {
      for (int i = 0; i < n * dim; i++) {
        fromFiles[Math.toIntExact(first * dim) + i] = buf.getFloat(off + 4L * i);
      }
    });
    try (EmbeddingClient client = EmbeddingClient.builder().table(table)
        .endpoints(List.of(ep1, ep2)).allocator(allocator).deadline(Duration.ofSeconds(60)).build()) {
      long[] ids = new long[Math.toIntExact(rows)];
      for (int i = 0; i < ids.length; i++) {
        ids[i] = ids.length - 1 - i; // reverse order: routing must put rows back in request order
      }
      float[] served = new float[ids.length * dim];
      client.lookup(ids, served);
      for (int i = 0; i < ids.length; i++) {
        int id = (int) ids[i];
        for (int c = 0; c < dim; c++) {
          if (Float.floatToRawIntBits(served[i * dim + c]) != Float.floatToRawIntBits(fromFiles[id * dim + c])) {
            throw new AssertionError("row " + id + " column " + c + ": served " + served[i * dim + c]
                + ", file " + fromFiles[id * dim + c]);
          }
        }
      }

      // 5. nearest = exact cosine top-k over the file rows; and sensible on this corpus.
      Vocabulary vocab = client.vocabulary();
      for (String word : List.of("god", "king", "son")) {
        long id = vocab.requireId(word);
        List<Neighbor> got = client.nearest(id, 10);
        List<Long> expected = bruteForceNearest(fromFiles, dim, id, 10);
        assertThat(got).extracting(Neighbor::id).as("neighbours of %s", word)
            .containsExactlyElementsOf(expected);
        assertThat(got.get(0).similarity()).isLessThanOrEqualTo(1f).isGreaterThan(got.get(9).similarity());
      }
      // Trained vectors, not noise: in Genesis-Exodus (the first 120,000 tokens of the KJV) Moses and
      // Aaron act together, and each is among the other's 20 nearest of 2,000+ words (rank 1-4 when
      // this test was written; random rows would be there 1% of the time).
      assertThat(names(vocab, client.nearest(vocab.requireId("moses"), 20))).contains("aaron");
      assertThat(names(vocab, client.nearest(vocab.requireId("aaron"), 20))).contains("moses");
      float[] self = client.lookupTokens("god");
      assertThat(client.nearest(self, 1).get(0).similarity()).isCloseTo(1f, within(1e-4f));
    }

    // 6. The command line against the same servers.
    Processes.Result lookup = embstore("lookup", "--table", table.toString(),
        "--endpoints", ep1 + "," + ep2, "--tokens", "god,king");
    assertThat(lookup.exit()).as("embstore lookup: %s", lookup).isZero();
    assertThat(lookup.out()).containsPattern("(?m)^god\t-?[0-9]").containsPattern("(?m)^king\t-?[0-9]");
    Processes.Result nearest = embstore("nearest", "--table", table.toString(),
        "--endpoints", ep1 + "," + ep2, "--token", "god", "-k", "5");
    assertThat(nearest.exit()).as("embstore nearest: %s", nearest).isZero();
    assertThat(nearest.out().strip().split("\n")).hasSize(5);

    // 7. The client jar alone runs the example application against the servers.
    Path clientJar = clientJar();
    List<String> example = new ArrayList<>(List.of(javaBin(), "--add-opens=java.base/java.nio=ALL-UNNAMED",
        "-cp", clientJar.toString(),
        Processes.repoDir().resolve("deploy/examples/client-app/LookupExample.java").toString(),
        table.toString(), ep1 + "," + ep2, "god", "king"));
    Processes.Result app = Processes.run(tmp, Map.of(), Duration.ofMinutes(3), example);
    assertThat(app.exit()).as("LookupExample with the client jar: %s", app).isZero();
    assertThat(app.out()).containsPattern("(?m)^god:( \\w+\\(-?[0-9.]+\\)){4,}")
        .containsPattern("(?m)^king:");
  }

  /**
   * The shards of both matrices were spread over the two executors, each its own JVM: the driver
   * logs one line per executor that hosts shards (ShardHosting), naming the executor id, its
   * shards and its two servers. Each id must be a directory of a different Worker's work dir (a
   * Worker starts one JVM per executor there) whose log names a different process id, so two
   * threads of one JVM, or two executors of one Worker, would not pass. Each executor's routing
   * clients (its log) reach its own shards in process and the other's through Flight.
   */
  private void assertShardsHostedInBothExecutors(String driverLog) throws IOException {
    Matcher m = HOSTS.matcher(driverLog);
    Map<String, List<Integer>> shardsByExecutor = new TreeMap<>();
    Set<String> servers = new HashSet<>();
    int lines = 0;
    while (m.find()) {
      lines++;
      List<Integer> shards = Arrays.stream(m.group(2).split(", ")).map(Integer::valueOf).toList();
      assertThat(shardsByExecutor.put(m.group(1), shards)).as("executor %s logged twice (a recovery?)", m.group(1)).isNull();
      servers.add(m.group(3));
      servers.add(m.group(4));
    }
    assertThat(shardsByExecutor).as("executors hosting shards in the driver log: %s", hostingLines(driverLog))
        .hasSize(2).doesNotContainKey("driver");
    assertThat(shardsByExecutor.values().stream().flatMap(List::stream).sorted().toList())
        .as("shards 0..3 each hosted once: %s", shardsByExecutor).containsExactly(0, 1, 2, 3);
    assertThat(servers).as("a server per matrix and executor").hasSize(2 * lines);

    Map<String, String> workerOf = new TreeMap<>();
    Set<Long> pids = new HashSet<>();
    int routingClients = 0;
    for (String executor : shardsByExecutor.keySet()) {
      List<Path> dirs;
      try (Stream<Path> s = Files.find(clusterDir, 3, (p, a) -> a.isDirectory()
          && p.getFileName().toString().equals(executor) && p.getParent().getFileName().toString().startsWith("app-"))) {
        dirs = s.toList();
      }
      assertThat(dirs).as("work dir of executor %s under %s", executor, clusterDir).hasSize(1);
      Path dir = dirs.get(0);
      workerOf.put(executor, clusterDir.relativize(dir).getName(0).toString());
      String log = readIfExists(dir.resolve("stderr"));
      Matcher pid = DAEMON_PID.matcher(log);
      assertThat(pid.find()).as("the process id in the log of executor %s: %s", executor, dir.resolve("stderr")).isTrue();
      pids.add(Long.parseLong(pid.group(1)));
      // its training tasks reach its own shards in process and the other executor's through Flight
      List<Integer> own = shardsByExecutor.get(executor);
      List<Integer> others = java.util.stream.IntStream.range(0, 4).boxed().filter(x -> !own.contains(x)).toList();
      List<String> clients = log.lines().filter(l -> l.contains("routing client")).toList();
      assertThat(clients).as("routing clients of executor %s", executor)
          .allMatch(l -> l.endsWith(": in process shards " + own + "; through Arrow Flight shards " + others));
      routingClients += clients.size();
    }
    assertThat(routingClients).as("routing clients logged by the hosting executors").isPositive();
    assertThat(new HashSet<>(workerOf.values())).as("Workers of the hosting executors: %s", workerOf).hasSize(2);
    assertThat(pids).as("process ids of the hosting executors %s", shardsByExecutor.keySet()).hasSize(2);
    System.out.printf("shards hosted by executors %s on Workers %s, processes %s; %d routing clients, each with its executor's shards in process%n",
        shardsByExecutor, workerOf, pids, routingClients);
  }

  private static String hostingLines(String log) {
    return log.lines().filter(l -> l.contains("hosts shards")).reduce("", (a, b) -> a + b + "\n");
  }

  /** Starts {@code bin/embstore serve}; returns the endpoint from its ready line (90 s at most). */
  private String serve(Path table, String shards, Path log) throws Exception {
    return serve(tmp, servers, table.toString(), shards, log);
  }

  /**
   * Starts {@code bin/embstore serve --table TABLE --shards SHARDS} in {@code dir}, adds the process
   * to {@code servers} (the caller stops them) and returns the endpoint from its ready line (90 s at
   * most); the output goes to {@code log}.
   */
  static String serve(Path dir, List<Process> servers, String table, String shards, Path log) throws Exception {
    List<String> cmd = List.of(script("bin/embstore").toString(), "serve", "--table", table,
        "--shards", shards, "--host", "127.0.0.1", "--port", "0");
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
    pb.environment().put("EMBSTORE_JAVA_OPTS", "-Xmx256m");
    Process p = pb.start();
    servers.add(p);
    p.getOutputStream().close();
    // Copy the output to a log on a thread, looking for the endpoint.
    var found = new java.util.concurrent.CompletableFuture<String>();
    Thread t = new Thread(() -> {
      try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
          Writer w = Files.newBufferedWriter(log)) {
        for (String line; (line = r.readLine()) != null; ) {
          w.write(line + "\n");
          w.flush();
          Matcher m = ENDPOINT.matcher(line);
          if (m.find()) {
            found.complete(m.group());
          }
        }
      } catch (IOException e) {
        found.completeExceptionally(e);
      }
      found.completeExceptionally(new IllegalStateException("serve exited before printing an endpoint"));
    }, "serve-log-" + shards);
    t.setDaemon(true);
    t.start();
    try {
      return found.get(90, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new AssertionError("Cannot start serve --shards " + shards + ": " + e + "\n" + readIfExists(log), e);
    }
  }

  private Processes.Result embstore(String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(script("bin/embstore").toString());
    cmd.addAll(List.of(args));
    return Processes.run(tmp, Map.of(), Duration.ofMinutes(3), cmd);
  }

  static List<Long> bruteForceNearest(float[] rows, int dim, long query, int k) {
    int n = rows.length / dim;
    double[] norms = new double[n];
    for (int i = 0; i < n; i++) {
      double s = 0;
      for (int c = 0; c < dim; c++) {
        s += (double) rows[i * dim + c] * rows[i * dim + c];
      }
      norms[i] = Math.sqrt(s);
    }
    int q = (int) query;
    List<double[]> scored = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      if (i == q) {
        continue;
      }
      double dot = 0;
      for (int c = 0; c < dim; c++) {
        dot += (double) rows[i * dim + c] * rows[q * dim + c];
      }
      scored.add(new double[] {dot / (norms[i] * norms[q]), i});
    }
    scored.sort(Comparator.comparingDouble((double[] a) -> -a[0]).thenComparingDouble(a -> a[1]));
    List<Long> ids = new ArrayList<>();
    for (int i = 0; i < k; i++) {
      ids.add((long) scored.get(i)[1]);
    }
    return ids;
  }

  static List<String> names(Vocabulary vocab, List<Neighbor> neighbours) {
    List<String> out = new ArrayList<>();
    for (Neighbor n : neighbours) {
      out.add(vocab.token(n.id()));
    }
    return out;
  }

  /** The first {@code lines} lines (1,000 tokens each) of the quickstart corpus (KJV). */
  static Path smallCorpus(Path out, int lines) throws IOException {
    Path kjv = Processes.repoDir().resolve("deploy/quickstart/kjv.txt.gz");
    try (BufferedReader r = new BufferedReader(new InputStreamReader(
            new GZIPInputStream(Files.newInputStream(kjv)), StandardCharsets.UTF_8));
        Writer w = Files.newBufferedWriter(out)) {
      String line;
      for (int i = 0; i < lines && (line = r.readLine()) != null; i++) {
        w.write(line);
        w.write('\n');
      }
    }
    return out;
  }

  static Path script(String relative) {
    return Processes.repoDir().resolve("deploy").resolve(relative);
  }

  static Path jobJar() throws IOException {
    Path target = Processes.repoDir().resolve("spark-job/target");
    try (Stream<Path> s = Files.list(target)) {
      return s.filter(p -> p.getFileName().toString().matches("embstore-spark-job-.*-job\\.jar"))
          .findFirst()
          .orElseThrow(() -> new AssertionError("Cannot find the shaded job jar in " + target
              + " (spark-job must attach it with classifier `job`)"));
    }
  }

  static Path clientJar() throws IOException {
    try (Stream<Path> s = Files.list(Processes.deployTarget())) {
      return s.filter(p -> p.getFileName().toString().matches("embstore-deploy-.*-client\\.jar"))
          .findFirst().orElseThrow(() -> new AssertionError("Cannot find the client jar in deploy/target"));
    }
  }

  static String javaBin() {
    return Path.of(System.getProperty("java.home"), "bin", "java").toString();
  }

  static List<String> javaWithFlags() throws IOException {
    String sh = Files.readString(script("bin/java-flags.sh"));
    Matcher m = Pattern.compile("EMBSTORE_JVM_FLAGS=\\(([^)]*)\\)", Pattern.DOTALL).matcher(sh);
    if (!m.find()) {
      throw new AssertionError("no EMBSTORE_JVM_FLAGS in java-flags.sh");
    }
    List<String> cmd = new ArrayList<>();
    cmd.add(javaBin());
    cmd.add("-Xmx1g");
    cmd.addAll(List.of(m.group(1).trim().split("\\s+")));
    return cmd;
  }

  /** Starts Master + {@code workers} Workers with deploy/local-cluster/start.sh; returns the master URL. */
  static String startCluster(Path tmp, Path clusterDir, int workers) throws Exception {
    Processes.Result started =
        Processes.run(tmp, Map.of("CLUSTER_DIR", clusterDir.toString(), "START_TIMEOUT", "180"),
            Duration.ofMinutes(4), List.of(script("local-cluster/start.sh").toString(), Integer.toString(workers)));
    assertThat(started.exit()).as("start.sh: %s", started).isZero();
    Properties env = new Properties();
    try (var in = Files.newBufferedReader(clusterDir.resolve("cluster.env"))) {
      env.load(in);
    }
    String master = env.getProperty("MASTER_URL");
    assertThat(master).startsWith("spark://127.0.0.1:");
    assertThat(Files.readString(clusterDir.resolve("master.log")))
        .containsPattern("(?s)Registering worker" + ".*Registering worker".repeat(workers - 1));
    return master;
  }

  /** Stops what start.sh started in {@code clusterDir}. */
  static void stopCluster(Path tmp, Path clusterDir) throws Exception {
    Processes.Result r = Processes.run(tmp, Map.of("CLUSTER_DIR", clusterDir.toString()), Duration.ofMinutes(1),
        List.of(script("local-cluster/stop.sh").toString()));
    assertThat(r.exit()).as("stop.sh: %s", r).isZero();
  }

  /** SparkSubmit of the shaded job jar alone (spark-home has no embstore jars) with TrainJob {@code args}. */
  static List<String> submitCommand(String master, Path jobJar, String... args) throws IOException {
    Path sparkHome = Processes.deployTarget().resolve("spark-home");
    List<String> submit = new ArrayList<>(javaWithFlags());
    submit.addAll(List.of("-cp", sparkHome.resolve("jars") + "/*",
        "org.apache.spark.deploy.SparkSubmit",
        "--master", master,
        "--executor-memory", "600m",
        "--total-executor-cores", "2",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.driver.host=127.0.0.1",
        "--class", "io.embstore.spark.TrainJob", jobJar.toString()));
    submit.addAll(List.of(args));
    return submit;
  }

  static Map<String, String> sparkEnv() {
    return Map.of("SPARK_HOME", Processes.deployTarget().resolve("spark-home").toString(),
        "SPARK_SCALA_VERSION", "2.13", "SPARK_LOCAL_IP", "127.0.0.1");
  }

  static String readIfExists(Path p) {
    try {
      return Files.exists(p) ? Files.readString(p) : "(no log)";
    } catch (IOException e) {
      return "(unreadable log: " + e + ")";
    }
  }

  static String tail(Processes.Result r) {
    String out = r.out() + "\n" + r.err();
    return "exit " + r.exit() + "\n" + out.substring(Math.max(0, out.length() - 6000));
  }
}
