package io.embstore.spark;

import static io.embstore.spark.TrainJob.P_DONE;
import static io.embstore.spark.TrainJob.P_EPOCH;

import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import java.io.IOException;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Recovery from lost shard servers (docs/training.md, "Failures and what can be lost"): after a
 * failed round, the {@link RoundLoop} asks the hosting which servers no longer answer ({@link
 * Hosting#lost}); when some are lost and {@code --max-recoveries} allows, {@link #rehost} stops the
 * survivors and hosts every shard of both matrices again from the last committed checkpoint (or
 * from the initial rows when there is none), and says where training continues. A failure that
 * lost no server (a failing task) is not recovered from: the job fails and {@code --resume}
 * applies.
 */
final class Recovery {
  /** The job's log, whichever part of it writes. */
  private static final Logger LOG = LoggerFactory.getLogger(TrainJob.class);

  private final SparkSession spark;
  private final TrainOptions o;
  private final long rows;
  private final int shards;
  private final TableLocation out;
  private final String secret;
  private final long totalTokens;
  private final long[] offsets;
  private int count;

  /** Where training continues after a recovery, on which hosting. */
  record Restart(Hosting hosting, int epoch, int partitionsDone, long tokensAgain, boolean writeVocabulary) {}

  Recovery(SparkSession spark, TrainOptions o, long rows, int shards, TableLocation out, String secret, long totalTokens,
      long[] offsets) {
    this.spark = spark;
    this.o = o;
    this.rows = rows;
    this.shards = shards;
    this.out = out;
    this.secret = secret;
    this.totalTokens = totalTokens;
    this.offsets = offsets;
  }

  /** Recoveries done so far. */
  int count() {
    return count;
  }

  /** Whether a failure that lost the servers {@code lost} is recovered from (logged when none is left). */
  boolean recovers(List<String> lost) {
    if (!lost.isEmpty() && count >= o.maxRecoveries) {
      LOG.error("shard servers lost: {}; no recovery left ({} of --max-recoveries {} used)", lost, count, o.maxRecoveries);
    }
    return !lost.isEmpty() && count < o.maxRecoveries;
  }

  /**
   * Stops what is left of {@code failed} (whose servers {@code lost} no longer answer, failing
   * partitions {@code from..to-1} of epoch {@code epoch} with {@code cause}) and hosts every shard
   * again from the last checkpoint, on as many executors as before. {@code failed} is closed
   * whatever happens.
   */
  Restart rehost(Hosting failed, List<String> lost, Exception cause, int epoch, int from, int to) throws IOException {
    count++;
    TableLocation ctx = out.resolve(TrainJob.CONTEXT_DIR);
    int hosts = failed.hosts();
    TableManifest cp;
    boolean withContext;
    int cpEpoch;
    int cpDone;
    long tokensAgain;
    try {
      // Every shard goes back to the last committed checkpoint (or to its initial rows), not
      // only the lost ones: the survivors hold updates of rounds that the checkpoint does not.
      cp = out.hasManifest() ? Table.open(out).manifest() : null;
      // The first checkpoint commits the output before _context: cut between the two, the
      // context matrix restarts from its initial (zero) rows.
      withContext = cp != null && ctx.hasManifest();
      cpEpoch = cp == null ? 0 : Integer.parseInt(cp.properties().get(P_EPOCH));
      cpDone = cp == null ? 0 : Integer.parseInt(cp.properties().get(P_DONE));
      tokensAgain = TrainJob.position(totalTokens, offsets, epoch, from) - TrainJob.position(totalTokens, offsets, cpEpoch, cpDone);
      LOG.warn("recovery {}/{}: shard servers lost ({}) in epoch {}, partitions {}..{}: restarting every shard "
              + "from {}; {} tokens are trained again", count, o.maxRecoveries, lost, epoch + 1, from, to - 1,
          cp == null ? "its initial rows (no checkpoint yet)" : "checkpoint version " + cp.tableVersion()
              + " (epoch " + cpEpoch + ", partitions done " + cpDone + ")"
              + (withContext ? "" : ", the context matrix from its initial rows (the first checkpoint was cut before _context)"),
          tokensAgain, cause);
    } finally {
      try {
        failed.close();
      } catch (IOException | RuntimeException closing) {
        LOG.warn("Cannot stop the remaining shard servers of the lost hosting: {}", closing.toString());
      }
    }
    TrainJob.describe(JavaSparkContext.fromSparkContext(spark.sparkContext()),
        "embstore train: host the shards of both matrices again (recovery " + count + ")");
    Hosting hosting = ShardHosting.start(spark, o, rows, shards, cp == null ? null : out, withContext ? ctx : null, hosts, out, secret);
    return new Restart(hosting, cpEpoch, cpDone, tokensAgain, cp == null || !cp.hasVocabulary());
  }
}
