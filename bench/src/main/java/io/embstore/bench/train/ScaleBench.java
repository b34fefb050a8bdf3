package io.embstore.bench.train;

import io.embstore.bench.train.scale.NearestScan;
import io.embstore.bench.train.scale.PlantedCorpus;
import io.embstore.format.Partitioner;
import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.Neighbor;
import io.embstore.shard.ShardServer;
import io.embstore.spark.TrainJob;
import io.embstore.spark.TrainOptions;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The scale run of the training job: a generated id corpus over V ids with planted groups (see
 * {@link PlantedCorpus}), trained by the real {@link TrainJob} (ids input, SGD, shard servers in
 * this JVM as the local[2] executor) and measured for
 *
 * <ul>
 *   <li>memory per shard: the peak bytes of each hosted shard's allocator and of each shard
 *       server's allocator (shards + Flight buffers + snapshot staging), polled while the job runs
 *       ({@link TrainJob#hostedMemory}), against the rows' bytes {@code rows x C x 4} (+ optimizer
 *       state); the JVM's peak RSS (VmHWM) and peak heap;
 *   <li>group recovery: for sampled groups (the most frequent ones, random ones seen at least
 *       {@code --min-sentences} times, and random ones per occurrence bucket), the K = k-1 exact
 *       cosine nearest neighbours of one (or every) member over all V rows of the output table
 *       ({@link NearestScan}), and the fraction of them in the member's group ("purity"), against
 *       the random baseline (k-1)/(V-1); a few queries are repeated through {@code
 *       EmbeddingClient.nearest} on shard servers serving the output table, as a check;
 *   <li>tokens/s = corpus tokens x epochs / wall time of {@code TrainJob.run} (corpus load and
 *       hosting included), and the wall time of every phase.
 * </ul>
 *
 * <p>Run: {@code BENCH_JAVA_OPTS="-Xmx4g -XX:MaxDirectMemorySize=12g" bench/run train.ScaleBench
 * --ids 10000000 --tokens 4000000} ({@code --help} for every option; the shard servers' buffers
 * count against the direct-memory limit, which defaults to the heap size). Files go to {@code
 * bench/results/scale/} (corpus, table, report); a corpus generated with the same settings is
 * reused.
 */
@Command(name = "ScaleBench", mixinStandardHelpOptions = true,
    description = "Scale run of embstore train on a generated corpus with planted id groups.")
public final class ScaleBench implements Callable<Integer> {
  @Option(names = "--ids", defaultValue = "100000", description = "V. Default: ${DEFAULT-VALUE}.")
  long ids;

  @Option(names = "--dim", defaultValue = "64", description = "C. Default: ${DEFAULT-VALUE}.")
  int dim;

  @Option(names = "--shards", defaultValue = "4", description = "P. Default: ${DEFAULT-VALUE}.")
  int shards;

  @Option(names = "--groups-of", defaultValue = "5", description = "k, ids per group. Default: ${DEFAULT-VALUE}.")
  int k;

  @Option(names = "--tokens", defaultValue = "0",
      description = "Corpus tokens per epoch, approximately (0: 10 x V). Default: ${DEFAULT-VALUE}.")
  long tokens;

  @Option(names = "--epochs", defaultValue = "1", description = "Default: ${DEFAULT-VALUE}.")
  int epochs;

  @Option(names = "--zipf", defaultValue = "1.0", description = "Power-law exponent over group ranks. Default: ${DEFAULT-VALUE}.")
  double zipf;

  @Option(names = "--uniform", defaultValue = "0.5",
      description = "Fraction of sentences whose group is drawn uniformly. Default: ${DEFAULT-VALUE}.")
  double uniform;

  @Option(names = "--noise", defaultValue = "0.3",
      description = "Probability that a sentence gets one extra uniform random id. Default: ${DEFAULT-VALUE}.")
  double noise;

  @Option(names = "--seed", defaultValue = "7", description = "Corpus seed (training uses --seed 1). Default: ${DEFAULT-VALUE}.")
  long seed;

  @Option(names = "--files", defaultValue = "0", description = "Parquet files of the corpus (0: one per 2 M sentences, at least 8).")
  int files;

  @Option(names = "--train-args", split = " ", description = "Extra TrainJob options, space separated (e.g. \"--batch-tokens 32768\").")
  List<String> trainArgs = new ArrayList<>();

  @Option(names = "--top-groups", defaultValue = "300", description = "Most frequent groups to test. Default: ${DEFAULT-VALUE}.")
  int topGroups;

  @Option(names = "--random-groups", defaultValue = "300",
      description = "Random groups seen >= --min-sentences times to test. Default: ${DEFAULT-VALUE}.")
  int randomGroups;

  @Option(names = "--bucket-groups", defaultValue = "80",
      description = "Random groups per occurrence bucket (1, 2-4, 5-19, 20-99, 100+). Default: ${DEFAULT-VALUE}.")
  int bucketGroups;

  @Option(names = "--min-sentences", defaultValue = "20", description = "Default: ${DEFAULT-VALUE}.")
  int minSentences;

  @Option(names = "--members", defaultValue = "1",
      description = "Members of each tested group used as queries (1..k). Default: ${DEFAULT-VALUE}.")
  int members;

  @Option(names = "--served-check", defaultValue = "10",
      description = "Queries repeated through EmbeddingClient.nearest on shard servers. Default: ${DEFAULT-VALUE}.")
  int servedCheck;

  @Option(names = "--work", defaultValue = "bench/results/scale", description = "Default: ${DEFAULT-VALUE}.")
  Path work;

  @Option(names = "--keep-table", description = "Keep the trained table (several GB at V = 10 M).")
  boolean keepTable;

  @Option(names = "--child", description = "Train in a child JVM (local[2]) of --child-heap, as --compare-with does, instead of in this JVM.")
  boolean child;

  @Option(names = "--compare-with", paramLabel = "DIR",
      description = "Jars of another build (embstore-arrow-format, -shard-client, -spark-job *.jar, e.g. main's): train with them first in a child JVM, then with this build in another, and compare memory.")
  Path compareWith;

  @Option(names = "--child-heap", defaultValue = "4g", description = "-Xmx of the child JVMs. Default: ${DEFAULT-VALUE}.")
  String childHeap;

  @Option(names = "--child-direct", defaultValue = "12g", description = "-XX:MaxDirectMemorySize of the child JVMs. Default: ${DEFAULT-VALUE}.")
  String childDirect;

  @Option(names = "--cluster", defaultValue = "0",
      description = "Train on a standalone cluster of this many Workers, one executor JVM each (deploy/local-cluster), the driver in its own JVM (0: local[2]).")
  int cluster;

  @Option(names = "--worker-memory", defaultValue = "8g", description = "Memory a Worker offers (>= --executor-heap). Default: ${DEFAULT-VALUE}.")
  String workerMemory;

  @Option(names = "--executor-heap", defaultValue = "2g", description = "spark.executor.memory. Default: ${DEFAULT-VALUE}.")
  String executorHeap;

  @Option(names = "--executor-direct", defaultValue = "10g", description = "-XX:MaxDirectMemorySize of the executors (the hosted rows). Default: ${DEFAULT-VALUE}.")
  String executorDirect;

  @Option(names = "--driver-heap", defaultValue = "512m", description = "-Xmx of the driver JVM in --cluster mode. Default: ${DEFAULT-VALUE}.")
  String driverHeap;

  @Option(names = "--mllib", negatable = true, defaultValue = "true", fallbackValue = "true",
      description = "In --cluster mode, also run Spark MLlib's Word2Vec on the same corpus and vocabulary (local[2], a child JVM). Default: ${DEFAULT-VALUE}.")
  boolean mllib;

  @Option(names = "--mllib-dim", defaultValue = "0",
      description = "MLlib's vectorSize (0: --dim; -1: the smallest with MLlib's vocabulary, the ids seen, x vectorSize >= 2^31, to show its limit at a small V).")
  int mllibDim;

  @Option(names = "--mllib-heap", defaultValue = "4g", description = "-Xmx of MLlib's JVM. Default: ${DEFAULT-VALUE}.")
  String mllibHeap;

  private final StringBuilder report = new StringBuilder();

  public static void main(String[] args) {
    System.exit(new CommandLine(new ScaleBench()).execute(args));
  }

  private void say(String format, Object... args) {
    String s = String.format(Locale.ROOT, format, args);
    System.out.println(s);
    report.append(s).append('\n');
  }

  @Override
  public Integer call() throws Exception {
    if (members < 1 || members > k) {
      throw new IllegalArgumentException("Cannot test purity: --members " + members + " (must be 1.." + k + ")");
    }
    long tokensPerEpoch = tokens > 0 ? tokens : 10 * ids;
    double perSentence = k + noise;
    long sentences = Math.max(1, Math.round(tokensPerEpoch / perSentence));
    int nFiles = files > 0 ? files : (int) Math.max(8, sentences / 2_000_000);
    PlantedCorpus planted = new PlantedCorpus(ids, k, zipf, uniform, noise, seed);
    work = work.toAbsolutePath();
    Files.createDirectories(work);
    String tag = String.format(Locale.ROOT, "V%d-k%d-n%d-z%s-u%s-x%s-s%d", ids, k, sentences, zipf, uniform, noise, seed);
    Path corpus = work.resolve("corpus-" + tag);
    Path table = work.resolve("table-V" + ids);
    say("== ScaleBench %s, load average at start %s, %d cores, max heap %.1f GB", java.time.Instant.now(),
        loadAverage(), Runtime.getRuntime().availableProcessors(), Runtime.getRuntime().maxMemory() / 1e9);

    SparkSession spark = session("embstore scale bench");
    try {
      // 1. Corpus.
      long t0 = System.nanoTime();
      long corpusTokens;
      Path done = corpus.resolve("_TOKENS");
      if (Files.exists(done)) {
        corpusTokens = Long.parseLong(Files.readString(done).trim());
        say("== corpus: reusing %s", corpus);
      } else {
        corpusTokens = planted.write(spark, corpus.toString(), sentences, nFiles);
        Files.writeString(done, Long.toString(corpusTokens));
      }
      double genSeconds = (System.nanoTime() - t0) / 1e9;
      int[] counts = planted.groupCounts(spark, corpus.toString());
      long rssAfterCorpus = peakRss();
      say("== corpus: V=%,d ids in %,d groups of %d (+%d ungrouped), %,d sentences, %,d tokens, %d Parquet files, %.1f MB, %.1f s",
          ids, planted.groups(), k, ids - planted.groups() * k, sentences, corpusTokens, nFiles, treeBytes(corpus) / 1e6, genSeconds);
      say("   groups: power law exponent %s over ranks, %.0f%% drawn uniformly; noise id in %.0f%% of sentences",
          zipf, uniform * 100, noise * 100);
      int[] edges = {0, 1, 2, 5, 20, 100, Integer.MAX_VALUE};
      StringBuilder dist = new StringBuilder("   sentences per group:");
      for (int e = 0; e + 1 < edges.length; e++) {
        int lo = edges[e];
        int hi = edges[e + 1];
        long n = Arrays.stream(counts).filter(c -> c >= lo && c < hi).count();
        dist.append(String.format(Locale.ROOT, "  %s: %,d (%.1f%%)", bucketName(lo, hi), n, 100.0 * n / counts.length));
      }
      say("%s", dist);
      int maxCount = Arrays.stream(counts).max().orElse(0);
      say("   hottest group: %,d sentences; groups seen >= %d times: %,d", maxCount, minSentences,
          Arrays.stream(counts).filter(c -> c >= minSentences).count());

      // 2. Training, and 3. memory.
      deleteTree(table);
      List<String> args = new ArrayList<>(List.of("--input", corpus.toString(), "--format", "parquet", "--column", "tokens",
          "--vocab-size", Long.toString(ids), "--dim", Integer.toString(dim), "--shards", Integer.toString(shards),
          "--optimizer", "sgd", "--epochs", Integer.toString(epochs), "--checkpoint-minutes", "0",
          "--progress-seconds", "30", "--output", table.toString()));
      args.addAll(trainArgs);
      if (cluster > 0) {
        spark.stop();
        spark = null;
        clusterRun(args, table);
      } else if (compareWith != null || child) {
        childRuns(args, table);
      } else {
        inProcessRun(spark, args, table, rssAfterCorpus);
      }

      // 4. Purity.
      purity(planted, counts, table);
      if (!keepTable) {
        deleteTree(table);
      }
    } finally {
      if (spark != null) {
        spark.stop();
      }
      Path file = work.resolve("report-V" + ids + ".txt");
      Files.writeString(file, report.toString(), StandardCharsets.UTF_8);
      System.out.println("report written to " + file);
    }
    return 0;
  }

  /** The local[2] session of the harness and of {@link ScaleTrain}: UI off, loopback, the job's progress lines visible. */
  static SparkSession session(String name) {
    SparkSession spark = SparkSession.builder().master("local[2]").appName(name)
        .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1").config("spark.executor.heartbeatInterval", "2s")
        .config("spark.driver.maxResultSize", "0").getOrCreate();
    spark.sparkContext().setLogLevel("WARN");
    org.apache.logging.log4j.core.config.Configurator.setLevel("io.embstore.spark", org.apache.logging.log4j.Level.INFO);
    return spark;
  }

  // ------------------------------------------------------------------ memory

  /** Polls the hosting allocators, the heap and RSS while the job trains. */
  static final class Probe extends Thread {
    volatile boolean stop;
    /**
     * Per allocator path, the highest {allocated, peak} seen in any poll: servers close their
     * shards one by one at the end, so no single poll need show them all.
     */
    final Map<String, long[]> seen = new java.util.concurrent.ConcurrentSkipListMap<>();
    long maxHeapUsed;
    /** The most heap in use right after a collection (the live data, not the garbage between GCs). */
    long maxHeapAfterGc;
    long maxRss;

    Probe() {
      super("scale-bench-probe");
      setDaemon(true);
    }

    @Override
    public void run() {
      while (!stop) {
        Map<String, long[]> m = TrainJob.hostedMemory();
        m.forEach((p, v) -> seen.merge(p, v.clone(), (x, y) -> new long[] {Math.max(x[0], y[0]), Math.max(x[1], y[1])}));
        maxHeapUsed = Math.max(maxHeapUsed, ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed());
        long afterGc = 0;
        for (java.lang.management.MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
          if (pool.getType() == java.lang.management.MemoryType.HEAP && pool.getCollectionUsage() != null) {
            afterGc += pool.getCollectionUsage().getUsed();
          }
        }
        maxHeapAfterGc = Math.max(maxHeapAfterGc, afterGc);
        try {
          maxRss = Math.max(maxRss, rss()[0]);
          Thread.sleep(500);
        } catch (InterruptedException | IOException e) {
          return;
        }
      }
    }
  }

  private static final Pattern SHARD = Pattern.compile(".*/(shard-server#\\w+)/shard-(\\d+)#\\w+$");
  private static final Pattern SERVER = Pattern.compile(".*/(shard-server#\\w+)$");
  private static final Pattern FLIGHT = Pattern.compile(".*/(shard-server#\\w+)/flight#\\w+$");

  /** Training in this JVM, the local[2] executor (the run of the earlier reports). */
  private void inProcessRun(SparkSession spark, List<String> args, Path table, long rssAfterCorpus) throws Exception {
    TrainOptions o = TrainOptions.parse(new org.apache.spark.SparkConf(false), args.toArray(new String[0]));
    say("== training: TrainJob.run on local[2], %s", String.join(" ", args.subList(2, args.size())));
    String loadBefore = loadAverage();
    Probe probe = new Probe();
    probe.start();
    TrainJob.Result result;
    try {
      result = TrainJob.run(spark, o);
    } finally {
      probe.stop = true;
      probe.join();
    }
    String loadAfter = loadAverage();
    long trained = result.tokensPerEpoch() * epochs;
    say("   %s", result.summary());
    say("   wall %.1f s, %,.0f tokens/s (corpus tokens x epochs / wall of TrainJob.run, corpus load and hosting included)",
        result.seconds(), trained / result.seconds());
    say("   load average before %s, after %s", loadBefore, loadAfter);
    long rootPeak = TrainJob.hostedMemory().entrySet().stream().filter(e -> e.getKey().lastIndexOf('/') == 0)
        .mapToLong(e -> e.getValue()[1]).max().orElse(0);
    memoryReport(Table.open(table).manifest(), probe.seen, rootPeak);
    long[] rss = rss();
    say("   JVM: peak RSS (VmHWM) %.2f GB (%.2f GB after generating the corpus), peak heap used %.2f GB (polled), %.2f GB after a GC,"
        + " max heap %.2f GB", rss[1] / 1e9, rssAfterCorpus / 1e9, probe.maxHeapUsed / 1e9, probe.maxHeapAfterGc / 1e9,
        Runtime.getRuntime().maxMemory() / 1e9);
  }

  /** What a child JVM reported: its allocator peaks and its RESULT figures. */
  record ChildRun(String label, Map<String, long[]> seen, Map<String, String> result) {
    double num(String key) {
      return Double.parseDouble(result.getOrDefault(key, "-1"));
    }
  }

  /**
   * The training in child JVMs of {@code --child-heap}: with {@code --compare-with}, first with
   * that build's jars, then with this build's, on the same corpus and options; a table of memory
   * per executor (here the local[2] JVM: heap peaks, RSS, hosted bytes) and the time to the
   * encoded corpus for both.
   */
  private void childRuns(List<String> args, Path table) throws Exception {
    List<ChildRun> runs = new ArrayList<>();
    if (compareWith != null) {
      String label = "before (" + compareWith.getFileName() + ")";
      try {
        runs.add(trainInChild(label, classpathWith(compareWith), args));
      } catch (IllegalStateException e) {
        // A build that cannot train in this heap is a result too: the table shows it failed.
        String why = e.getMessage().lines().filter(l -> l.contains("Error") || l.contains("Exception")).findFirst().orElse(e.getMessage());
        say("   %s failed: %s", label, why.replaceFirst("^\\S+ \\S+ ", ""));
        runs.add(new ChildRun(label + ", failed", Map.of(), Map.of()));
      }
      deleteTree(table);
    }
    runs.add(trainInChild("after (this build)", System.getProperty("java.class.path"), args));
    ChildRun after = runs.get(runs.size() - 1);
    memoryReport(Table.open(table).manifest(), after.seen(), (long) after.num("rootPeak"));
    say("== memory per executor (the local[2] JVM: driver and executor in one), -Xmx%s", childHeap);
    say("   %-24s %12s %16s %14s %14s %16s %12s", "build", "train s", "corpus ready s", "heap peak GB", "heap after GC", "hosted peak GB",
        "RSS peak GB");
    for (ChildRun r : runs) {
      if (r.result().isEmpty()) {
        say("   %-24s (failed: see above)", r.label());
        continue;
      }
      say("   %-24s %12.1f %16.1f %14.2f %14.2f %16.2f %12.2f", r.label(), r.num("seconds"), r.num("corpusSeconds"),
          r.num("heapPeak") / 1e9, r.num("heapAfterGcPeak") / 1e9, r.num("rootPeak") / 1e9, r.num("rssPeak") / 1e9);
    }
    if (runs.size() == 2 && !runs.get(0).result().isEmpty()) {
      ChildRun b = runs.get(0);
      say("   after / before: heap peak %.2fx, heap after GC %.2fx, RSS peak %.2fx, time to the encoded corpus %.2fx",
          after.num("heapPeak") / b.num("heapPeak"), after.num("heapAfterGcPeak") / b.num("heapAfterGcPeak"),
          after.num("rssPeak") / b.num("rssPeak"), after.num("corpusSeconds") / b.num("corpusSeconds"));
    }
  }

  /** This JVM's class path with the embstore module jars replaced by those in {@code dir}. */
  static String classpathWith(Path dir) throws IOException {
    List<String> jars = new ArrayList<>();
    try (var s = Files.list(dir)) {
      s.filter(f -> f.getFileName().toString().matches("embstore-(arrow-format|shard-client|spark-job)-.*\\.jar"))
          .forEach(f -> jars.add(f.toAbsolutePath().toString()));
    }
    if (jars.size() != 3) {
      throw new IllegalArgumentException("Cannot compare with " + dir + ": found " + jars
          + " (expected the arrow-format, shard-client and spark-job jars of one build)");
    }
    for (String e : System.getProperty("java.class.path").split(java.io.File.pathSeparator)) {
      if (!e.matches(".*embstore-(arrow-format|shard-client|spark-job)[^/]*\\.jar")) {
        jars.add(e);
      }
    }
    return String.join(java.io.File.pathSeparator, jars);
  }

  private ChildRun trainInChild(String label, String classpath, List<String> args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (!a.startsWith("-Xmx") && !a.startsWith("-Xms") && !a.startsWith("-XX:MaxDirectMemorySize") && !a.startsWith("-agent")) {
        cmd.add(a);
      }
    }
    cmd.addAll(List.of("-Xmx" + childHeap, "-XX:MaxDirectMemorySize=" + childDirect, "-cp", classpath, ScaleTrain.class.getName()));
    cmd.addAll(args);
    say("== training (%s): a child JVM, -Xmx%s, TrainJob.run on local[2], %s", label, childHeap, String.join(" ", args.subList(2, args.size())));
    String loadBefore = loadAverage();
    Path log = work.resolve("train-" + label.replaceAll("[^A-Za-z0-9]+", "_") + ".log");
    Process p = new ProcessBuilder(cmd).redirectError(log.toFile()).start();
    p.getOutputStream().close();
    Map<String, long[]> seen = new java.util.concurrent.ConcurrentSkipListMap<>();
    Map<String, String> result = new LinkedHashMap<>();
    try (java.io.BufferedReader r = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      for (String line; (line = r.readLine()) != null; ) {
        if (line.startsWith("MEM ")) {
          String[] f = line.split(" ");
          seen.put(f[1], new long[] {Long.parseLong(f[2]), Long.parseLong(f[3])});
        } else if (line.startsWith("RESULT ")) {
          Matcher m = Pattern.compile("(\\w+)=(.*?)(?= \\w+=|$)").matcher(line.substring(7));
          while (m.find()) {
            result.put(m.group(1), m.group(2));
          }
        }
      }
    }
    int exit = p.waitFor();
    if (exit != 0 || !result.containsKey("seconds")) {
      List<String> tail = Files.readAllLines(log);
      throw new IllegalStateException("Cannot train (" + label + "): exit " + exit + "; log " + log + ":\n"
          + String.join("\n", tail.subList(Math.max(0, tail.size() - 40), tail.size())));
    }
    say("   %s", result.get("summary"));
    say("   wall %.1f s, %,.0f tokens/s; corpus (vocabulary, sampler, encoded sentences) ready after %.1f s; load average before %s, after %s",
        Double.parseDouble(result.get("seconds")), Long.parseLong(result.get("tokensPerEpoch")) * epochs / Double.parseDouble(result.get("seconds")),
        Double.parseDouble(result.get("corpusSeconds")), loadBefore, loadAverage());
    return new ChildRun(label, seen, result);
  }

  // ------------------------------------------------------------------ cluster (the large run's harness)

  private static final Pattern HOSTS = Pattern.compile("executor (\\S+) on \\S+ hosts shards \\[([0-9, ]+)\\] of both matrices");
  private static final Pattern GC = Pattern.compile("(\\d+)M->(\\d+)M\\((\\d+)M\\)");

  /**
   * The run MLlib cannot do, at whatever size: a standalone cluster of {@code --cluster} Workers
   * (deploy/local-cluster, one executor JVM each), the shaded job jar submitted through SparkSubmit
   * from a driver JVM of {@code --driver-heap} with a GC log; executors of {@code --executor-heap}
   * with {@code --executor-direct} of direct memory for the rows. Measured: the driver's heap peak
   * (before and after collections, from its GC log) and RSS, each executor's RSS peak against the
   * bytes of the rows it hosts (from the driver's hosting lines), tokens/s and the time to build the
   * vocabulary and sampler (the job's log). Then MLlib's Word2Vec on the same corpus.
   */
  private void clusterRun(List<String> trainArgs, Path table) throws Exception {
    long idsSeen = ids;
    Path repo = Paths.get("").toAbsolutePath();
    Path jobJar = LocalCluster.jobJar(repo);
    try (LocalCluster c = LocalCluster.start(repo, work, cluster, workerMemory)) {
      say("== training: standalone cluster of %d Workers (one executor JVM each, heap %s, direct memory %s), driver -Xmx%s,"
          + " the shaded job jar through SparkSubmit: %s", cluster, executorHeap, executorDirect, driverHeap,
          String.join(" ", trainArgs.subList(2, trainArgs.size())));
      String loadBefore = loadAverage();
      Path gcLog = work.resolve("driver-gc.log");
      Path log = work.resolve("driver.log");
      LocalCluster.Run run = c.train(jobJar, trainArgs, driverHeap, executorHeap, executorDirect, gcLog, log);
      String out = run.output();
      Matcher seen = Pattern.compile("vocabulary and sampler: V=[\\d,]+, ([\\d,]+) ids seen").matcher(out);
      idsSeen = seen.find() ? Long.parseLong(seen.group(1).replace(",", "")) : ids;
      if (run.exit() != 0) {
        throw new IllegalStateException("Cannot train on the cluster: exit " + run.exit() + "; " + log + ":\n"
            + out.substring(Math.max(0, out.length() - 6000)));
      }
      out.lines().filter(l -> l.contains("vocabulary and sampler") || l.contains("TrainJob: trained ") || l.contains("hosts shards"))
          .forEach(l -> say("   %s", l.replaceFirst("^(\\d\\d/\\d\\d/\\d\\d )?\\d\\d:\\d\\d:\\d\\d\\s+", "")));
      say("   wall %.1f s (SparkSubmit to exit), load average before %s, after %s", run.wallSeconds(), loadBefore, loadAverage());
      long driverPeak = 0;
      long driverPeakAfter = 0;
      if (Files.exists(gcLog)) {
        Matcher g = GC.matcher(Files.readString(gcLog));
        while (g.find()) {
          driverPeak = Math.max(driverPeak, Long.parseLong(g.group(1)) << 20);
          driverPeakAfter = Math.max(driverPeakAfter, Long.parseLong(g.group(2)) << 20);
        }
      }
      say("== memory: driver heap peak %.0f MB before a collection, %.0f MB after one (GC log; -Xmx%s), driver RSS peak %.2f GB",
          driverPeak / 1e6, driverPeakAfter / 1e6, driverHeap, run.driverRss() / 1e9);
      TableManifest m = Table.open(table).manifest();
      Partitioner p = m.partitioner();
      long state = m.stateColumns().stream().mapToLong(col -> col.width()).sum();
      Matcher h = HOSTS.matcher(out);
      say("   %-10s %10s %16s %14s %8s %16s", "executor", "shards", "rows bytes", "RSS peak", "ratio", "RSS - rows");
      while (h.find()) {
        long rowsBytes = 0;
        for (String sh : h.group(2).split(", ")) {
          // both matrices: the input rows and the context rows of that shard (negative sampling: same count)
          rowsBytes += 2 * p.shardRows(Integer.parseInt(sh)) * (m.valueType().rowBytes(m.dim()) + state * 4);
        }
        long rss = run.executorRss().getOrDefault(h.group(1), -1L);
        say("   %-10s %10s %,16d %,14d %8.3f %,16d", h.group(1), "[" + h.group(2) + "]", rowsBytes, rss,
            (double) rss / rowsBytes, rss - rowsBytes);
      }
      say("   (executor RSS polled every %d ms from /proc VmHWM; rows bytes = rows x C x %d (%s) for both matrices%s)",
          LocalCluster.POLL_MILLIS, m.valueType().bytes(), m.valueType(), state == 0 ? ", SGD: no optimizer state" : " + state");
    }
    if (mllib) {
      mllibRun(trainArgs.get(1), idsSeen);
    }
  }

  /** MLlib's Word2Vec on the same corpus, every id a word (minCount 1), in a JVM of --mllib-heap. */
  private void mllibRun(String corpus, long idsSeen) throws Exception {
    int d = mllibDim > 0 ? mllibDim : mllibDim < 0 ? (int) (((1L << 31) + idsSeen - 1) / idsSeen) : dim;
    say("== Spark MLlib Word2Vec on the same corpus and vocabulary (minCount 1: its vocabulary is the %,d ids seen; vectorSize %d,"
        + " vocabulary x vectorSize = %,d %s 2^31), local[2], -Xmx%s", idsSeen, d, idsSeen * d, idsSeen * d >= (1L << 31) ? ">=" : "<",
        mllibHeap);
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (!a.startsWith("-Xmx") && !a.startsWith("-Xms") && !a.startsWith("-agent")) {
        cmd.add(a);
      }
    }
    cmd.addAll(List.of("-Xmx" + mllibHeap, "-cp", System.getProperty("java.class.path"),
        io.embstore.bench.train.scale.MllibScale.class.getName(), corpus, Integer.toString(d)));
    Path log = work.resolve("mllib.log");
    Process p = new ProcessBuilder(cmd).redirectError(log.toFile()).start();
    p.getOutputStream().close();
    long t0 = System.nanoTime();
    // At a large vocabulary MLlib's driver runs out of heap in a thread that collects task results, and
    // its main thread then waits forever: once its log shows an OutOfMemoryError, take a thread dump
    // (jstack) and end the JVM, so that the report says where MLlib was.
    List<String> mainThread = new java.util.concurrent.CopyOnWriteArrayList<>();
    java.util.concurrent.atomic.AtomicBoolean ended = new java.util.concurrent.atomic.AtomicBoolean();
    Thread watchdog = new Thread(() -> {
      try {
        while (p.isAlive()) {
          Thread.sleep(5000);
          if (Files.exists(log) && Files.readString(log, StandardCharsets.ISO_8859_1).contains("java.lang.OutOfMemoryError")) {
            // A JVM busy collecting garbage may not answer the attach at once: a few attempts.
            for (int attempt = 0; attempt < 6 && mainThread.isEmpty(); attempt++) {
              Thread.sleep(5000);
              Process js = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "jstack").toString(), Long.toString(p.pid()))
                  .redirectErrorStream(true).start();
              String dump = new String(js.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
              Files.writeString(work.resolve("mllib-threads.txt"), dump);
              boolean inMain = false;
              for (String l : dump.split("\n")) {
                if (l.startsWith("\"")) {
                  inMain = l.startsWith("\"main\"");
                } else if (inMain && l.trim().startsWith("at org.apache.spark.")) {
                  mainThread.add(l.trim().substring(3));
                }
              }
            }
            ended.set(p.isAlive());
            p.destroyForcibly();
            return;
          }
        }
      } catch (IOException | InterruptedException e) {
        p.destroyForcibly();
      }
    }, "mllib-oom-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
    String line = null;
    try (java.io.BufferedReader r = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      for (String l; (l = r.readLine()) != null; ) {
        if (l.startsWith("MLLIB ")) {
          line = l;
        }
      }
    }
    int exit = p.waitFor();
    watchdog.join();
    double seconds = (System.nanoTime() - t0) / 1e9;
    String logText = Files.exists(log) ? Files.readString(log, StandardCharsets.ISO_8859_1) : "";
    // An OutOfMemoryError anywhere in MLlib's JVM is the outcome, whatever its main thread printed after
    // it (when Spark stops the context on the error, main reads "SparkContext was shut down").
    if (logText.contains("java.lang.OutOfMemoryError")) {
      Matcher first = Pattern.compile("Exception in thread \"([^\"]+)\" java.lang.OutOfMemoryError").matcher(logText);
      String where;
      if (!mainThread.isEmpty()) {
        // The frames of MLlib's own code and the RDD action it waits for, from the thread dump.
        List<String> frames = mainThread.stream().filter(f -> f.startsWith("org.apache.spark.mllib.") || f.startsWith("org.apache.spark.rdd."))
            .limit(4).toList();
        where = "its main thread was in " + String.join(" < ", frames.isEmpty() ? mainThread.subList(0, Math.min(4, mainThread.size())) : frames);
      } else {
        where = "first in thread " + (first.find() ? first.group(1) : "?") + " (no thread dump: the JVM did not answer jstack)";
      }
      line = String.format(Locale.ROOT, "MLLIB failed with OutOfMemoryError (-Xmx%s) after %.1f s; %s%s", mllibHeap, seconds, where,
          ended.get() ? "; its JVM, still running, ended by the harness" : "");
    }
    say("   %s", line != null ? line : "MLlib's JVM ended (exit " + exit + ") without a result line; see " + log);
  }

  private void memoryReport(TableManifest m, Map<String, long[]> last, long rootPeak) throws IOException {
    Partitioner p = m.partitioner();
    long stateWidth = m.stateColumns().stream().mapToLong(c -> c.width()).sum();
    say("== memory (allocator peaks polled every 0.5 s until the servers closed; rows bytes = rows x C x %d (%s)%s)",
        m.valueType().bytes(), m.valueType(), stateWidth == 0 ? ", SGD: no optimizer state" : " + state");
    say("   %-22s %5s %12s %14s %14s %8s", "server", "shard", "rows", "rows bytes", "peak bytes", "ratio");
    long sumRowsBytes = 0;
    long sumShardPeaks = 0;
    Map<String, Long> serverRowsBytes = new TreeMap<>();
    for (Map.Entry<String, long[]> e : last.entrySet()) {
      Matcher sm = SHARD.matcher(e.getKey());
      if (sm.matches()) {
        int s = Integer.parseInt(sm.group(2));
        long rows = p.shardRows(s);
        long bytes = rows * (m.valueType().rowBytes(m.dim()) + stateWidth * 4);
        sumRowsBytes += bytes;
        sumShardPeaks += e.getValue()[1];
        serverRowsBytes.merge(sm.group(1), bytes, Long::sum);
        say("   %-22s %5d %,12d %,14d %,14d %8.4f", sm.group(1), s, rows, bytes, e.getValue()[1], (double) e.getValue()[1] / bytes);
      }
    }
    for (Map.Entry<String, long[]> e : last.entrySet()) {
      Matcher sv = SERVER.matcher(e.getKey());
      if (sv.matches() && serverRowsBytes.containsKey(sv.group(1))) {
        long rowsBytes = serverRowsBytes.get(sv.group(1));
        long flight = last.entrySet().stream()
            .filter(f -> FLIGHT.matcher(f.getKey()).matches() && f.getKey().startsWith(e.getKey() + "/"))
            .mapToLong(f -> f.getValue()[1]).sum();
        say("   %-22s whole server: peak %,d bytes = %.4f x its rows bytes %,d (Flight buffers peak %,d)",
            sv.group(1), e.getValue()[1], (double) e.getValue()[1] / rowsBytes, rowsBytes, flight);
      }
    }
    say("   all hosted shards: %,d bytes peak for %,d rows bytes (%.4f x); hosting root (servers + routing clients): %,d peak (%.4f x)",
        sumShardPeaks, sumRowsBytes, (double) sumShardPeaks / Math.max(1, sumRowsBytes), rootPeak,
        (double) rootPeak / Math.max(1, sumRowsBytes));
  }

  // ------------------------------------------------------------------ purity

  private void purity(PlantedCorpus planted, int[] counts, Path table) throws Exception {
    SplittableRandom r = new SplittableRandom(seed + 1);
    int g = counts.length;
    Map<String, long[]> classes = new LinkedHashMap<>();
    // Most frequent: sort (count, group) descending.
    long[] packed = new long[g];
    for (int i = 0; i < g; i++) {
      packed[i] = ((long) counts[i] << 32) | i;
    }
    Arrays.sort(packed);
    long[] top = new long[Math.min(topGroups, g)];
    for (int i = 0; i < top.length; i++) {
      top[i] = packed[g - 1 - i] & 0xffffffffL;
    }
    classes.put(String.format(Locale.ROOT, "top %d groups", top.length), top);
    classes.put(String.format(Locale.ROOT, "random, >= %d sentences", minSentences), sample(counts, minSentences, Integer.MAX_VALUE, randomGroups, r));
    int[] edges = {1, 2, 5, 20, 100, Integer.MAX_VALUE};
    for (int e = 0; e + 1 < edges.length; e++) {
      classes.put("random, " + bucketName(edges[e], edges[e + 1]) + " sentences", sample(counts, edges[e], edges[e + 1], bucketGroups, r));
    }
    // Queries: `members` members of every tested group.
    List<Long> queryIds = new ArrayList<>();
    Map<String, int[]> classQueries = new LinkedHashMap<>();
    for (Map.Entry<String, long[]> c : classes.entrySet()) {
      int from = queryIds.size();
      for (long grp : c.getValue()) {
        int first = r.nextInt(k);
        for (int m = 0; m < members; m++) {
          queryIds.add(planted.id(grp, (first + m) % k));
        }
      }
      classQueries.put(c.getKey(), new int[] {from, queryIds.size()});
    }
    long[] q = queryIds.stream().mapToLong(Long::longValue).toArray();
    int kn = k - 1;
    double baseline = (double) kn / (ids - 1);
    say("== purity: the %d exact cosine nearest neighbours (all V rows) of %d member(s) of each tested group; purity = fraction in the same group; random baseline (k-1)/(V-1) = %.2e",
        kn, members, baseline);
    NearestScan.Result res;
    try (BufferAllocator a = new RootAllocator()) {
      res = NearestScan.run(table, q, kn, 2, a);
    }
    say("   %d queries scanned against %,d rows in %.1f s (%.2f G multiply-adds/s)", q.length, ids, res.seconds(),
        (double) q.length * ids * dim / res.seconds() / 1e9);
    say("   %-30s %7s %8s %12s %9s %12s", "groups", "tested", "queries", "sentences", "purity", "x random");
    for (Map.Entry<String, int[]> c : classQueries.entrySet()) {
      int from = c.getValue()[0];
      int to = c.getValue()[1];
      if (from == to) {
        say("   %-30s %7d %8d %12s %9s %12s", c.getKey(), 0, 0, "-", "-", "-");
        continue;
      }
      long hits = 0;
      double sentences = 0;
      for (int i = from; i < to; i++) {
        long grp = planted.groupOf(q[i]);
        sentences += counts[(int) grp];
        for (long n : res.ids()[i]) {
          if (n >= 0 && planted.groupOf(n) == grp) {
            hits++;
          }
        }
      }
      double purity = (double) hits / ((long) (to - from) * kn);
      say("   %-30s %7d %8d %12.1f %9.4f %12.0f", c.getKey(), classes.get(c.getKey()).length, to - from,
          sentences / (to - from), purity, purity / baseline);
    }
    servedCheck(table, q, res);
  }

  /** Up to n groups with lo <= count < hi, uniformly at random. */
  private static long[] sample(int[] counts, int lo, int hi, int n, SplittableRandom r) {
    int[] eligible = java.util.stream.IntStream.range(0, counts.length).filter(i -> counts[i] >= lo && counts[i] < hi).toArray();
    for (int i = 0; i < Math.min(n, eligible.length); i++) {
      int j = i + r.nextInt(eligible.length - i);
      int t = eligible[i];
      eligible[i] = eligible[j];
      eligible[j] = t;
    }
    return Arrays.stream(eligible, 0, Math.min(n, eligible.length)).asLongStream().toArray();
  }

  /** Repeats a few queries through shard servers serving the table, as {@code embstore serve} does. */
  private void servedCheck(Path table, long[] q, NearestScan.Result res) throws Exception {
    int n = Math.min(servedCheck, q.length);
    if (n == 0) {
      return;
    }
    TableManifest m = Table.open(table).manifest();
    int p = m.numShards();
    int[] even = java.util.stream.IntStream.range(0, p).filter(s -> s % 2 == 0).toArray();
    int[] odd = java.util.stream.IntStream.range(0, p).filter(s -> s % 2 == 1).toArray();
    try (RootAllocator root = new RootAllocator();
        ShardServer a = ShardServer.builder().table(table).shards(even).host("127.0.0.1").allocator(root).start();
        ShardServer b = ShardServer.builder().table(table).shards(odd).host("127.0.0.1").allocator(root).start();
        EmbeddingClient c = EmbeddingClient.builder().table(table).endpoints(List.of(a.endpoint(), b.endpoint()))
            .allocator(root).deadline(java.time.Duration.ofMinutes(5)).build()) {
      long t0 = System.nanoTime();
      int same = 0;
      int total = 0;
      int kn = res.ids()[0].length;
      for (int i = 0; i < n; i++) {
        Set<Long> scan = new HashSet<>();
        for (long id : res.ids()[i]) {
          scan.add(id);
        }
        for (Neighbor nb : c.nearest(q[i], kn)) {
          total++;
          if (scan.contains(nb.id())) {
            same++;
          }
        }
      }
      double secs = (System.nanoTime() - t0) / 1e9;
      say("   check: %d queries through EmbeddingClient.nearest on 2 shard servers serving the table: %d of %d neighbours equal the scan's (%.2f s per query)",
          n, same, total, secs / n);
    }
  }

  // ------------------------------------------------------------------ helpers

  private static String bucketName(int lo, int hi) {
    if (hi == Integer.MAX_VALUE) {
      return lo + "+";
    }
    return hi - lo == 1 ? Integer.toString(lo) : lo + "-" + (hi - 1);
  }

  static String loadAverage() {
    try {
      String[] f = Files.readString(Paths.get("/proc/loadavg")).split(" ");
      return f[0] + " " + f[1] + " " + f[2];
    } catch (IOException e) {
      return "unknown";
    }
  }

  /** {VmRSS, VmHWM} of this process in bytes. */
  static long[] rss() throws IOException {
    long[] out = {-1, -1};
    for (String l : Files.readAllLines(Paths.get("/proc/self/status"))) {
      if (l.startsWith("VmRSS:")) {
        out[0] = Long.parseLong(l.replaceAll("[^0-9]", "")) * 1024;
      } else if (l.startsWith("VmHWM:")) {
        out[1] = Long.parseLong(l.replaceAll("[^0-9]", "")) * 1024;
      }
    }
    return out;
  }

  static long peakRss() throws IOException {
    return rss()[1];
  }

  private static long treeBytes(Path dir) throws IOException {
    try (var s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
    }
  }

  static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (var s = Files.walk(dir)) {
      for (Path f : (Iterable<Path>) s.sorted(java.util.Comparator.reverseOrder())::iterator) {
        Files.delete(f);
      }
    }
  }
}
