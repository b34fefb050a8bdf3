package io.embstore.spark.ml;

import io.embstore.spark.TrainJob;
import io.embstore.spark.TrainOptions;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.stream.Stream;
import org.apache.spark.ml.Estimator;
import org.apache.spark.ml.param.DoubleParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.LongParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.param.ParamValidators;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.ml.util.DefaultParamsWritable;
import org.apache.spark.ml.util.Identifiable;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.StructType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Skip-gram embeddings as a Spark ML {@link Estimator}: a drop-in for MLlib's {@code
 * org.apache.spark.ml.feature.Word2Vec} (the same parameter names, and defaults with the same
 * meaning: {@code inputCol} of {@code array<string>} sentences, {@code outputCol}, {@code
 * vectorSize} 100, {@code windowSize} 5, {@code minCount} 5, {@code maxIter} 1 (passes over the
 * corpus), {@code stepSize} 0.025, {@code numPartitions} 1, {@code seed} from the class name,
 * {@code maxSentenceLength} 1000) plus embstore's: {@code negatives} 5 (negative sampling instead
 * of MLlib's hierarchical softmax), {@code sample} 1e-3 (sub-sampling of frequent tokens), {@code
 * shards} (0: one per task slot), {@code optimizer} ({@code sgd} or {@code rowwise-adagrad}) and
 * {@code tablePath}, the table the trained embeddings go to (default: a new directory under {@code
 * java.io.tmpdir}; on a cluster set it to a directory every executor reaches).
 *
 * <p>{@link #fit} runs embstore's training job ({@link TrainJob#run}) with options built from the
 * parameters: the input column is written as Parquet next to the table (removed afterwards) and
 * read as the job's corpus; the matrices live as shards inside the executors while it trains. The
 * Spark conf keys {@code spark.embstore.*} of the job still apply to options no parameter sets.
 * The result is an {@link EmbeddingModel} that reads the table.
 */
public final class SkipGram extends Estimator<EmbeddingModel> implements DefaultParamsWritable {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(SkipGram.class);

  private final String uid;
  private final Param<String> inputCol;
  private final Param<String> outputCol;
  private final IntParam vectorSize;
  private final IntParam windowSize;
  private final IntParam minCount;
  private final IntParam maxIter;
  private final DoubleParam stepSize;
  private final IntParam numPartitions;
  private final LongParam seed;
  private final IntParam maxSentenceLength;
  private final IntParam negatives;
  private final DoubleParam sample;
  private final IntParam shards;
  private final Param<String> optimizer;
  private final Param<String> tablePath;

  public SkipGram(String uid) {
    // Params read uid() when they are made: after it is set.
    this.uid = uid;
    inputCol = new Param<>(this, "inputCol", "input column of sentences (array<string>)");
    outputCol = new Param<>(this, "outputCol", "output column of the model's transform (the mean vector of a sentence)");
    vectorSize = new IntParam(this, "vectorSize", "the dimension C of the embeddings", ParamValidators.gt(0));
    windowSize = new IntParam(this, "windowSize", "the window (maximum context on each side)", ParamValidators.gt(0));
    minCount = new IntParam(this, "minCount", "the minimum number of times a token must appear to be included in the vocabulary", ParamValidators.gtEq(0));
    maxIter = new IntParam(this, "maxIter", "passes over the corpus", ParamValidators.gt(0));
    stepSize = new DoubleParam(this, "stepSize", "the start learning rate (it decays linearly)", ParamValidators.gt(0));
    numPartitions = new IntParam(this, "numPartitions", "corpus partitions (training tasks per pass)", ParamValidators.gt(0));
    seed = new LongParam(this, "seed", "random seed");
    maxSentenceLength = new IntParam(this, "maxSentenceLength", "longer sentences are cut into pieces of this many tokens", ParamValidators.gtEq(2));
    negatives = new IntParam(this, "negatives", "negative samples per pair, from unigram^0.75", ParamValidators.gt(0));
    sample = new DoubleParam(this, "sample", "sub-sampling threshold of frequent tokens (0: off)", ParamValidators.inRange(0, 1, true, false));
    shards = new IntParam(this, "shards", "shards P of each matrix (0: one per task slot)", ParamValidators.gtEq(0));
    optimizer = new Param<>(this, "optimizer", "sgd (word2vec) or rowwise-adagrad", ParamValidators.inArray(List.of("sgd", "rowwise-adagrad")));
    tablePath = new Param<>(this, "tablePath", "the table directory the embeddings go to (a new one; default: under java.io.tmpdir)");
    setDefault(outputCol, uid + "__output");
    setDefault(vectorSize, 100);
    setDefault(windowSize, 5);
    setDefault(minCount, 5);
    setDefault(maxIter, 1);
    setDefault(stepSize, 0.025);
    setDefault(numPartitions, 1);
    setDefault(seed, (long) SkipGram.class.getName().hashCode());
    setDefault(maxSentenceLength, 1000);
    setDefault(negatives, 5);
    setDefault(sample, 1e-3);
    setDefault(shards, 0);
    setDefault(optimizer, "sgd");
  }

  public SkipGram() {
    this(Identifiable.randomUID("embstoreSkipGram"));
  }

  @Override
  public String uid() {
    return uid;
  }

  public Param<String> inputCol() {
    return inputCol;
  }

  public Param<String> outputCol() {
    return outputCol;
  }

  public IntParam vectorSize() {
    return vectorSize;
  }

  public IntParam windowSize() {
    return windowSize;
  }

  public IntParam minCount() {
    return minCount;
  }

  public IntParam maxIter() {
    return maxIter;
  }

  public DoubleParam stepSize() {
    return stepSize;
  }

  public IntParam numPartitions() {
    return numPartitions;
  }

  public LongParam seed() {
    return seed;
  }

  public IntParam maxSentenceLength() {
    return maxSentenceLength;
  }

  public IntParam negatives() {
    return negatives;
  }

  public DoubleParam sample() {
    return sample;
  }

  public IntParam shards() {
    return shards;
  }

  public Param<String> optimizer() {
    return optimizer;
  }

  public Param<String> tablePath() {
    return tablePath;
  }

  public String getInputCol() {
    return getOrDefault(inputCol);
  }

  public String getOutputCol() {
    return getOrDefault(outputCol);
  }

  public int getVectorSize() {
    return (Integer) getOrDefault(vectorSize);
  }

  public int getWindowSize() {
    return (Integer) getOrDefault(windowSize);
  }

  public int getMinCount() {
    return (Integer) getOrDefault(minCount);
  }

  public int getMaxIter() {
    return (Integer) getOrDefault(maxIter);
  }

  public double getStepSize() {
    return (Double) getOrDefault(stepSize);
  }

  public int getNumPartitions() {
    return (Integer) getOrDefault(numPartitions);
  }

  public long getSeed() {
    return (Long) getOrDefault(seed);
  }

  public int getMaxSentenceLength() {
    return (Integer) getOrDefault(maxSentenceLength);
  }

  public int getNegatives() {
    return (Integer) getOrDefault(negatives);
  }

  public double getSample() {
    return (Double) getOrDefault(sample);
  }

  public int getShards() {
    return (Integer) getOrDefault(shards);
  }

  public String getOptimizer() {
    return getOrDefault(optimizer);
  }

  public String getTablePath() {
    return getOrDefault(tablePath);
  }

  public SkipGram setInputCol(String value) {
    set(inputCol, value);
    return this;
  }

  public SkipGram setOutputCol(String value) {
    set(outputCol, value);
    return this;
  }

  public SkipGram setVectorSize(int value) {
    set(vectorSize, value);
    return this;
  }

  public SkipGram setWindowSize(int value) {
    set(windowSize, value);
    return this;
  }

  public SkipGram setMinCount(int value) {
    set(minCount, value);
    return this;
  }

  public SkipGram setMaxIter(int value) {
    set(maxIter, value);
    return this;
  }

  public SkipGram setStepSize(double value) {
    set(stepSize, value);
    return this;
  }

  public SkipGram setNumPartitions(int value) {
    set(numPartitions, value);
    return this;
  }

  public SkipGram setSeed(long value) {
    set(seed, value);
    return this;
  }

  public SkipGram setMaxSentenceLength(int value) {
    set(maxSentenceLength, value);
    return this;
  }

  public SkipGram setNegatives(int value) {
    set(negatives, value);
    return this;
  }

  public SkipGram setSample(double value) {
    set(sample, value);
    return this;
  }

  public SkipGram setShards(int value) {
    set(shards, value);
    return this;
  }

  public SkipGram setOptimizer(String value) {
    set(optimizer, value);
    return this;
  }

  public SkipGram setTablePath(String value) {
    set(tablePath, value);
    return this;
  }

  @Override
  public StructType transformSchema(StructType schema) {
    return EmbeddingModel.appendMean(schema, getInputCol(), getOutputCol(), getVectorSize(), isDefined(inputCol));
  }

  /** Trains the embeddings of the sentences of {@code inputCol} into {@code tablePath}. */
  @Override
  public EmbeddingModel fit(Dataset<?> dataset) {
    transformSchema(dataset.schema());
    SparkSession spark = dataset.sparkSession();
    Path table = isDefined(tablePath) ? RowSource.dir(getTablePath()) : defaultTable();
    Path corpus = table.resolveSibling("." + table.getFileName() + ".corpus-" + UUID.randomUUID());
    try {
      dataset.select(functions.col(getInputCol()).as("tokens")).write().parquet(corpus.toString());
      TrainOptions o = TrainOptions.parse(spark.sparkContext().getConf(), trainArgs(corpus, table));
      TrainJob.Result r = TrainJob.run(spark, o);
      LOG.info("SkipGram {}: {} into {}", uid, r.summary(), table);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot fit SkipGram into " + table + ": " + e.getMessage(), e);
    } finally {
      deleteTree(corpus);
    }
    EmbeddingModel model = copyValues(new EmbeddingModel(uid), ParamMap.empty());
    model.setTablePath(table.toString());
    return model.setParent(this);
  }

  /** The options of {@code embstore train} that the parameters set. */
  String[] trainArgs(Path corpus, Path table) {
    List<String> a = new ArrayList<>(List.of(
        "--input", corpus.toString(), "--format", "parquet", "--column", "tokens",
        "--output", table.toString(),
        "--dim", Integer.toString(getVectorSize()),
        "--window", Integer.toString(getWindowSize()),
        "--min-count", Integer.toString(Math.max(1, getMinCount())), // a token seen at all is seen at least once
        "--epochs", Integer.toString(getMaxIter()),
        "--alpha", Double.toString(getStepSize()),
        "--partitions", Integer.toString(getNumPartitions()),
        "--seed", Long.toString(getSeed()),
        "--max-sentence-length", Integer.toString(getMaxSentenceLength()),
        "--negatives", Integer.toString(getNegatives()),
        "--sample", Double.toString(getSample()),
        "--shards", Integer.toString(getShards()),
        "--optimizer", getOptimizer()));
    return a.toArray(new String[0]);
  }

  private Path defaultTable() {
    Path dir = Paths.get(System.getProperty("java.io.tmpdir"), "embstore-skipgram",
        uid + "-" + Long.toString(System.currentTimeMillis(), 36).toLowerCase(Locale.ROOT));
    LOG.warn("SkipGram {}: tablePath is not set; the table goes to {} (a local directory of the driver: set tablePath on a cluster)", uid, dir);
    return dir;
  }

  private static void deleteTree(Path dir) {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path p : (Iterable<Path>) files.sorted(Comparator.reverseOrder())::iterator) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      LOG.warn("Cannot delete the corpus copy {}: {}", dir, e.toString());
    }
  }

  @Override
  public SkipGram copy(ParamMap extra) {
    return defaultCopy(extra);
  }

  public static MLReader<SkipGram> read() {
    return new DefaultParamsReader<>();
  }

  public static SkipGram load(String path) {
    return read().load(path);
  }
}
