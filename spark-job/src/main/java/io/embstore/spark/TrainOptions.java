package io.embstore.spark;

import io.embstore.format.Tokenizer;
import io.embstore.shard.Optimizer;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.spark.SparkConf;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/**
 * Every option of {@code embstore train} / {@code TrainJob}: the one place where they are named,
 * defaulted and documented ({@code docs/training.md} lists the same table).
 *
 * <p>Precedence, decided here only: a command-line option, else the Spark conf key {@code
 * spark.embstore.<option name without dashes>} (e.g. {@code --min-count} is {@code
 * spark.embstore.min-count}, set with {@code spark-submit --conf} or {@code spark-defaults.conf}),
 * else the default shown in the help. {@link #defaults(SparkConf)} implements the middle step as a
 * picocli default provider.
 *
 * <p>The options are picocli's annotations because {@link TrainJob#main} parses them under {@code
 * spark-submit} (the reason spark-job depends on picocli); {@code embstore train} (deploy's {@code
 * TrainCommand}) mixes in the same class.
 */
public final class TrainOptions implements Serializable {
  private static final long serialVersionUID = 1L;
  static final String CONF_PREFIX = "spark.embstore.";

  @Option(names = "--input", required = true, paramLabel = "FILE_OR_DIR",
      description = "Corpus: text files (whitespace-separated tokens) or Parquet/ORC files with an array column; repeatable.")
  List<String> inputs = new ArrayList<>();

  @Option(names = "--output", required = true, paramLabel = "TABLE_DIR",
      description = "Output table (input embeddings + vocabulary); the context matrix goes to TABLE_DIR/_context. Must be visible to the driver and every executor.")
  String output;

  @Option(names = "--master", description = "Spark master (embstore train: default local[2]; spark-submit: its own --master).")
  String master;

  @Option(names = "--format", defaultValue = "auto", description = "Input format: auto (by extension), text, parquet or orc. Default: ${DEFAULT-VALUE}.")
  String format;

  @Option(names = "--column", defaultValue = "tokens", description = "Parquet/ORC column: array<string> of tokens or array<int|bigint> of ids. Default: ${DEFAULT-VALUE}.")
  String column;

  @Option(names = "--vocab-size", defaultValue = "0", description = "V for id input (array<int|bigint>): ids must be in [0, V); no vocabulary is built.")
  long vocabSize;

  @Option(names = "--vocab-broadcast-max", defaultValue = "500000",
      description = "Vocabularies of up to this many tokens are sent to every executor as a map to encode the corpus (about 100 bytes per token in every JVM); larger ones are joined with the corpus (a shuffle of its tokens). Default: ${DEFAULT-VALUE}.")
  long vocabBroadcastMax;

  @Option(names = "--lowercase", defaultValue = "false", description = "Lower-case text tokens (Locale.ROOT).")
  boolean lowercase;

  @Option(names = "--tokenizer", paramLabel = "NAME",
      description = "Text becomes a tokenizer's ids instead of whitespace words: gpt2 (GPT-2's byte-pair encoding, one line at a time;"
          + " V = 50,257, ids are GPT-2's, the table's vocabulary is GPT-2's token strings and records the tokenizer). Text input only.")
  String tokenizer;

  @Option(names = "--max-sentence-length", defaultValue = "1000", description = "Longer lines are cut into sentences of this many tokens (word2vec: 1000). Default: ${DEFAULT-VALUE}.")
  int maxSentenceLength;

  @Option(names = "--dim", defaultValue = "100", description = "Embedding dimension C. Default: ${DEFAULT-VALUE}.")
  int dim;

  @Option(names = "--window", defaultValue = "5", description = "Maximum window (randomly shrunk per position). Default: ${DEFAULT-VALUE}.")
  int window;

  @Option(names = "--negatives", defaultValue = "5", description = "Negative samples per pair, from unigram^0.75 (0: none, only with --hs). Default: ${DEFAULT-VALUE}.")
  int negatives;

  @Option(names = "--hs", defaultValue = "false",
      description = "Hierarchical softmax over the vocabulary's Huffman tree (word2vec's -hs 1): alone with --negatives 0, else besides negative sampling; the context matrix gets the tree's V-1 inner nodes as rows.")
  boolean hs;

  @Option(names = "--min-count", defaultValue = "5", description = "Drop tokens seen fewer times. Default: ${DEFAULT-VALUE}.")
  long minCount;

  @Option(names = "--max-vocab", defaultValue = "0", description = "Keep at most this many most frequent tokens (0: no limit).")
  long maxVocab;

  @Option(names = "--sample", defaultValue = "1e-3", description = "Sub-sampling threshold of frequent tokens (0: off). Default: ${DEFAULT-VALUE}.")
  double sample;

  @Option(names = "--epochs", defaultValue = "5", description = "Passes over the corpus. Default: ${DEFAULT-VALUE}.")
  int epochs;

  @Option(names = "--alpha", defaultValue = "0.025", description = "Start learning rate; decays linearly to alpha*1e-4 (sgd) . Default: ${DEFAULT-VALUE}.")
  double alpha;

