package io.embstore.spark;

import static io.embstore.spark.TrainJob.CONTEXT_DIR;
import static io.embstore.spark.TrainJob.P_COMPLETE;
import static io.embstore.spark.TrainJob.P_CORPUS;
import static io.embstore.spark.TrainJob.P_DONE;
import static io.embstore.spark.TrainJob.P_EPOCH;
import static io.embstore.spark.TrainJob.P_OBJECTIVE;
import static io.embstore.spark.TrainJob.P_OPTIMIZER;
import static io.embstore.spark.TrainJob.P_PARTITIONS;

import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.Tokenizer;
import java.io.IOException;
import java.util.Map;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where a run starts: a new output, or ({@code --resume}) the last checkpoint of an earlier run,
 * validated against the options before any Spark work: the output was written by embstore train,
 * its {@code _context} table is its pair ({@link #checkContextMatches}), and the options keep what
 * the checkpoint's rows mean (value type, dim, objective, optimizer, tokenizer); once the corpus is
 * built, that it reads as the one the checkpoint was trained on ({@link #checkCorpus}).
 */
final class Resume {
  /** The job's log, whichever part of it writes. */
  private static final Logger LOG = LoggerFactory.getLogger(TrainJob.class);

  private final TableLocation out;
  /** The checkpoint's manifest; null for a new output. */
  private final TableManifest checkpoint;
  /** The checkpoint's table when it holds a vocabulary (whose ids the corpus must keep), else null. */
  private final Table vocabulary;

  private Resume(TableLocation out, TableManifest checkpoint, Table vocabulary) {
    this.out = out;
    this.checkpoint = checkpoint;
    this.vocabulary = vocabulary;
  }

  /**
   * A new run into {@code out} when it holds no table; with {@code --resume}, the checkpoint it
   * holds, refused (one line naming the value and what it must be) when the options do not
   * continue it.
   */
  /** Refuses to resume {@code table} (at {@code at}) with another {@code --dtype} than its rows'. */
  static void checkValueType(TableLocation at, TableManifest table, TrainOptions o) {
    if (table.valueType() != o.valueType()) {
      throw new IllegalArgumentException("Cannot resume " + at + ": its rows are " + table.valueType() + ", --dtype is "
          + o.valueType() + " (resume with --dtype " + table.valueType() + ", or convert the table first: embstore convert)");
    }
  }

  static Resume open(TableLocation out, TrainOptions o) throws IOException {
    TableLocation ctx = out.resolve(CONTEXT_DIR);
    if (!out.hasManifest()) {
      return new Resume(out, null, null);
    }
    if (!o.resume) {
      throw new IllegalArgumentException(
          "Cannot train into " + out + ": it already holds a table (use --resume to continue it, or a new --output)");
    }
    TableManifest resumed = Table.open(out).manifest();
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
    checkValueType(out, resumed, o);
    if (resumed.dim() != o.dim) {
      throw new IllegalArgumentException(
          "Cannot resume " + out + ": --dim " + o.dim + " but the checkpoint has dim " + resumed.dim());
    }
    String objective = resumed.properties().getOrDefault(P_OBJECTIVE, "negative-sampling");
    if (!objective.equals(TrainJob.objective(o))) {
      throw new IllegalArgumentException("Cannot resume " + out + ": the checkpoint trained " + objective
          + " but these options train " + TrainJob.objective(o) + " (--hs and --negatives must stay as they were)");
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
    return new Resume(out, resumed, resumed.hasVocabulary() ? Table.open(out) : null);
  }

  /** Whether the run continues a checkpoint. */
  boolean resumes() {
    return checkpoint != null;
  }

  /** The checkpoint's manifest (null for a new output). */
  TableManifest checkpoint() {
    return checkpoint;
  }

  /** The table whose vocabulary the corpus keeps the ids of (null: the corpus builds one). */
  Table vocabulary() {
    return vocabulary;
  }

  /** Whether the checkpoint is the last one of a finished run. */
  boolean complete() {
    return checkpoint != null && Boolean.parseBoolean(checkpoint.properties().get(P_COMPLETE));
  }

  /** The corpus partitions: the checkpoint's, else {@code --partitions}, else 4 per task slot. */
  int partitions(TrainOptions o, int slots) {
    return checkpoint != null ? Integer.parseInt(checkpoint.properties().get(P_PARTITIONS)) : (o.partitions > 0 ? o.partitions : 4 * slots);
  }

  /** The epoch training starts in (0-based). */
  int epoch() {
    return checkpoint == null ? 0 : Integer.parseInt(checkpoint.properties().get(P_EPOCH));
  }

  /** The partitions of {@link #epoch} already trained. */
  int partitionsDone() {
    return checkpoint == null ? 0 : Integer.parseInt(checkpoint.properties().get(P_DONE));
  }

  /**
   * The shard count of the hosting: {@code shards} for a new run; the checkpoint's unless {@code
   * --shards} asks for another (the shard servers re-partition the checkpoint as they load it).
   */
  int shards(TrainOptions o, int shards) {
    if (checkpoint == null) {
      return shards;
    }
    if (o.shards > 0 && shards != checkpoint.numShards()) {
      LOG.info("resuming {} (P={}) onto P={} shards: the shard servers re-partition the checkpoint as they load it",
          out, checkpoint.numShards(), shards);
      return shards;
    }
    return checkpoint.numShards();
  }

  /** The output to load the input matrix from (null: initial rows). */
  TableLocation output() {
    return checkpoint == null ? null : out;
  }

  /** The table to load the context matrix from (null: initial rows). */
  TableLocation context() {
    return checkpoint == null ? null : out.resolve(CONTEXT_DIR);
  }

  /** Refuses a corpus that does not read as the one the checkpoint was trained on. */
  void checkCorpus(String fingerprint) {
    if (checkpoint != null) {
      checkCorpusMatches(out, checkpoint, fingerprint);
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
        || !Objects.equals(in.get(P_PARTITIONS), cx.get(P_PARTITIONS)) || context.dim() != input.dim()) {
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
}
