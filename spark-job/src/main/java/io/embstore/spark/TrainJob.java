package io.embstore.spark;

import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TableStorage;
import io.embstore.format.Tokenizer;
import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.rdd.PartitionPruningRDD;
import org.apache.spark.sql.SparkSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.runtime.AbstractFunction1;

/**
 * Distributed skip-gram training: {@code spark-submit --class io.embstore.spark.TrainJob JOB_JAR
 * --input ... --output DIR ...} (options: {@link TrainOptions}; design: {@code docs/training.md}).
 *
 * <p>The driver builds the vocabulary and the encoded corpus, starts the hosting of both matrices
 * ({@link ShardHosting}: shard servers inside the executors), then runs each epoch as rounds of
 * corpus partitions, one Spark job for the rounds that end before the next checkpoint is due
 * ({@link #roundsPerJob}). Between rounds, at most every {@code --checkpoint-minutes} and at every
 * epoch end, it writes a checkpoint whose manifest records the epoch and the partitions done;
 * {@code --resume} restarts from there.
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
    return ShardHosting.Host.memory();
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

  /** Runs the job on an existing session (tests, {@code embstore train}, spark-submit). */
  public static Result run(SparkSession spark, TrainOptions o) throws IOException {
    long t0 = System.nanoTime();
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    checkConf(sc.getConf());
    ShardHosting.checkMinExecutors(sc, o.minExecutors);
    TableStorage storage = TableStorage.hadoop(sc.hadoopConfiguration());
    TableLocation out = output(storage, o.output);
    TableLocation ctx = out.resolve(CONTEXT_DIR);
    int slots = Math.max(1, sc.defaultParallelism());
    checkInputs(sc.hadoopConfiguration(), o.inputs);
    // Every Flight call to the job's shard servers carries it; it stays in the driver, the tasks
    // that start the servers and the job's own clients, and is never logged.
    String secret = secret();

    // Resume state.
    TableManifest resumed = null;
    Table knownVocab = null;
    if (out.hasManifest()) {
      if (!o.resume) {
        throw new IllegalArgumentException(
            "Cannot train into " + out + ": it already holds a table (use --resume to continue it, or a new --output)");
      }
      resumed = Table.open(out).manifest();
      if (!resumed.valueType().isTrainable()) {
        throw new IllegalArgumentException("Cannot resume " + out + ": its rows are " + resumed.valueType()
            + " (a quantized serving copy cannot be trained; convert it to float32, float16 or bfloat16 first: embstore convert --dtype float32)");
      }
      if (!resumed.properties().containsKey(P_EPOCH)) {
        throw new IllegalArgumentException("Cannot resume " + out + ": the table was not written by embstore train");
      }
      if (!ctx.hasManifest()) {
        throw new IllegalArgumentException(
            "Cannot resume " + out + ": " + ctx + " holds no table (the first checkpoint was cut short; train again without --resume into a new --output)");
      }
      checkContextMatches(out, resumed, Table.open(ctx).manifest());
      if (resumed.valueType() != o.valueType()) {
        throw new IllegalArgumentException("Cannot resume " + out + ": its rows are " + resumed.valueType() + ", --dtype is "
            + o.valueType() + " (resume with --dtype " + resumed.valueType() + ", or convert the table first: embstore convert)");
      }
      if (resumed.dim() != o.dim) {
        throw new IllegalArgumentException(
            "Cannot resume " + out + ": --dim " + o.dim + " but the checkpoint has dim " + resumed.dim());
      }
      String objective = resumed.properties().getOrDefault(P_OBJECTIVE, "negative-sampling");
      if (!objective.equals(objective(o))) {
        throw new IllegalArgumentException("Cannot resume " + out + ": the checkpoint trained " + objective
            + " but these options train " + objective(o) + " (--hs and --negatives must stay as they were)");
      }
      // Every checkpoint of embstore train records its optimizer; SGD shards carry no state, and
      // the shard servers would silently start Adagrad accumulators at zero or drop them.
      String optimizer = resumed.properties().getOrDefault(P_OPTIMIZER, "sgd");
      if (!optimizer.equals(o.optimizer)) {
        throw new IllegalArgumentException("Cannot resume " + out + ": the checkpoint trained with --optimizer " + optimizer
            + " but these options use --optimizer " + o.optimizer + " (the optimizer must stay as it was)");
      }
      // The ids of a checkpoint are a tokenizer's or its own vocabulary's; they must stay the same.
      String tokenizer = resumed.properties().get(Tokenizer.PROPERTY);
      if (!Objects.equals(tokenizer, o.tokenizer)) {
        throw new IllegalArgumentException("Cannot resume " + out + ": the checkpoint's ids come from "
            + (tokenizer == null ? "its vocabulary of whitespace tokens" : "--tokenizer " + tokenizer) + " but these options use "
            + (o.tokenizer == null ? "whitespace tokens" : "--tokenizer " + o.tokenizer) + " (the tokenizer must stay as it was)");
      }
      if (resumed.hasVocabulary()) {
        knownVocab = Table.open(out);
      }
    }
    int numPartitions = resumed != null
        ? Integer.parseInt(resumed.properties().get(P_PARTITIONS))
        : (o.partitions > 0 ? o.partitions : 4 * slots);
    if (resumed != null && Boolean.parseBoolean(resumed.properties().get(P_COMPLETE))) {
      LOG.info("{} is already complete ({} epochs); nothing to do", out, o.epochs);
      return new Result(resumed, "already complete", 0, 0);
    }

    Corpus corpus;
    try (BuildProgress building = BuildProgress.start(spark.sparkContext(), o.progressSeconds)) {
      corpus = Corpus.load(spark, o, knownVocab, numPartitions, building);
    }
    try {
      return run(spark, o, corpus, resumed, numPartitions, out, secret, t0);
    } finally {
      corpus.close();
    }
  }

  private static Result run(SparkSession spark, TrainOptions o, Corpus corpus, TableManifest resumed, int numPartitions,
      TableLocation out, String secret, long t0) throws IOException {
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    TableLocation ctx = out.resolve(CONTEXT_DIR);
    int slots = Math.max(1, sc.defaultParallelism());
    int startEpoch = resumed == null ? 0 : Integer.parseInt(resumed.properties().get(P_EPOCH));
    int startDone = resumed == null ? 0 : Integer.parseInt(resumed.properties().get(P_DONE));
    String corpusFingerprint = corpus.partitionFingerprint();
    if (resumed != null) {
      checkCorpusMatches(out, resumed, corpusFingerprint);
    }
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

    if (resumed != null && o.shards > 0 && shards != resumed.numShards()) {
      LOG.info("resuming {} (P={}) onto P={} shards: the shard servers re-partition the checkpoint as they load it",
          out, resumed.numShards(), shards);
    } else if (resumed != null) {
      shards = resumed.numShards();
    }
    describe(sc, "embstore train: host the shards of both matrices");
    TableLocation resumeOut = resumed == null ? null : out;
    Hosting hosting = "memory".equals(o.hosting)
        ? new MemoryHosting(rows, contextRows(o, rows), o.dim, shards, o.adagrad(), o.seed, resumeOut, resumeOut == null ? null : ctx)
        : ShardHosting.start(spark, o, rows, shards, resumeOut, resumeOut == null ? null : ctx, 1, out, secret);
    long startPosition = position(corpus.totalTokens, offsets, startEpoch, startDone);
    try (Progress progress = new Progress(spark.sparkContext(), corpus.totalTokens, o.epochs, startPosition, o.progressSeconds)) {
      Task task = new Task(o, corpus, offsets, hosting.opener(), progress, sc);
      long lastCheckpoint = System.nanoTime();
      TableManifest last = resumed;
      // A checkpoint without a vocabulary (the first one cut before it, or id input) gets the one built now.
      Hosting.VocabularyWriter vocabToWrite = resumed == null || !resumed.hasVocabulary() ? corpus.vocabulary : null;
      int recoveries = 0;
      int epoch = startEpoch;
      int r = startDone;
      // Wall seconds of one round (slots partitions) in the last training job; 0 before the first.
      double roundSeconds = 0;
      while (epoch < o.epochs) {
        progress.epoch(epoch);
        int rounds = roundsPerJob(o.checkpointMinutes, (System.nanoTime() - lastCheckpoint) / 1e9, roundSeconds);
        int to = (int) Math.min(numPartitions, r + (long) slots * rounds);
        boolean epochEnd = to == numPartitions;
        try {
          describe(sc, "embstore train: epoch " + (epoch + 1) + "/" + o.epochs
              + ", corpus partitions " + r + ".." + (to - 1) + " of " + numPartitions);
          long j0 = System.nanoTime();
          task.runRound(epoch, r, to);
          roundSeconds = (System.nanoTime() - j0) / 1e9 / Math.ceil((to - r) / (double) slots);
          boolean due = o.checkpointMinutes > 0 && (System.nanoTime() - lastCheckpoint) / 60e9 >= o.checkpointMinutes;
          if (epochEnd || due) {
            int nextEpoch = epochEnd ? epoch + 1 : epoch;
            int done = epochEnd ? 0 : to;
            describe(sc, "embstore train: checkpoint after epoch " + (epoch + 1) + ", partition " + (to - 1));
            Map<String, String> props = properties(o, nextEpoch, done, numPartitions, corpusFingerprint, nextEpoch == o.epochs);
            long c0 = System.nanoTime();
            last = hosting.checkpoint(out, ctx, vocabToWrite, props);
            vocabToWrite = null;
            LOG.info("checkpoint: table version {} at epoch {}, partitions done {} ({} ms)",
                last.tableVersion(), nextEpoch, done, (System.nanoTime() - c0) / 1_000_000);
            lastCheckpoint = System.nanoTime();
          }
        } catch (Exception e) { // a failed Spark job surfaces as SparkException, a checked exception Scala does not declare
          List<String> lost = hosting.lost();
          if (lost.isEmpty() || recoveries >= o.maxRecoveries) {
            if (!lost.isEmpty()) {
              LOG.error("shard servers lost: {}; no recovery left ({} of --max-recoveries {} used)", lost, recoveries, o.maxRecoveries);
            }
            throw e;
          }
          recoveries++;
          // Every shard goes back to the last committed checkpoint (or to its initial rows), not
          // only the lost ones: the survivors hold updates of rounds that the checkpoint does not.
          TableManifest cp = out.hasManifest() ? Table.open(out).manifest() : null;
          // The first checkpoint commits the output before _context: cut between the two, the
          // context matrix restarts from its initial (zero) rows.
          boolean withContext = cp != null && ctx.hasManifest();
          int cpEpoch = cp == null ? 0 : Integer.parseInt(cp.properties().get(P_EPOCH));
          int cpDone = cp == null ? 0 : Integer.parseInt(cp.properties().get(P_DONE));
          long position = position(corpus.totalTokens, offsets, epoch, r);
          long cpPosition = position(corpus.totalTokens, offsets, cpEpoch, cpDone);
          LOG.warn("recovery {}/{}: shard servers lost ({}) in epoch {}, partitions {}..{}: restarting every shard "
                  + "from {}; {} tokens are trained again", recoveries, o.maxRecoveries, lost, epoch + 1, r, to - 1,
              cp == null ? "its initial rows (no checkpoint yet)" : "checkpoint version " + cp.tableVersion()
                  + " (epoch " + cpEpoch + ", partitions done " + cpDone + ")"
                  + (withContext ? "" : ", the context matrix from its initial rows (the first checkpoint was cut before _context)"),
              position - cpPosition, e);
          int hosts = hosting.hosts();
          try {
            hosting.close();
          } catch (IOException | RuntimeException closing) {
            LOG.warn("Cannot stop the remaining shard servers of the lost hosting: {}", closing.toString());
          }
          hosting = null;
          describe(sc, "embstore train: host the shards of both matrices again (recovery " + recoveries + ")");
          hosting = ShardHosting.start(spark, o, rows, shards, cp == null ? null : out, withContext ? ctx : null, hosts, out, secret);
          task = new Task(o, corpus, offsets, hosting.opener(), progress, sc);
          task.generation = recoveries;
          progress.rewind(position - cpPosition);
          if (cp == null || !cp.hasVocabulary()) {
            vocabToWrite = corpus.vocabulary;
          }
          epoch = cpEpoch;
          r = cpDone;
          lastCheckpoint = System.nanoTime();
          continue;
        }
        if (epochEnd) {
          epoch++;
          r = 0;
        } else {
          r = to;
        }
      }
      String summary = progress.summary() + (recoveries == 0 ? "" : ", " + recoveries + " recoveries from lost shard servers");
      LOG.info(summary);
      corpus.sentences.unpersist(false);
      return new Result(last, summary, corpus.totalTokens, (System.nanoTime() - t0) / 1e9);
    } finally {
      if (hosting != null) {
        hosting.close();
      }
    }
  }

  /**
   * The two tables of a checkpoint are committed one after the other ({@code _context} first), so
   * {@code _context} may be one checkpoint ahead of the output (a driver killed between the two
   * commits): resumable, and logged. Behind it, or from another training, it is refused.
   */
  static void checkContextMatches(TableLocation out, TableManifest input, TableManifest context) {
    Map<String, String> in = input.properties();
    Map<String, String> cx = context.properties();
    String inAt = "epoch " + in.get(P_EPOCH) + ", " + in.get(P_DONE) + " partitions done";
    String cxAt = "epoch " + cx.get(P_EPOCH) + ", " + cx.get(P_DONE) + " partitions done";
    if (!cx.containsKey(P_EPOCH) || !cx.containsKey(P_DONE) || !in.containsKey(P_DONE)
        || !java.util.Objects.equals(in.get(P_PARTITIONS), cx.get(P_PARTITIONS)) || context.dim() != input.dim()) {
      throw new IllegalArgumentException("Cannot resume " + out + ": " + out.resolve(CONTEXT_DIR)
          + " is not this training's context table (partitions " + cx.get(P_PARTITIONS) + " against " + in.get(P_PARTITIONS)
          + ", dim " + context.dim() + " against " + input.dim() + ")");
    }
    int order = Long.compare(
        Long.parseLong(cx.get(P_EPOCH)) * Integer.MAX_VALUE + Long.parseLong(cx.get(P_DONE)),
        Long.parseLong(in.get(P_EPOCH)) * Integer.MAX_VALUE + Long.parseLong(in.get(P_DONE)));
    if (order < 0) {
      throw new IllegalArgumentException("Cannot resume " + out + ": the context table is at " + cxAt
          + ", behind the output at " + inAt + " (a checkpoint commits the context table first, so this pair was not written by one run)");
    }
    if (order > 0) {
      LOG.warn("resuming {} at {} with the context table one checkpoint ahead ({}): the last checkpoint was cut between its two commits",
          out, inAt, cxAt);
    }
  }

  /**
   * A resumed run must rebuild the partitions the checkpoint was trained on, or the partitions it
   * counts as done would hold other sentences (some trained twice, others never).
   */
  static void checkCorpusMatches(TableLocation out, TableManifest checkpoint, String fingerprint) {
    String recorded = checkpoint.properties().get(P_CORPUS);
    if (recorded != null && !recorded.equals(fingerprint)) {
      throw new IllegalArgumentException("Cannot resume " + out + ": the corpus now reads as " + fingerprint
          + ", the checkpoint was trained on " + recorded + " (resume with the same --input files, corpus options and Spark parallelism: Spark splits large inputs by"
          + " spark.default.parallelism, and a sentence's partition follows its split)");
    }
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

  /** The per-partition training function and what it needs on the executors. */
  static final class Task implements Serializable {
    private static final long serialVersionUID = 1L;
    private final SkipGram.Params params;
    private final Unigrams.Spec unigrams;
    private final long rows;
    private final long[] offsets;
    private final long totalTokens;
    private final int epochs;
    private final double alpha;
    private final boolean decay;
    private final int batchTokens;
    private final long seed;
    private final boolean shuffle;
    private final long failAt;
    private final long loseShardsAt;
    /** How many times the driver has re-hosted the shards before this task (the loss hook fires in generation 0 only). */
    int generation;
    private final int numPartitions;
    private final Hosting.Opener opener;
    private transient JavaRDD<int[]> sentences;
    private transient Progress progress;
    private transient org.apache.spark.broadcast.Broadcast<Task> self;
    private transient JavaSparkContext sc;

    Task(TrainOptions o, Corpus corpus, long[] offsets, Hosting.Opener opener, Progress progress, JavaSparkContext sc) {
      this.params = new SkipGram.Params(o.dim, o.window, o.negatives, o.sample, !o.adagrad(), o.prefetch, o.hs);
      this.unigrams = corpus.unigrams;
      this.rows = corpus.rows;
      this.offsets = offsets;
      this.totalTokens = corpus.totalTokens;
      this.epochs = o.epochs;
      this.alpha = o.alpha;
      this.decay = true;
      this.batchTokens = o.batchTokens;
      this.seed = o.seed;
      this.shuffle = o.shuffle;
      this.failAt = o.failAtTask;
      this.loseShardsAt = o.loseShardsAtTask;
      this.numPartitions = offsets.length;
      this.opener = opener;
      this.sentences = corpus.sentences;
      this.progress = progress;
      this.sc = sc;
    }

    void runRound(int epoch, int from, int to) {
      if (self == null) {
        self = sc.broadcast(this);
      }
      org.apache.spark.broadcast.Broadcast<Task> b = self;
      Progress p = progress;
      org.apache.spark.util.LongAccumulator[] longs = p.longs;
      org.apache.spark.util.DoubleAccumulator loss = p.lossSum;
      int maxFailures = maxTaskAttempts(sc);
      PartitionPruningRDD<int[]> pruned = PartitionPruningRDD.create(sentences.rdd(), new Range(from, to));
      List<Long> done = pruned.toJavaRDD().mapPartitionsWithIndex((i, it) -> {
        long n = b.value().train(epoch, from + i, it, longs, loss, maxFailures);
        return Collections.singletonList(n).iterator();
      }, true).collect();
      if (done.size() != to - from) {
        throw new IllegalStateException("Cannot finish round " + from + ".." + (to - 1) + ": " + done.size() + " results");
      }
    }

    /**
     * Trains one corpus partition. A retried attempt (Spark reruns a failed task up to {@code
     * spark.task.maxFailures} times) trains the whole partition again: the pushes of the failed
     * attempt stay applied, so at most {@code maxFailures - 1} attempts' updates of a partition
     * repeat (docs/training.md, "Retried tasks"). Speculative copies are refused ({@link #checkConf}).
     */
    long train(int epoch, int partition, java.util.Iterator<int[]> it,
        org.apache.spark.util.LongAccumulator[] longs, org.apache.spark.util.DoubleAccumulator loss, int maxFailures)
        throws IOException {
      long started = System.nanoTime();
      org.apache.spark.TaskContext tc = org.apache.spark.TaskContext.get();
      int attempt = tc == null ? 0 : tc.attemptNumber();
      if (attempt > 0) {
        longs[Progress.RETRIED].add(1);
        LOG.warn("epoch {} partition {}: attempt {} of at most {} trains the partition again; the updates the failed attempt"
            + " pushed stay applied", epoch + 1, partition, attempt + 1, maxFailures);
      }
      Shared shared = Shared.of(this);
      // the task's seeds depend on run, epoch and partition only: a retried task or a resumed run repeats them
      long epochPartition = SkipGram.mix64(epoch * 1_000_003L + partition);
      if (shuffle) {
        it = SentenceOrder.shuffled(it, SkipGram.mix64(seed * 17 + epochPartition), SentenceOrder.BLOCK_TOKENS);
      }
      RowStore in = opener.input();
      RowStore out = opener.output();
      long taskSeed = SkipGram.mix64(seed * 31 + epochPartition);
      SkipGram sg = new SkipGram(params, shared.unigrams, shared.tree, in, out, taskSeed);
      long position = position(totalTokens, offsets, epoch, partition);
      double total = (double) totalTokens * epochs + 1;
      long[] reported = new long[6];
      double reportedLoss = 0;
      boolean flushed = false;
      try {
        while (it.hasNext()) {
          sg.add(it.next());
          if (sg.pendingRawTokens() >= batchTokens || !it.hasNext()) {
            long raw = sg.pendingRawTokens();
            float lr = (float) (decay ? alpha * Math.max(1e-4, 1 - position / total) : alpha);
            sg.step(lr);
            position += raw;
            if (!it.hasNext()) {
              sg.flush();
              flushed = true;
            }
            long[] now = {sg.tokensSeen, sg.pairs, sg.lossCount, sg.rowsPulled, sg.rowsPushed, sg.batches};
            for (int i = 0; i < 6; i++) {
              longs[i].add(now[i] - reported[i]);
              reported[i] = now[i];
            }
            loss.add(sg.lossSum - reportedLoss);
            reportedLoss = sg.lossSum;
            if (loseShardsAt >= 0 && generation == 0 && (long) epoch * numPartitions + partition == loseShardsAt
                && opener instanceof ShardHosting.RemoteOpener remote) {
              ShardHosting.Host.release(remote.key());
              throw new IllegalStateException("Cannot continue training: injected loss of the shard servers of this JVM in epoch "
                  + (epoch + 1) + ", partition " + partition + " (--lose-shards-at-task)");
            }
            if (failAt >= 0 && attempt == 0 && (long) epoch * numPartitions + partition == failAt) {
              throw new IllegalStateException(
                  "Cannot continue training: injected failure in epoch " + (epoch + 1) + ", partition " + partition + " (--fail-at-task)");
            }
          }
        }
        if (!flushed) {
          sg.flush();
          flushed = true;
        }
      } finally {
        if (!flushed) {
          sg.abandon();
        }
        in.close();
        out.close();
      }
      // "other": the rest of the task's wall time: reading the cached partition, the sentence
      // shuffle, sub-sampling (SkipGram.add), opening the stores, progress accumulators
      long phases = sg.planNanos + sg.pullNanos + sg.computeNanos + sg.pushNanos + sg.patchNanos;
      LOG.info("epoch {} partition {}: {} tokens in {} batches; seconds: plan {}, pull {}, compute {}, push {}, patch {}, other {}",
          epoch + 1, partition, sg.tokensSeen, sg.batches, secs(sg.planNanos), secs(sg.pullNanos),
          secs(sg.computeNanos), secs(sg.pushNanos), secs(sg.patchNanos), secs(System.nanoTime() - started - phases));
      return sg.tokensSeen;
    }
  }

  private static String secs(long nanos) {
    return String.format(java.util.Locale.ROOT, "%.2f", nanos / 1e9);
  }

  /**
   * Per-JVM tables derived from the unigram statistics: built once per run, not per task. Negative
   * sampling and sub-sampling hold O(distinct counts) (plus the mapped id order of id input);
   * hierarchical softmax holds its O(V) Huffman tree.
   */
  static final class Shared {
    private static final Map<Object, Shared> CACHE = Collections.synchronizedMap(new java.util.WeakHashMap<>());
    final Unigrams unigrams;
    /** Hierarchical softmax only. */
    final HuffmanTree tree;

    private Shared(Task t) throws IOException {
      unigrams = Unigrams.open(t.unigrams, name -> Paths.get(org.apache.spark.SparkFiles.get(name)));
      tree = t.params.hs() ? HuffmanTree.of(unigrams.countsById(Math.toIntExact(t.rows))) : null;
    }

    static Shared of(Task t) throws IOException {
      synchronized (CACHE) {
        Shared s = CACHE.get(t.unigrams);
        if (s == null) {
          s = new Shared(t);
          CACHE.put(t.unigrams, s);
        }
        return s;
      }
    }
  }

  /** Keeps partitions {@code [from, to)}. */
  static final class Range extends AbstractFunction1<Object, Object> implements Serializable {
    private static final long serialVersionUID = 1L;
    private final int from;
    private final int to;

    Range(int from, int to) {
      this.from = from;
      this.to = to;
    }

    @Override
    public Object apply(Object index) {
      int i = (Integer) index;
      return i >= from && i < to;
    }
  }
}
