package io.embstore.spark;

import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TableStorage;
import io.embstore.format.Tokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Distributed skip-gram training: {@code spark-submit --class io.embstore.spark.TrainJob JOB_JAR
 * --input ... --output DIR ...} (options: {@link TrainOptions}; design: {@code docs/training.md}).
 *
 * <p>The driver checks where the run starts ({@link Resume}: a new output, or the checkpoint that
 * {@code --resume} continues, validated against the options), builds the vocabulary and the
 * encoded corpus ({@link Corpus}), starts the hosting of both matrices ({@link #host}: {@link
 * ShardHosting}, shard servers inside the executors), then runs the {@link RoundLoop}: each epoch
 * as rounds of corpus partitions, one Spark job for the rounds that end before the next checkpoint
 * is due ({@link #roundsPerJob}), each partition trained by a {@link TrainTask}. Between rounds, at
 * most every {@code --checkpoint-minutes} and at every epoch end, it writes a checkpoint whose
 * manifest records the epoch and the partitions done; {@code --resume} restarts from there, and a
 * {@link Recovery} re-hosts every shard from there when shard servers are lost.
 */
public final class TrainJob {
  private static final Logger LOG = LoggerFactory.getLogger(TrainJob.class);
  static final String CONTEXT_DIR = "_context";
  static final String P_EPOCH = "train.epoch";
  static final String P_DONE = "train.partitionsDone";
  static final String P_PARTITIONS = "train.partitions";
  /** {@link Corpus#partitionFingerprint()} of the run that wrote a checkpoint. */
  static final String P_CORPUS = "train.corpus";
  static final String P_COMPLETE = "train.complete";
  static final String P_TOKENS = "train.tokensTrained";
  /**
   * negative-sampling, hierarchical-softmax or hierarchical-softmax+negative-sampling ({@link
   * #objective}): what the context matrix's rows mean.
   */
  static final String P_OBJECTIVE = "train.objective";
  /**
   * sgd or rowwise-adagrad ({@code --optimizer}): whether the shards carry Adagrad accumulators
   * that the next steps depend on.
   */
  static final String P_OPTIMIZER = "train.optimizer";
  static final String P_SHUFFLE = "train.shuffle";

  private TrainJob() {}

  public static void main(String[] args) throws Exception {
    SparkConf conf = new SparkConf();
    TrainOptions o;
    try {
      o = TrainOptions.parse(conf, args);
    } catch (RuntimeException e) {
      System.err.println("embstore train: " + e.getMessage());
      System.exit(2);
      return;
    }
    SparkSession.Builder b = SparkSession.builder().appName("embstore train").config(conf);
    if (o.master != null) {
      b.master(o.master);
    }
    SparkSession spark = b.getOrCreate();
    try {
      Result r = run(spark, o);
      System.out.println(r.summary());
    } finally {
      spark.stop();
    }
  }

  /**
   * Allocated and peak bytes of the allocators of the shards hosted in this JVM (in local mode: the
   * driver's), by allocator path ({@code "/ROOT/shard-server#1b2c3d/shard-1#4e5f"}: names with
   * identity hashes), {@code {allocated, peak}} each. For benchmarks: the shard servers
   * close with the run, so poll while it trains.
   */
  public static Map<String, long[]> hostedMemory() {
    return ExecutorHost.memory();
  }

  /**
   * Names what the next Spark jobs run: the job description, and the call site that Spark names
   * their stages after (in the UI, the event log and listeners), instead of a line of this file.
   */
  static void describe(JavaSparkContext sc, String what) {
    sc.setJobDescription(what);
    sc.setCallSite(what);
  }

  /**
   * Refuses Spark settings the job cannot work with, by name: dynamic allocation (executors host the
   * shards for the whole job; removing an idle one would lose its shards) and speculation (a
   * speculative copy of a training task would push a partition's updates a second time, at once).
   */
  static void checkConf(SparkConf conf) {
    if (conf.getBoolean("spark.dynamicAllocation.enabled", false)) {
      throw new IllegalArgumentException("Cannot train with spark.dynamicAllocation.enabled=true: the executors host the shards"
          + " for the whole job, and dynamic allocation removes idle ones (set it to false; size the job with"
          + " --total-executor-cores or spark.executor.instances, and --min-executors)");
    }
    if (conf.getBoolean("spark.speculation", false)) {
      throw new IllegalArgumentException("Cannot train with spark.speculation=true: a speculative copy of a training task would"
          + " push the updates of its corpus partition a second time, at once (set it to false)");
    }
  }

  /**
   * Attempts Spark gives a task: spark.task.maxFailures on a cluster (default 4), F of {@code
   * local[N,F]}, 1 in other local modes.
   */
  static int maxTaskAttempts(JavaSparkContext sc) {
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("local\\[[^,\\]]+,\\s*(\\d+)\\]").matcher(sc.master());
    if (m.matches()) {
      return Integer.parseInt(m.group(1));
    }
    if (sc.master().startsWith("local") && !sc.master().startsWith("local-cluster")) {
      return 1;
    }
    return sc.getConf().getInt("spark.task.maxFailures", 4);
  }

  /** A fresh 256-bit secret for the shard servers of one job (URL-safe Base64). */
  static String secret() {
    byte[] b = new byte[32];
    new java.security.SecureRandom().nextBytes(b);
    return java.util.Base64.getUrlEncoder().withoutPadding().encodeToString(b);
  }

  /** Bytes of heap an executor JVM has: spark.executor.memory, or the driver's in local mode. */
  static long executorHeap(JavaSparkContext sc) {
    if (sc.master().startsWith("local") && !sc.master().startsWith("local-cluster")) {
      return Runtime.getRuntime().maxMemory();
    }
    return sc.getConf().getSizeAsBytes("spark.executor.memory", "1g");
  }

  /**
   * Hierarchical softmax keeps word2vec's Huffman tree in every executor: 8 bytes per id (12 for id
   * input) once built, {@link HuffmanTree#BUILD_BYTES_PER_ID} while it is built from the counts.
   * Refused above {@link HuffmanTree#MAX_IDS} ids, or when building it would take more than half of
   * an executor's heap.
   */
  static void checkHuffmanFits(long rows, long heapBytes) {
    if (rows > HuffmanTree.MAX_IDS) {
      throw new IllegalArgumentException("Cannot train with --hs: V = " + rows + " ids is above the Huffman tree's limit of "
          + HuffmanTree.MAX_IDS + " (train with negative sampling, which keeps no per-id state)");
    }
    long need = rows * HuffmanTree.BUILD_BYTES_PER_ID;
    if (need > heapBytes / 2) {
      throw new IllegalArgumentException(String.format(java.util.Locale.ROOT,
          "Cannot train with --hs: V = %d ids needs %,d bytes of executor heap to build the Huffman tree (%d per id),"
              + " more than half of the executor heap of %,d bytes (raise spark.executor.memory, or train with negative"
              + " sampling, which keeps no per-id state)", rows, need, HuffmanTree.BUILD_BYTES_PER_ID, heapBytes));
    }
  }

  /** What a run did. */
  public record Result(TableManifest output, String summary, long tokensPerEpoch, double seconds) {}

  /**
   * {@code embstore train}: the job with its driver in this JVM, on {@code --master} (default
   * {@code local[2]}) in a session of {@link #localSession}, stopped at the end. A missing {@code
   * --input} fails at once, in one line, before Spark starts (seconds of start-up).
   */
  public static Result runHere(TrainOptions o) throws IOException {
    o.validate();
    checkInputs(hadoopConfiguration(new SparkConf()), o.inputs);
    SparkSession spark = localSession(o.master == null ? "local[2]" : o.master);
    try {
      return run(spark, o);
    } finally {
      spark.stop();
    }
  }

  /**
   * The Hadoop configuration the session will have: Hadoop's files (class path, {@code
   * HADOOP_CONF_DIR} on it) and every {@code spark.hadoop.*} setting given as a system property.
   */
  static org.apache.hadoop.conf.Configuration hadoopConfiguration(SparkConf conf) {
    org.apache.hadoop.conf.Configuration c = new org.apache.hadoop.conf.Configuration();
    for (scala.Tuple2<String, String> kv : conf.getAllWithPrefix("spark.hadoop.")) {
      c.set(kv._1(), kv._2());
    }
    return c;
  }

  /** A session for one run: UI off, driver on loopback, frequent heartbeats for live progress. */
  static SparkSession localSession(String master) {
    return SparkSession.builder()
        .appName("embstore train")
        .master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.executor.heartbeatInterval", "2s")
        .config("spark.sql.shuffle.partitions", "8")
        .getOrCreate();
  }

  /**
   * Runs the job on an existing session (tests, {@code embstore train}, spark-submit): checks the
   * settings and inputs, opens the {@link Resume} point, builds the {@link Corpus}, hosts both
   * matrices ({@link #host}) and runs the {@link RoundLoop} (checkpoints, {@link Recovery}) over
   * them.
   */
  public static Result run(SparkSession spark, TrainOptions o) throws IOException {
    long t0 = System.nanoTime();
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    checkConf(sc.getConf());
    ShardHosting.checkMinExecutors(sc, o.minExecutors);
    TableStorage storage = TableStorage.hadoop(sc.hadoopConfiguration());
    TableLocation out = output(storage, o.output);
    int slots = Math.max(1, sc.defaultParallelism());
    checkInputs(sc.hadoopConfiguration(), o.inputs);
    // Every Flight call to the job's shard servers carries it; it stays in the driver, the tasks
    // that start the servers and the job's own clients, and is never logged.
    String secret = secret();

    Resume resume = Resume.open(out, o);
    int numPartitions = resume.partitions(o, slots);
    if (resume.complete()) {
      LOG.info("{} is already complete ({} epochs); nothing to do", out, o.epochs);
      return new Result(resume.checkpoint(), "already complete", 0, 0);
    }

    Corpus corpus;
    try (BuildProgress building = BuildProgress.start(spark.sparkContext(), o.progressSeconds)) {
      corpus = Corpus.load(spark, o, resume.vocabulary(), numPartitions, building);
    }
    try {
      resume.checkCorpus(corpus.partitionFingerprint());
      long rows = corpus.rows();
      if (o.hs) {
        checkHuffmanFits(rows, executorHeap(sc));
      }
      int shards = (int) Math.min(rows, o.shards > 0 ? o.shards : slots);
      LOG.info("corpus: {} tokens in {} partitions, V={}, C={}, P={} shards per matrix, {} task slots",
          corpus.totalTokens, numPartitions, rows, o.dim, shards, slots);
      long[] offsets = new long[numPartitions];
      for (int i = 1; i < numPartitions; i++) {
        offsets[i] = offsets[i - 1] + corpus.partitionTokens[i - 1];
      }
      shards = resume.shards(o, shards);
      Recovery recovery = new Recovery(spark, o, rows, shards, out, secret, corpus.totalTokens, offsets);
      Hosting hosting = host(spark, o, rows, shards, resume, out, secret);
      return new RoundLoop(spark, o, corpus, offsets, resume, out, hosting, recovery).run(t0);
    } finally {
      corpus.close();
    }
  }

  /**
   * Starts where both matrices live ({@code --hosting}): shard servers in the executors ({@link
   * ShardHosting}), or heap arrays of the driver ({@link MemoryHosting}, local mode); loaded from the
   * resumed checkpoint, or initialised.
   */
  static Hosting host(SparkSession spark, TrainOptions o, long rows, int shards, Resume resume, TableLocation out, String secret)
      throws IOException {
    describe(JavaSparkContext.fromSparkContext(spark.sparkContext()), "embstore train: host the shards of both matrices");
    return "memory".equals(o.hosting)
        ? new MemoryHosting(rows, contextRows(o, rows), o.dim, shards, o.adagrad(), o.seed, resume.output(), resume.context())
        : ShardHosting.start(spark, o, rows, shards, resume.output(), resume.context(), 1, out, secret);
  }

  /**
   * The output table: a URI of any storage Hadoop reaches with the session's configuration
   * ({@code hdfs:}, {@code s3a:}, every {@code spark.hadoop.*} setting), or a local directory (a
   * plain path or {@code file:}), made absolute so that every executor names the same directory.
   */
  static TableLocation output(TableStorage storage, String output) {
    if (TableStorage.isLocal(output)) {
      Path local = storage.location(output).localPath();
      return storage.location(local.toAbsolutePath());
    }
    return storage.location(output);
  }

  /**
   * Fails fast, with one line naming it, when an {@code --input} path does not exist or cannot be
   * read: before Spark plans a job on it (which fails only after its tasks were retried, with pages
   * of warnings). Every path (globs too) is looked up through Hadoop's FileSystem with the
   * session's configuration, connection retries cut to one attempt.
   */
  static void checkInputs(org.apache.hadoop.conf.Configuration conf, List<String> inputs) throws IOException {
    org.apache.hadoop.conf.Configuration quick = new org.apache.hadoop.conf.Configuration(conf);
    quick.setInt("ipc.client.connect.max.retries", 0);
    quick.setInt("ipc.client.connect.max.retries.on.timeouts", 0);
    quick.setInt("ipc.client.connect.timeout", 5000);
    quick.setInt("fs.s3a.attempts.maximum", 1);
    quick.setInt("fs.s3a.retry.limit", 1);
    for (String input : inputs) {
      org.apache.hadoop.fs.Path p = new org.apache.hadoop.fs.Path(input);
      org.apache.hadoop.fs.FileStatus[] found;
      try (org.apache.hadoop.fs.FileSystem fs = org.apache.hadoop.fs.FileSystem.newInstance(p.toUri(), quick)) {
        found = fs.globStatus(p);
        if (found != null) {
          for (org.apache.hadoop.fs.FileStatus st : found) {
            if ("file".equals(fs.getScheme())) {
              // The OS decides (root reads files of other users; Hadoop's owner/group check would not).
              if (!java.nio.file.Files.isReadable(Paths.get(st.getPath().toUri()))) {
                throw new IllegalArgumentException("Cannot read --input " + input + ": permission denied (" + st.getPath().toUri().getPath() + ")");
              }
            } else {
              fs.access(st.getPath(), org.apache.hadoop.fs.permission.FsAction.READ);
            }
          }
        }
      } catch (IllegalArgumentException e) {
        throw e;
      } catch (org.apache.hadoop.security.AccessControlException e) {
        throw new IllegalArgumentException("Cannot read --input " + input + ": permission denied", e);
      } catch (IOException | RuntimeException e) {
        String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage().lines().findFirst().orElse("");
        int more = m.indexOf("; For more details see");
        throw new IllegalArgumentException("Cannot read --input " + input + ": " + (more >= 0 ? m.substring(0, more) : m), e);
      }
      if (found == null || found.length == 0) {
        throw new IllegalArgumentException("Cannot read --input " + input + ": no such file or directory");
      }
    }
  }

  /**
   * Rounds of {@code slots} partitions that the next training job runs: one Spark job for all the
   * rounds that end before the next checkpoint is due, by the measured time of a round, so that the
   * tasks are not held at a barrier after every round (each round waited for its slowest task, and
   * paid a job's scheduling: 3-5 % of the task slots' time in issue 20's runs). A job never crosses
   * an epoch's end (the caller caps it). Checkpoints fall where they fell with one job per round:
   * after the round during which one became due. The first job of a run, without a measurement,
   * is one round; with {@code --checkpoint-minutes 0} (checkpoints at epoch ends only) a job is the
   * rest of the epoch.
   */
  static int roundsPerJob(double checkpointMinutes, double sinceCheckpointSeconds, double roundSeconds) {
    if (checkpointMinutes == 0) {
      return Integer.MAX_VALUE;
    }
    if (roundSeconds <= 0) {
      return 1;
    }
    double left = checkpointMinutes * 60 - sinceCheckpointSeconds;
    return (int) Math.max(1, Math.min(Integer.MAX_VALUE, Math.floor(left / roundSeconds)));
  }

  /** Corpus tokens before partition {@code partition} of epoch {@code epoch} (offsets[0] is 0). */
  static long position(long totalTokens, long[] offsets, int epoch, int partition) {
    return epoch * totalTokens + offsets[partition];
  }

  static String objective(TrainOptions o) {
    return !o.hs ? "negative-sampling" : o.negatives > 0 ? "hierarchical-softmax+negative-sampling" : "hierarchical-softmax";
  }

  /**
   * Rows of the context table: V output rows for negative sampling, the V - 1 inner nodes of the
   * Huffman tree (in V rows) for hierarchical softmax, both (2V - 1 rows, the nodes from row V) when
   * both objectives train.
   */
  static long contextRows(TrainOptions o, long rows) {
    return o.hs && o.negatives > 0 ? 2 * rows - 1 : rows;
  }

  static Map<String, String> properties(TrainOptions o, int epoch, int done, int partitions, String corpus, boolean complete) {
    Map<String, String> p = new LinkedHashMap<>();
    p.put(P_EPOCH, Integer.toString(epoch));
    p.put(P_DONE, Integer.toString(done));
    p.put(P_PARTITIONS, Integer.toString(partitions));
    p.put(P_CORPUS, corpus);
    p.put(P_COMPLETE, Boolean.toString(complete));
    p.put("train.epochs", Integer.toString(o.epochs));
    p.put("train.window", Integer.toString(o.window));
    p.put("train.negatives", Integer.toString(o.negatives));
    p.put(P_OBJECTIVE, objective(o));
    p.put("train.minCount", Long.toString(o.minCount));
    p.put("train.sample", Double.toString(o.sample));
    p.put("train.alpha", Double.toString(o.alpha));
    p.put(P_OPTIMIZER, o.optimizer);
    p.put("train.seed", Long.toString(o.seed));
    p.put(P_SHUFFLE, Boolean.toString(o.shuffle));
    p.put("train.matrix", "input");
    p.put("train.context", CONTEXT_DIR);
    if (o.tokenizer != null) {
      p.put(Tokenizer.PROPERTY, o.tokenizer);
    }
    return p;
  }
}