  @Option(names = "--shards", defaultValue = "0", description = "Shards P of each matrix (0: one per executor core slot, at least 1).")
  int shards;

  @Option(names = "--optimizer", defaultValue = "sgd", description = "sgd (word2vec) or rowwise-adagrad. Default: ${DEFAULT-VALUE}.")
  String optimizer;

  @Option(names = "--dtype", defaultValue = "float32",
      description = "Value type of both matrices' rows: float32, float16 or bfloat16 (2 bytes a value; updates applied in float32"
          + " and stored with stochastic rounding; optimizer state float32); int8 is refused (serving copies only: embstore convert)."
          + " Default: ${DEFAULT-VALUE}.")
  String dtype;

  @Option(names = "--seed", defaultValue = "1", description = "Seed of initialisation, sampling and windows. Default: ${DEFAULT-VALUE}.")
  long seed;

  @Option(names = "--resume", defaultValue = "false", description = "Continue from the latest checkpoint in --output.")
  boolean resume;

  @Option(names = "--checkpoint-minutes", defaultValue = "10", description = "Checkpoint at least this often (and at each epoch end); 0: only at epoch ends. Default: ${DEFAULT-VALUE}.")
  double checkpointMinutes;

  @Option(names = "--batch-tokens", defaultValue = "16384", description = "Corpus tokens per mini-batch (one pull and one push per matrix). Default: ${DEFAULT-VALUE}.")
  int batchTokens;

  @Option(names = "--local-shards", negatable = true, defaultValue = "true", fallbackValue = "true",
      description = "Reach the shards that the task's own executor hosts in process, without Arrow Flight (the others always go through Flight). Default: ${DEFAULT-VALUE}.")
  boolean localShards;

  @Option(names = "--prefetch", negatable = true, defaultValue = "true", fallbackValue = "true",
      description = "Pull the next mini-batch's rows while this one computes (one more batch of staleness towards other tasks; pays when cores idle while waiting). Default: ${DEFAULT-VALUE}.")
  boolean prefetch;

  @Option(names = "--shuffle", negatable = true, defaultValue = "true", fallbackValue = "true",
      description = "Read each corpus partition in a random order per epoch (seeded; blocks of up to 8 M tokens); --no-shuffle keeps the corpus order, as word2vec does. Default: ${DEFAULT-VALUE}.")
  boolean shuffle;

  @Option(names = "--partitions", defaultValue = "0", description = "Corpus partitions (0: 4 per task slot); checkpoints fall between rounds of partitions.")
  int partitions;

  @Option(names = "--progress-seconds", defaultValue = "5", description = "Seconds between progress lines. Default: ${DEFAULT-VALUE}.")
  double progressSeconds;

  @Option(names = "--min-executors", defaultValue = "1",
      description = "Executors that must have registered before the shards are placed (on the executors registered then; spark.executor.instances is not consulted). Default: ${DEFAULT-VALUE}.")
  int minExecutors;

  @Option(names = "--executor-wait", defaultValue = "120",
      description = "Seconds to wait for --min-executors executors to register (also for the replacements of lost ones in a recovery). Default: ${DEFAULT-VALUE}.")
  double executorWait;

  @Option(names = "--max-recoveries", defaultValue = "3",
      description = "Times the job restarts its shard servers from the last checkpoint after losing one (an executor lost); 0: fail instead. Default: ${DEFAULT-VALUE}.")
  int maxRecoveries;

  /** The default provider of {@code embstore train}: Spark conf from system properties. */
  public static final class SparkConfDefaults implements CommandLine.IDefaultValueProvider {
    private final CommandLine.IDefaultValueProvider delegate = defaults(new SparkConf());

    @Override
    public String defaultValue(CommandLine.Model.ArgSpec argSpec) throws Exception {
      return delegate.defaultValue(argSpec);
    }
  }

  @Option(names = "--hosting", defaultValue = "shards", hidden = true,
      description = "shards (shard servers in the executors) or memory (driver heap; local mode only, a no-network baseline).")
  String hosting;

  @Option(names = "--fail-at-task", defaultValue = "-1", hidden = true,
      description = "Test hook: the first attempt of the training task of run ordinal epoch*partitions+partition = this throws after its first mini-batch (-1: never); a retry succeeds.")
  long failAtTask;

  @Option(names = "--lose-shards-at-task", defaultValue = "-1", hidden = true,
      description = "Test hook: the training task of run ordinal epoch*partitions+partition = this stops the shard servers of its JVM and throws, once per job (-1: never).")
  long loseShardsAtTask;

  /** Parses {@code args} with Spark conf {@code conf} as the second source of values. */
  public static TrainOptions parse(SparkConf conf, String... args) {
    TrainOptions o = new TrainOptions();
    CommandLine cmd = new CommandLine(o);
    cmd.setDefaultValueProvider(defaults(conf));
    cmd.parseArgs(args);
    o.validate();
    return o;
  }

