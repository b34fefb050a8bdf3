package io.embstore.spark;

import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The driver's training loop over a hosting: each epoch as rounds of {@code slots} corpus
 * partitions, one Spark job for the rounds that end before the next checkpoint is due ({@link
 * TrainJob#roundsPerJob}; never across an epoch's end); a checkpoint ({@link #checkpoint}) after
 * the job during which one became due and at every epoch end; after a failed job, a {@link
 * Recovery} when shard servers were lost, which re-hosts from the last checkpoint and sends the
 * loop back there. It owns the current hosting and closes it when the loop ends, however it ends.
 */
final class RoundLoop {
  /** The job's log, whichever part of it writes. */
  private static final Logger LOG = LoggerFactory.getLogger(TrainJob.class);

  private final SparkSession spark;
  private final JavaSparkContext sc;
  private final TrainOptions o;
  private final Corpus corpus;
  private final long[] offsets;
  private final int numPartitions;
  private final int slots;
  private final TableLocation out;
  private final TableLocation ctx;
  private final String corpusFingerprint;
  private final Recovery recovery;
  private Hosting hosting;
  private TaskFaults faults;
  /** The last committed checkpoint (the resumed one before the first of this run). */
  private TableManifest last;
  /** A vocabulary the next checkpoint writes: the output has none yet (or lost it to a recovery). */
  private Hosting.VocabularyWriter vocabToWrite;
  /** The next round starts at partition {@code next} of epoch {@code epoch}. */
  private int epoch;
  private int next;

  RoundLoop(SparkSession spark, TrainOptions o, Corpus corpus, long[] offsets, Resume resume, TableLocation out,
      Hosting hosting, Recovery recovery) {
    this.spark = spark;
    this.sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    this.o = o;
    this.corpus = corpus;
    this.offsets = offsets;
    this.numPartitions = offsets.length;
    this.slots = Math.max(1, sc.defaultParallelism());
    this.out = out;
    this.ctx = out.resolve(TrainJob.CONTEXT_DIR);
    this.corpusFingerprint = corpus.partitionFingerprint();
    this.hosting = hosting;
    this.recovery = recovery;
    this.faults = TaskFaults.of(o, numPartitions);
    this.last = resume.checkpoint();
    // A checkpoint without a vocabulary (the first one cut before it, or id input) gets the one built now.
    this.vocabToWrite = last == null || !last.hasVocabulary() ? corpus.vocabulary : null;
    this.epoch = resume.epoch();
    this.next = resume.partitionsDone();
  }

  /** Trains to the last epoch; closes the hosting. */
  TrainJob.Result run(long t0) throws IOException {
    long startPosition = TrainJob.position(corpus.totalTokens, offsets, epoch, next);
    try (Progress progress = new Progress(spark.sparkContext(), corpus.totalTokens, o.epochs, startPosition, o.progressSeconds)) {
      TrainTask task = new TrainTask(o, corpus, offsets, hosting.opener(), faults, progress, sc);
      long lastCheckpoint = System.nanoTime();
      // Wall seconds of one round (slots partitions) in the last training job; 0 before the first.
      double roundSeconds = 0;
      while (epoch < o.epochs) {
        progress.epoch(epoch);
        int rounds = TrainJob.roundsPerJob(o.checkpointMinutes, (System.nanoTime() - lastCheckpoint) / 1e9, roundSeconds);
        int to = (int) Math.min(numPartitions, next + (long) slots * rounds);
        boolean epochEnd = to == numPartitions;
        try {
          TrainJob.describe(sc, "embstore train: epoch " + (epoch + 1) + "/" + o.epochs
              + ", corpus partitions " + next + ".." + (to - 1) + " of " + numPartitions);
          long j0 = System.nanoTime();
          task.runRound(epoch, next, to);
          roundSeconds = (System.nanoTime() - j0) / 1e9 / Math.ceil((to - next) / (double) slots);
          boolean due = o.checkpointMinutes > 0 && (System.nanoTime() - lastCheckpoint) / 60e9 >= o.checkpointMinutes;
          if (epochEnd || due) {
            checkpoint(to, epochEnd);
            lastCheckpoint = System.nanoTime();
          }
        } catch (Exception e) { // a failed Spark job surfaces as SparkException, a checked exception Scala does not declare
          List<String> lost = hosting.lost();
          if (!recovery.recovers(lost)) {
            throw e;
          }
          Hosting failed = hosting;
          hosting = null;
          Recovery.Restart at = recovery.rehost(failed, lost, e, epoch, next, to);
          hosting = at.hosting();
          faults = faults.afterRecovery();
          task = new TrainTask(o, corpus, offsets, hosting.opener(), faults, progress, sc);
          progress.rewind(at.tokensAgain());
          if (at.writeVocabulary()) {
            vocabToWrite = corpus.vocabulary;
          }
          epoch = at.epoch();
          next = at.partitionsDone();
          lastCheckpoint = System.nanoTime();
          continue;
        }
        if (epochEnd) {
          epoch++;
          next = 0;
        } else {
          next = to;
        }
      }
      int recoveries = recovery.count();
      double seconds = (System.nanoTime() - t0) / 1e9;
      // the whole job beside the training loop's own seconds: vocabulary, hosting, checkpoints, table written
      String summary = progress.summary() + (recoveries == 0 ? "" : ", " + recoveries + " recoveries from lost shard servers")
          + String.format(java.util.Locale.ROOT, "; job %.1f s in all", seconds);
      LOG.info(summary);
      corpus.sentences.unpersist(false);
      return new TrainJob.Result(last, summary, corpus.totalTokens, seconds);
    } finally {
      if (hosting != null) {
        hosting.close();
      }
    }
  }

  /**
   * Writes both matrices as the next checkpoint, after partitions {@code ..to-1} of the current
   * epoch: it records where training continues (the next epoch's first partition at an epoch end).
   */
  private void checkpoint(int to, boolean epochEnd) throws IOException {
    int nextEpoch = epochEnd ? epoch + 1 : epoch;
    int done = epochEnd ? 0 : to;
    TrainJob.describe(sc, "embstore train: checkpoint after epoch " + (epoch + 1) + ", partition " + (to - 1));
    Map<String, String> props = TrainJob.properties(o, nextEpoch, done, numPartitions, corpusFingerprint, nextEpoch == o.epochs);
    long c0 = System.nanoTime();
    last = hosting.checkpoint(out, ctx, vocabToWrite, props);
    vocabToWrite = null;
    LOG.info("checkpoint: table version {} at epoch {}, partitions done {} ({} ms)",
        last.tableVersion(), nextEpoch, done, (System.nanoTime() - c0) / 1_000_000);
  }
}
