package io.embstore.spark;

import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Paths;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.rdd.PartitionPruningRDD;
import org.apache.spark.util.DoubleAccumulator;
import org.apache.spark.util.LongAccumulator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.runtime.AbstractFunction1;

/**
 * The per-partition training function and what it needs on the executors: one per hosting (the
 * {@link RoundLoop} makes a new one when a recovery re-hosts the shards), broadcast once, run by
 * {@link #runRound} over a range of corpus partitions.
 */
final class TrainTask implements Serializable {
  private static final long serialVersionUID = 1L;
  /** The job's log, whichever part of it writes. */
  private static final Logger LOG = LoggerFactory.getLogger(TrainJob.class);
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
  private final TaskFaults faults;
  private final Hosting.Opener opener;
  private transient JavaRDD<int[]> sentences;
  private transient Progress progress;
  private transient Broadcast<TrainTask> self;
  private transient JavaSparkContext sc;

  TrainTask(TrainOptions o, Corpus corpus, long[] offsets, Hosting.Opener opener, TaskFaults faults, Progress progress,
      JavaSparkContext sc) {
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
    this.faults = faults;
    this.opener = opener;
    this.sentences = corpus.sentences;
    this.progress = progress;
    this.sc = sc;
  }

  /** Trains corpus partitions {@code [from, to)} of epoch {@code epoch}: one Spark job. */
  void runRound(int epoch, int from, int to) {
    if (self == null) {
      self = sc.broadcast(this);
    }
    Broadcast<TrainTask> b = self;
    Progress p = progress;
    LongAccumulator[] longs = p.longs;
    DoubleAccumulator loss = p.lossSum;
    int maxFailures = TrainJob.maxTaskAttempts(sc);
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
   * repeat (docs/training.md, "Retried tasks"). Speculative copies are refused ({@link
   * TrainJob#checkConf}).
   */
  long train(int epoch, int partition, Iterator<int[]> it, LongAccumulator[] longs, DoubleAccumulator loss, int maxFailures)
      throws IOException {
    long started = System.nanoTime();
    org.apache.spark.TaskContext tc = org.apache.spark.TaskContext.get();
    int attempt = tc == null ? 0 : tc.attemptNumber();
    if (attempt > 0) {
      longs[Progress.RETRIED].add(1);
      LOG.warn("epoch {} partition {}: attempt {} of at most {} trains the partition again; the updates the failed attempt"
          + " pushed stay applied", epoch + 1, partition, attempt + 1, maxFailures);
    }
    Tables tables = ExecutorHost.tables(opener.key(), () -> new Tables(unigrams, params.hs() ? rows : -1));
    // the task's seeds depend on run, epoch and partition only: a retried task or a resumed run repeats them
    long epochPartition = SkipGram.mix64(epoch * 1_000_003L + partition);
    if (shuffle) {
      it = SentenceOrder.shuffled(it, SkipGram.mix64(seed * 17 + epochPartition), SentenceOrder.BLOCK_TOKENS);
    }
    RowStore in = opener.input();
    RowStore out = opener.output();
    long taskSeed = SkipGram.mix64(seed * 31 + epochPartition);
    SkipGram sg = new SkipGram(params, tables.unigrams, tables.tree, in, out, taskSeed);
    long position = TrainJob.position(totalTokens, offsets, epoch, partition);
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
          faults.afterBatch(epoch, partition, attempt, opener);
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
    // after every call of this task: what the JVM's clients sent since the last report of a task
    io.embstore.shard.EmbeddingClient.RowCounts routed = ExecutorHost.unreportedRows(opener.key());
    longs[Progress.ROWS_IN_PROCESS].add(routed.inProcess());
    longs[Progress.ROWS_OVER_FLIGHT].add(routed.overFlight());
    // "other": the rest of the task's wall time: reading the cached partition, the sentence
    // shuffle, sub-sampling (SkipGram.add), opening the stores, progress accumulators
    long phases = sg.planNanos + sg.pullNanos + sg.computeNanos + sg.pushNanos + sg.patchNanos;
    LOG.info("epoch {} partition {}: {} tokens in {} batches; seconds: plan {}, pull {}, compute {}, push {}, patch {}, other {}",
        epoch + 1, partition, sg.tokensSeen, sg.batches, secs(sg.planNanos), secs(sg.pullNanos),
        secs(sg.computeNanos), secs(sg.pushNanos), secs(sg.patchNanos), secs(System.nanoTime() - started - phases));
    return sg.tokensSeen;
  }

  private static String secs(long nanos) {
    return String.format(java.util.Locale.ROOT, "%.2f", nanos / 1e9);
  }

  /**
   * A run's tables derived from the unigram statistics, built once per JVM and hosting (held by
   * {@link ExecutorHost#tables}), not per task: negative sampling and sub-sampling hold O(distinct
   * counts) (plus the mapped id order of id input); hierarchical softmax holds its O(V) Huffman
   * tree.
   */
  static final class Tables {
    final Unigrams unigrams;
    /** Hierarchical softmax only. */
    final HuffmanTree tree;

    /** @param huffmanRows V, to build the Huffman tree over; negative: no tree */
    Tables(Unigrams.Spec spec, long huffmanRows) throws IOException {
      unigrams = Unigrams.open(spec, name -> Paths.get(org.apache.spark.SparkFiles.get(name)));
      tree = huffmanRows >= 0 ? HuffmanTree.of(unigrams.countsById(Math.toIntExact(huffmanRows))) : null;
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
