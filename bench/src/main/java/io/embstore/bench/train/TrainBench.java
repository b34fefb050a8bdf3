package io.embstore.bench.train;

import io.embstore.format.Table;
import io.embstore.format.Vocabulary;
import io.embstore.spark.TrainJob;
import io.embstore.spark.TrainOptions;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.zip.GZIPInputStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.mllib.feature.Word2Vec;
import org.apache.spark.mllib.feature.Word2VecModel;
import org.apache.spark.sql.SparkSession;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Training benchmark: embstore's distributed skip-gram against Spark MLlib's Word2Vec and gensim in
 * the same run, on {@code ../shared/data/corpus/prose4.txt.gz} cut into lines of 1,000 tokens, dim
 * 100, window 5, 5 negatives, min count 5, sample 1e-3, 5 epochs, 2 cores. Each system runs in its
 * own process (a child JVM, or Debian's /usr/bin/python3 for gensim) so that its peak RSS is its own.
 * Prints tokens/s, wall time, CPU seconds of the process while it trained (less sensitive than wall
 * time to other load on the machine), peak RSS and analogy accuracy (3CosAdd, 30,000 most frequent
 * words) and the ratios.
 *
 * <p>Run: {@code bench/run train.TrainBench [--epochs N] [--skip mllib,gensim] [--tokens N]
 * [--train-args "--batch-tokens 65536 ..."] [--also-args "--hs ..."] [--jfr FILE] [--mllib-partitions N] [--mllib-seed N]} ({@code --help}
 * prints the list). {@code --tokens} trains on the first N tokens only (a quick configuration for
 * before/after iterations); {@code --train-args} are extra {@code TrainJob} options for embstore;
 * {@code --also-args} trains embstore a second time in the same run with other options (row
 * {@code embstore2}); {@code --jfr} records the embstore child JVM with Java Flight Recorder
 * (profile settings). The Spark children run in {@code local[2]}; {@code
 * BENCH_JAVA_OPTS="-Dembstore.bench.master=local[1]"} sets another master.
 *
 * <p>{@code --cluster N} also trains embstore (with {@code --train-args}) on a standalone cluster
 * of N Workers, one 1-core executor JVM each ({@link LocalCluster}: deploy/local-cluster, the
 * shaded job jar through SparkSubmit, {@code --total-executor-cores N}; needs {@code mvn install
 * -DskipTests} first), row {@code cluster-N}: tokens/s and wall over the job's own time (the
 * summary's {@code job S s in all}, the span the local rows measure), CPU seconds of the driver
 * and executor JVMs over their whole lives (polled from /proc, JVM and Spark start included, so a
 * little more than the local rows count), as peak RSS the sum of the JVMs' peaks (each is printed
 * below the table), the analogy accuracy of the table it wrote, and the share of the rows pulled and pushed
 * that went through Arrow Flight (the other executor's shards) rather than in process. Each
 * executor hosts about 1/N of the shards of both matrices. The local embstore child prints the
 * same share (0 % with co-located shards).
 */
public final class TrainBench {
  private TrainBench() {}

  public static void main(String[] args) throws Exception {
    if (args.length > 0 && args[0].equals("child")) {
      child(args);
      return;
    }
    if (Arrays.asList(args).contains("--help") || args.length % 2 != 0) {
      System.out.println(String.join("\n",
          "Usage: bench/run train.TrainBench [--epochs N] [--skip mllib,gensim] [--tokens N] [--cluster N]",
          "                                  [--train-args \"TrainJob options\"] [--also-args \"TrainJob options\"] [--jfr FILE]",
          "  --epochs N        passes over the corpus (default 5, the issue's setting)",
          "  --skip LIST       systems not to run: embstore, mllib, gensim (comma-separated)",
          "  --tokens N        train on the first N corpus tokens only (default: all 3.8 M)",
          "  --cluster N       also train embstore on a standalone cluster of N Workers, one 1-core executor each (row cluster-N;",
          "                    needs mvn install -DskipTests); --skip embstore leaves out the local row only",
          "  --train-args S    extra TrainJob options for embstore, e.g. \"--batch-tokens 65536\"",
          "  --also-args S     train embstore a second time with these options instead (row embstore2)",
          "  --jfr FILE        record the embstore child JVM with Java Flight Recorder",
          "  --mllib-partitions N  MLlib Word2Vec's numPartitions (default 2, the issue's setting)",
          "  --mllib-seed N    MLlib Word2Vec's seed (default 1; MLlib is deterministic for a seed)"));
      return;
    }
    Map<String, String> opts = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      opts.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    int epochs = Integer.parseInt(opts.getOrDefault("epochs", "5"));
    long limit = Long.parseLong(opts.getOrDefault("tokens", "0"));
    String trainArgs = opts.getOrDefault("train-args", "").trim();
    String alsoArgs = opts.get("also-args");
    jfr = opts.get("jfr");
    List<String> skip = Arrays.asList(opts.getOrDefault("skip", "").split(","));
    int cluster = Integer.parseInt(opts.getOrDefault("cluster", "0"));
    if (cluster < 0) {
      throw new IllegalArgumentException("Cannot train on a cluster of " + cluster + " Workers (need at least 1; 0: no cluster row)");
    }
    Path shared = Paths.get(System.getProperty("embstore.shared.dir", "../shared"));
    Path gz = shared.resolve("data/corpus/prose4.txt.gz");
    Path questions = shared.resolve("data/eval/derived-analogies.txt");
    Path work = Paths.get("bench/results/train").toAbsolutePath();
    Files.createDirectories(work);
    Path corpus = work.resolve(limit > 0 ? "prose4-lines-" + limit + ".txt" : "prose4-lines.txt");
    long tokens = cut(gz, corpus, limit);
    System.out.printf(Locale.ROOT, "corpus: %,d tokens, lines of 1,000; dim 100, window 5, negatives 5, min count 5, sample 1e-3, %d epochs, 2 cores%s%n",
        tokens, epochs, (trainArgs.isEmpty() ? "" : "; embstore options: " + trainArgs)
            + (alsoArgs == null ? "" : "; embstore2 options: " + alsoArgs.trim())
            + "; MLlib numPartitions " + opts.getOrDefault("mllib-partitions", "2") + ", seed " + opts.getOrDefault("mllib-seed", "1"));
    System.out.println("load average at start: " + loadAverage());
    List<String[]> results = new ArrayList<>();
    if (!skip.contains("embstore")) {
      results.add(runChild("embstore", corpus, questions, work, epochs, tokens, trainArgs));
    }
    if (alsoArgs != null) {
      String[] r = runChild("embstore", corpus, questions, work, epochs, tokens, alsoArgs.trim());
      r[0] = "embstore2";
      results.add(r);
    }
    ClusterRow clusterRow = null;
    if (cluster > 0) {
      clusterRow = clusterRun(cluster, corpus, questions, work, epochs, tokens, trainArgs);
      results.add(clusterRow.result);
    }
    if (!skip.contains("mllib")) {
      results.add(runChild("mllib", corpus, questions, work, epochs, tokens, opts.getOrDefault("mllib-partitions", "2") + " " + opts.getOrDefault("mllib-seed", "1")));
    }
    if (!skip.contains("gensim")) {
      String[] g = gensim(corpus, questions, epochs, tokens);
      if (g != null) {
        results.add(g);
      }
    }
    System.out.println();
    System.out.printf(Locale.ROOT, "%-10s %14s %10s %10s %10s %10s%n", "system", "tokens/s", "wall s", "cpu s", "peak RSS", "accuracy");
    Map<String, double[]> byName = new HashMap<>();
    for (String[] r : results) {
      double tps = Double.parseDouble(r[1]);
      double wall = Double.parseDouble(r[2]);
      double rss = Double.parseDouble(r[3]);
      double acc = Double.parseDouble(r[4]);
      double cpu = Double.parseDouble(r[5]);
      byName.put(r[0], new double[] {tps, wall, rss, acc, cpu});
      System.out.printf(Locale.ROOT, "%-10s %,14.0f %10.1f %10.1f %7.2f GB %9.2f%%%n", r[0], tps, wall, cpu, rss / 1e9, 100 * acc);
    }
    if (clusterRow != null) {
      System.out.println(clusterRow.note);
    }
    for (String mine : List.of("embstore", "embstore2", "cluster-" + cluster)) {
      double[] ours = byName.get(mine);
      for (String other : mine.startsWith("cluster") ? List.of("embstore", "gensim") : List.of("mllib", "gensim")) {
        double[] o = byName.get(other);
        if (ours != null && o != null) {
          System.out.printf(Locale.ROOT, "%s / %s: tokens/s %.2fx, accuracy %.2fx, cpu seconds %.2fx%n", mine, other,
              ours[0] / o[0], ours[3] / o[3], ours[4] / o[4]);
        }
      }
    }
    System.out.println("load average at end: " + loadAverage());
  }

  private static String jfr;

  /** /proc/loadavg's 1, 5 and 15 minute figures: the benchmark shares the machine. */
  static String loadAverage() {
    try {
      String[] f = Files.readString(Paths.get("/proc/loadavg")).trim().split(" ");
      return f[0] + " " + f[1] + " " + f[2];
    } catch (IOException e) {
      return "unknown";
    }
  }

  /** prose4 (one line) as lines of 1,000 tokens, at most {@code limit} (0: all); returns the token count. */
  static long cut(Path gz, Path out, long limit) throws IOException {
    long words = 0;
    try (InputStream in = new GZIPInputStream(Files.newInputStream(gz), 1 << 16);
        OutputStream o = new BufferedOutputStream(Files.newOutputStream(out), 1 << 16)) {
      byte[] buf = new byte[1 << 16];
      int n;
      boolean inWord = false;
      while ((n = in.read(buf)) > 0 && (limit <= 0 || words < limit)) {
        for (int i = 0; i < n && (limit <= 0 || words < limit); i++) {
          byte b = buf[i];
          if (b == ' ' || b == '\n') {
            if (inWord) {
              words++;
              o.write(words % 1000 == 0 ? '\n' : ' ');
              inWord = false;
            }
          } else {
            o.write(b);
            inWord = true;
          }
        }
      }
      if (inWord) {
        words++;
        o.write('\n');
      }
    }
    return words;
  }

  /** Runs one system in a child JVM; {@code trainArgs}: embstore's extra options, or MLlib's "numPartitions seed". */
  private static String[] runChild(String system, Path corpus, Path questions, Path work, int epochs, long tokens,
      String trainArgs) throws Exception {
    String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
    List<String> cmd = new ArrayList<>(List.of(java, "-Xmx6g"));
    cmd.addAll(Arrays.asList(flags()));
    if (jfr != null && system.equals("embstore")) {
      cmd.add("-XX:StartFlightRecording=settings=profile,filename=" + jfr);
    }
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), TrainBench.class.getName(), "child", system,
        corpus.toString(), questions.toString(), work.toString(), Integer.toString(epochs), Long.toString(tokens),
        trainArgs));
    System.out.println("== " + system);
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String[] result = null;
    try (var r = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        if (line.startsWith("RESULT ")) {
          result = line.substring(7).split(" ");
        } else if (line.contains("train: epoch") || line.contains("trained") || line.contains("seconds: plan") || line.startsWith("  ")) {
          System.out.println("   " + line);
        }
      }
    }
    if (p.waitFor() != 0 || result == null) {
      throw new IllegalStateException("Cannot benchmark " + system + ": child exited with " + p.exitValue());
    }
    return result;
  }

  private static String[] flags() {
    return java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
        .filter(a -> a.startsWith("--add-") || a.startsWith("-XX:+Ignore") || a.startsWith("-Dio.netty") || a.startsWith("-Dembstore"))
        .toArray(String[]::new);
  }

  static long peakRss() throws IOException {
    for (String l : Files.readAllLines(Paths.get("/proc/self/status"))) {
      if (l.startsWith("VmHWM:")) {
        return Long.parseLong(l.replaceAll("[^0-9]", "")) * 1024;
      }
    }
    return -1;
  }

  private static void child(String[] a) throws Exception {
    String system = a[1];
    Path corpus = Paths.get(a[2]);
    Path questions = Paths.get(a[3]);
    Path work = Paths.get(a[4]);
    int epochs = Integer.parseInt(a[5]);
    long tokens = Long.parseLong(a[6]);
    SparkSession spark = SparkSession.builder().master(System.getProperty("embstore.bench.master", "local[2]")).appName("bench " + system)
        .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1").config("spark.executor.heartbeatInterval", "2s")
        .config("spark.driver.maxResultSize", "0").getOrCreate();
    var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
    long cpu0 = os.getProcessCpuTime();
    long t0 = System.nanoTime();
    List<String> words;
    float[] vectors;
    int dim = 100;
    double seconds;
    double cpuSeconds;
    if (system.equals("embstore")) {
      Path out = work.resolve("embstore-table");
      deleteTree(out);
      List<String> targs = new ArrayList<>(List.of("--input", corpus.toString(), "--output", out.toString(),
          "--epochs", Integer.toString(epochs), "--checkpoint-minutes", "0"));
      if (a.length > 7 && !a[7].isBlank()) {
        targs.addAll(Arrays.asList(a[7].trim().split("\\s+")));
      }
      TrainOptions o = TrainOptions.parse(new org.apache.spark.SparkConf(false), targs.toArray(new String[0]));
      TrainJob.run(spark, o);
      seconds = (System.nanoTime() - t0) / 1e9;
      cpuSeconds = (os.getProcessCpuTime() - cpu0) / 1e9;
      TableVectors tv = TableVectors.read(out, dim);
      words = tv.words;
      vectors = tv.vectors;
    } else {
      JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
      JavaRDD<Iterable<String>> sentences = sc.textFile(corpus.toString(), 2)
          .map(l -> (Iterable<String>) Arrays.asList(l.trim().split("\\s+")));
      Word2VecModel model = new Word2Vec().setVectorSize(dim).setWindowSize(5).setMinCount(5)
          .setNumPartitions(Integer.parseInt(a[7].trim().split(" ")[0])).setNumIterations(epochs)
          .setSeed(Long.parseLong(a[7].trim().split(" ")[1])).fit(sentences);
      seconds = (System.nanoTime() - t0) / 1e9;
      cpuSeconds = (os.getProcessCpuTime() - cpu0) / 1e9;
      Map<String, float[]> vecs = CollectionConverters.asJava(model.getVectors());
      Map<String, Long> counts = new HashMap<>();
      for (String line : Files.readAllLines(corpus)) {
        for (String w : line.trim().split("\\s+")) {
          counts.merge(w, 1L, Long::sum);
        }
      }
      words = new ArrayList<>(vecs.keySet());
      words.sort(Comparator.comparingLong((String w) -> -counts.getOrDefault(w, 0L)).thenComparing(w -> w));
      vectors = new float[words.size() * dim];
      for (int i = 0; i < words.size(); i++) {
        System.arraycopy(vecs.get(words.get(i)), 0, vectors, i * dim, dim);
      }
    }
    long[] acc = Analogies.evaluate(words, vectors, dim, questions, 30_000);
    System.out.printf(Locale.ROOT, "  %s: %d of %d analogies correct%n", system, acc[0], acc[1]);
    System.out.printf(Locale.ROOT, "RESULT %s %.1f %.2f %d %.5f %.2f%n", system, tokens * epochs / seconds, seconds, peakRss(),
        acc[1] == 0 ? 0.0 : (double) acc[0] / acc[1], cpuSeconds);
    spark.stop();
  }

  /** A trained table's tokens (id order) and rows, back to back. */
  private record TableVectors(List<String> words, float[] vectors) {
    static TableVectors read(Path table, int dim) throws IOException {
      try (BufferAllocator al = new RootAllocator()) {
        Table t = Table.open(table);
        Vocabulary v = t.vocabulary(al);
        List<String> words = v.tokens();
        float[] vectors = new float[words.size() * dim];
        t.forEachRowInIdOrder(al, false, (first, n, buf, off) -> {
          for (int i = 0; i < n * dim; i++) {
            vectors[(int) (first * dim) + i] = buf.getFloat(off + 4L * i);
          }
        });
        return new TableVectors(words, vectors);
      }
    }
  }

  /** The cluster row's result (as a child's RESULT fields) and the lines printed below the table. */
  private record ClusterRow(String[] result, String note) {}

  private static final String DRIVER_HEAP = "2g";
  private static final String EXECUTOR_HEAP = "2g";
  private static final String EXECUTOR_DIRECT = "2g";
  private static final java.util.regex.Pattern JOB_SECONDS = java.util.regex.Pattern.compile("; job (\\d+\\.\\d) s in all");
  private static final java.util.regex.Pattern ROUTES = java.util.regex.Pattern.compile(
      "rows pulled\\+pushed: ([\\d,]+) in process, ([\\d,]+) over Flight \\((\\d+\\.\\d) % over Flight\\)");

  /**
   * Trains embstore on a standalone cluster of {@code workers} Workers (see the class javadoc) and
   * evaluates the table it wrote; the cluster is stopped before this returns.
   */
  private static ClusterRow clusterRun(int workers, Path corpus, Path questions, Path work, int epochs, long tokens,
      String trainArgs) throws Exception {
    String name = "cluster-" + workers;
    System.out.printf(Locale.ROOT, "== %s: standalone cluster of %d Workers, one 1-core executor JVM each (heap %s, direct memory %s),"
        + " driver -Xmx%s, the shaded job jar through SparkSubmit%n", name, workers, EXECUTOR_HEAP, EXECUTOR_DIRECT, DRIVER_HEAP);
    Path repo = Paths.get("").toAbsolutePath();
    Path jobJar = LocalCluster.jobJar(repo);
    Path clusterWork = work.resolve(name);
    Files.createDirectories(clusterWork);
    Path out = clusterWork.resolve("embstore-table");
    deleteTree(out);
    List<String> jobArgs = new ArrayList<>(List.of("--input", corpus.toString(), "--output", out.toString(),
        "--epochs", Integer.toString(epochs), "--checkpoint-minutes", "0"));
    if (!trainArgs.isBlank()) {
      jobArgs.addAll(Arrays.asList(trainArgs.trim().split("\\s+")));
    }
    String loadBefore = loadAverage();
    LocalCluster.Run run;
    try (LocalCluster c = LocalCluster.start(repo, clusterWork, workers, "3g")) {
      run = c.train(jobJar, jobArgs, DRIVER_HEAP, EXECUTOR_HEAP, EXECUTOR_DIRECT, null, clusterWork.resolve("driver.log"));
    }
    String log = run.output();
    if (run.exit() != 0) {
      throw new IllegalStateException("Cannot benchmark " + name + ": the driver exited with " + run.exit() + "; " + run.log()
          + ":\n" + log.substring(Math.max(0, log.length() - 4000)));
    }
    log.lines().filter(l -> l.contains("TrainJob: trained ") || l.contains("hosts shards") || l.contains("routing client"))
        .forEach(l -> System.out.println("   " + l.replaceFirst("^(\\d\\d/\\d\\d/\\d\\d )?\\d\\d:\\d\\d:\\d\\d\\s+", "")));
    java.util.regex.Matcher job = JOB_SECONDS.matcher(log);
    java.util.regex.Matcher routes = ROUTES.matcher(log);
    if (!job.find() || !routes.find()) {
      throw new IllegalStateException("Cannot benchmark " + name + ": no summary line with the job's seconds and the rows by path in "
          + run.log());
    }
    double seconds = Double.parseDouble(job.group(1));
    TableVectors tv = TableVectors.read(out, 100);
    long[] acc = Analogies.evaluate(tv.words, tv.vectors, 100, questions, 30_000);
    System.out.printf(Locale.ROOT, "  %s: %d of %d analogies correct%n", name, acc[0], acc[1]);
    StringBuilder cpu = new StringBuilder();
    run.executorCpuSeconds().forEach((id, secs) -> cpu.append(String.format(Locale.ROOT, ", executor %s %.1f s (RSS peak %.2f GB)",
        id, secs, run.executorRss().getOrDefault(id, -1L) / 1e9)));
    String note = String.format(Locale.ROOT, "%s: rows pulled+pushed: %s in process, %s over Flight (%s %% over Flight); cpu s: driver"
        + " %.1f (RSS peak %.2f GB)%s (whole JVM lives, polled from /proc every %d ms); SparkSubmit to exit %.1f s;"
        + " load average before %s, after %s", name, routes.group(1), routes.group(2), routes.group(3), run.driverCpuSeconds(),
        run.driverRss() / 1e9, cpu, LocalCluster.POLL_MILLIS, run.wallSeconds(), loadBefore, loadAverage());
    String[] result = {name, String.format(Locale.ROOT, "%.1f", tokens * epochs / seconds), Double.toString(seconds),
        Long.toString(run.driverRss() + run.executorRss().values().stream().mapToLong(Long::longValue).sum()),
        String.format(Locale.ROOT, "%.5f", acc[1] == 0 ? 0.0 : (double) acc[0] / acc[1]),
        String.format(Locale.ROOT, "%.2f", run.cpuSeconds())};
    return new ClusterRow(result, note);
  }

  private static String[] gensim(Path corpus, Path questions, int epochs, long tokens) throws Exception {
    Path python = Paths.get("/usr/bin/python3");
    if (!Files.isExecutable(python)) {
      System.out.println("== gensim: skipped (no /usr/bin/python3)");
      return null;
    }
    String script = String.join("\n",
        "import sys, time, resource",
        "try:",
        "    from gensim.models import Word2Vec",
        "except ImportError:",
        "    print('SKIP'); sys.exit(0)",
        "r0 = resource.getrusage(resource.RUSAGE_SELF)",
        "t0 = time.time()",
        "m = Word2Vec(corpus_file=sys.argv[1], vector_size=100, window=5, negative=5, min_count=5, sample=1e-3,"
            + " epochs=int(sys.argv[3]), workers=2, sg=1, seed=1)",
        "secs = time.time() - t0",
        "r1 = resource.getrusage(resource.RUSAGE_SELF)",
        "cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime",
        "acc = m.wv.evaluate_word_analogies(sys.argv[2], restrict_vocab=30000)[0]",
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024",
        "print('RESULT gensim %.1f %.2f %d %.5f %.2f' % (int(sys.argv[4]) * int(sys.argv[3]) / secs, secs, rss, acc, cpu))");
    System.out.println("== gensim");
    Process p = new ProcessBuilder(python.toString(), "-c", script, corpus.toString(), questions.toString(),
        Integer.toString(epochs), Long.toString(tokens)).redirectErrorStream(true).start();
    String[] result = null;
    try (var r = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        if (line.startsWith("RESULT ")) {
          result = line.substring(7).split(" ");
        } else if (line.equals("SKIP")) {
          System.out.println("   skipped: python3-gensim is not installed");
        }
      }
    }
    p.waitFor();
    return result;
  }

  private static void deleteTree(Path p) throws IOException {
    if (!Files.exists(p)) {
      return;
    }
    try (var s = Files.walk(p)) {
      s.sorted(Comparator.reverseOrder()).forEach(x -> x.toFile().delete());
    }
  }
}