  /** The Spark-conf step of the precedence: {@code spark.embstore.<name>} for {@code --<name>}. */
  static CommandLine.IDefaultValueProvider defaults(SparkConf conf) {
    return argSpec -> {
      if (conf != null && argSpec.isOption()) {
        String name = ((CommandLine.Model.OptionSpec) argSpec).longestName();
        String key = CONF_PREFIX + name.replaceFirst("^--", "");
        if (conf.contains(key)) {
          return conf.get(key);
        }
      }
      return argSpec.defaultValue();
    };
  }

  /** The output table ({@code --output}). */
  public String output() {
    return output;
  }

  boolean adagrad() {
    return Optimizer.ROWWISE_ADAGRAD.equals(optimizer);
  }

  /** The value type of both matrices ({@code --dtype}). */
  io.embstore.format.ValueType valueType() {
    return io.embstore.format.ValueType.of(dtype);
  }

  /** The optimizer of both matrices' shard servers: {@code --optimizer} at learning rate {@code --alpha}. */
  Optimizer optimizer() {
    return optimizer(optimizer, alpha);
  }

  /** {@code name} (sgd or rowwise-adagrad) at learning rate {@code alpha}, the other parameters at their defaults. */
  static Optimizer optimizer(String name, double alpha) {
    return Optimizer.parse(name, Map.of("lr", alpha));
  }

  void validate() {
    check(!inputs.isEmpty(), "--input", "(none)", "at least one is required");
    check(output != null && !output.isBlank(), "--output", output, "required");
    check(dim >= 1 && dim <= 65536, "--dim", dim, "must be in 1..65536");
    check(window >= 1, "--window", window, "must be at least 1");
    check(negatives >= 0 && negatives <= 1000, "--negatives", negatives, "must be in 0..1000");
    check(hs || negatives > 0, "--negatives", negatives, "must be at least 1 without --hs");
    check(minCount >= 1, "--min-count", minCount, "must be at least 1");
    check(maxVocab >= 0, "--max-vocab", maxVocab, "must be 0 or positive");
    check(sample >= 0 && sample < 1, "--sample", sample, "must be in [0, 1)");
    check(epochs >= 1, "--epochs", epochs, "must be at least 1");
    check(alpha > 0 && alpha < 10, "--alpha", alpha, "must be in (0, 10)");
    check(shards >= 0 && shards <= 65536, "--shards", shards, "must be in 0..65536");
    check(Optimizer.SGD.equals(optimizer) || Optimizer.ROWWISE_ADAGRAD.equals(optimizer), "--optimizer", optimizer,
        "known: " + Optimizer.SGD + ", " + Optimizer.ROWWISE_ADAGRAD);
    check(batchTokens >= 1, "--batch-tokens", batchTokens, "must be at least 1");
    check(partitions >= 0, "--partitions", partitions, "must be 0 or positive");
    check(maxSentenceLength >= 2, "--max-sentence-length", maxSentenceLength, "must be at least 2");
    check(checkpointMinutes >= 0, "--checkpoint-minutes", checkpointMinutes, "must be 0 or positive");
    check(progressSeconds > 0, "--progress-seconds", progressSeconds, "must be positive");
    check(maxRecoveries >= 0, "--max-recoveries", maxRecoveries, "must be 0 or positive");
    check(minExecutors >= 1, "--min-executors", minExecutors, "must be at least 1");
    check(executorWait >= 0, "--executor-wait", executorWait, "must be 0 or positive");
    check(vocabBroadcastMax >= 0, "--vocab-broadcast-max", vocabBroadcastMax, "must be 0 or positive");
    check(vocabSize >= 0 && vocabSize < Integer.MAX_VALUE, "--vocab-size", vocabSize, "must be in 0..2^31-2");
    if (tokenizer != null) {
      check(Tokenizer.names().contains(tokenizer), "--tokenizer", tokenizer, "known: " + String.join(", ", Tokenizer.names()));
      check(!lowercase, "--lowercase", "with --tokenizer " + tokenizer, "a byte-pair encoding takes the text as it is; give one of them");
      check(vocabSize == 0, "--vocab-size", vocabSize, "--tokenizer " + tokenizer + " sets V");
      check(maxVocab == 0, "--max-vocab", maxVocab, "--tokenizer " + tokenizer + " sets V; every id of the tokenizer has a row");
    }
    check("shards".equals(hosting) || "memory".equals(hosting), "--hosting", hosting, "known: shards, memory");
    check(!"int8".equals(dtype), "--dtype", dtype, "int8 tables are read-only serving copies: train in float32, float16 or bfloat16"
        + " and convert the result with embstore convert --dtype int8");
    check(List.of("float32", "float16", "bfloat16").contains(dtype), "--dtype", dtype, "known: float32, float16, bfloat16");
    check("float32".equals(dtype) || "shards".equals(hosting), "--dtype", dtype, "16-bit rows need --hosting shards");
    String f = format.toLowerCase(Locale.ROOT);
    check(List.of("auto", "text", "parquet", "orc").contains(f), "--format", format, "known: auto, text, parquet, orc");
    format = f;
  }

  private static void check(boolean ok, String option, Object value, String why) {
    if (!ok) {
      throw new IllegalArgumentException("Cannot use " + option + ": " + value + " (" + why + ")");
    }
  }
}
