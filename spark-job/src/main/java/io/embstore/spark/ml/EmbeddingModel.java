package io.embstore.spark.ml;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.Vocabulary;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.Neighbor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.ml.Model;
import org.apache.spark.ml.attribute.AttributeGroup;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.param.BooleanParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.param.ParamValidators;
import org.apache.spark.ml.util.Identifiable;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.ml.util.MLWritable;
import org.apache.spark.ml.util.MLWriter;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.Metadata;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The model {@link SkipGram} fits: what MLlib's {@code Word2VecModel} offers, over an embstore
 * table. {@link #transform} maps a sentence ({@code array<string>}) to the mean of its tokens'
 * vectors (tokens outside the vocabulary add nothing but count, an empty sentence gives the empty
 * sparse vector: Word2VecModel's average), {@link #findSynonyms} gives the nearest tokens by
 * cosine similarity as a DataFrame ({@code word}, {@code similarity}), {@link #getVectors} the
 * DataFrame ({@code word}, {@code vector}) of every token.
 *
 * <p>The rows stay in the table: transforms and searches host its shards inside the executors
 * ({@link EmbeddingLookup}'s hosting, shared while a DataFrame or this model uses it; {@link
 * #release} ends it now). {@link #save} writes a pointer to the table (its directory and table
 * version, checked on {@link #load}), or with {@code copyTable} a copy of the table inside the
 * model directory.
 */
public final class EmbeddingModel extends Model<EmbeddingModel> implements MLWritable {
  private static final long serialVersionUID = 1L;

  private final String uid;
  private final Param<String> inputCol;
  private final Param<String> outputCol;
  private final IntParam vectorSize;
  private final Param<String> tablePath;
  private final BooleanParam copyTable;
  /** Keeps the hosting of the table while this model is reachable. */
  private transient Hostings.Lease lease;
  private transient Vocabulary vocabulary;

  public EmbeddingModel(String uid) {
    // Params read uid() when they are made: after it is set.
    this.uid = uid;
    inputCol = new Param<>(this, "inputCol", "input column of sentences (array<string>)");
    outputCol = new Param<>(this, "outputCol", "output column: the mean vector of a sentence");
    vectorSize = new IntParam(this, "vectorSize", "the dimension C of the embeddings", ParamValidators.gt(0));
    tablePath = new Param<>(this, "tablePath", "the table directory of the embeddings");
    copyTable = new BooleanParam(this, "copyTable", "save writes a copy of the table into the model directory (else a pointer to it)");
    setDefault(outputCol, uid + "__output");
    setDefault(vectorSize, 100);
    setDefault(copyTable, false);
  }

  public EmbeddingModel() {
    this(Identifiable.randomUID("embstoreModel"));
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

  public Param<String> tablePath() {
    return tablePath;
  }

  public BooleanParam copyTable() {
    return copyTable;
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

  public String getTablePath() {
    return getOrDefault(tablePath);
  }

  public boolean getCopyTable() {
    return (Boolean) getOrDefault(copyTable);
  }

  public EmbeddingModel setInputCol(String value) {
    set(inputCol, value);
    return this;
  }

  public EmbeddingModel setOutputCol(String value) {
    set(outputCol, value);
    return this;
  }

  public EmbeddingModel setTablePath(String value) {
    set(tablePath, value);
    return this;
  }

  public EmbeddingModel setCopyTable(boolean value) {
    set(copyTable, value);
    return this;
  }

  /** Releases the hosting of the model's table now (a later transform or search hosts it again). */
  public void release() {
    lease = null;
    Hostings.release(table());
  }

  Path table() {
    if (!isDefined(tablePath)) {
      throw new IllegalArgumentException("Cannot use EmbeddingModel " + uid + ": tablePath is not set");
    }
    return RowSource.dir(getTablePath());
  }

  private synchronized Hostings.Lease lease(SparkSession spark) throws IOException {
    if (lease == null || lease.hosting.isClosed()) {
      lease = Hostings.acquire(spark, table());
    }
    return lease;
  }

  /** Schema checks shared with {@link SkipGram}: an {@code array<string>} input, a new output column of vectors. */
  static StructType appendMean(StructType schema, String in, String out, int size, boolean inputSet) {
    if (!inputSet) {
      throw new IllegalArgumentException("Cannot use the sentences: inputCol is not set");
    }
    List<String> names = Arrays.asList(schema.fieldNames());
    if (!names.contains(in)) {
      throw new IllegalArgumentException("Cannot read column " + in + ": not found (columns: " + String.join(", ", names) + ")");
    }
    DataType type = schema.apply(in).dataType();
    if (!(type instanceof ArrayType a) || !a.elementType().equals(DataTypes.StringType)) {
      throw new IllegalArgumentException("Cannot read column " + in + ": type " + type.simpleString() + " (expected array<string>, a sentence of tokens)");
    }
    if (names.contains(out)) {
      throw new IllegalArgumentException("Cannot write column " + out + ": it already exists (set outputCol to a new name)");
    }
    return schema.add(new StructField(out, SQLDataTypes.VectorType(), true, new AttributeGroup(out, size).toMetadata()));
  }

  @Override
  public StructType transformSchema(StructType schema) {
    return appendMean(schema, getInputCol(), getOutputCol(), getVectorSize(), isDefined(inputCol));
  }

  @Override
  public Dataset<Row> transform(Dataset<?> dataset) {
    StructType schema = transformSchema(dataset.schema());
    try {
      Hostings.Lease l = lease(dataset.sparkSession());
      RowSource source = RowSource.hosted(l.hosting);
      LookupPartition f = new LookupPartition(source, Arrays.asList(dataset.schema().fieldNames()).indexOf(getInputCol()),
          getInputCol(), LookupPartition.Kind.TOKEN, false, true, "keep", LookupPartition.Output.MEAN, 4096, schema);
      f.lease = l;
      return Internal.mapPartitions(dataset, f, schema);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot transform column " + getInputCol() + " with the table " + getTablePath() + ": " + e.getMessage(), e);
    }
  }

  /** The {@code num} tokens nearest to {@code word} by cosine similarity, {@code word} excluded: columns word, similarity. */
  public Dataset<Row> findSynonyms(String word, int num) {
    try {
      int id = vocabulary().id(word);
      if (id < 0) {
        throw new IllegalArgumentException("Cannot find synonyms of '" + word + "': not in the vocabulary of " + vocabulary().size() + " tokens");
      }
      return synonyms(client().nearest(id, num));
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot find synonyms of '" + word + "': " + e.getMessage(), e);
    }
  }

  /** The {@code num} tokens nearest to {@code vector} by cosine similarity (a token whose vector it is included): columns word, similarity. */
  public Dataset<Row> findSynonyms(Vector vector, int num) {
    float[] query = new float[vector.size()];
    for (int i = 0; i < query.length; i++) {
      query[i] = (float) vector.apply(i);
    }
    try {
      return synonyms(client().nearest(query, num));
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot find synonyms of a vector: " + e.getMessage(), e);
    }
  }

  private Dataset<Row> synonyms(List<Neighbor> found) throws IOException {
    List<Row> rows = new ArrayList<>(found.size());
    for (Neighbor n : found) {
      rows.add(RowFactory.create(vocabulary().token(n.id()), (double) n.similarity()));
    }
    StructType schema = new StructType().add("word", DataTypes.StringType).add("similarity", DataTypes.DoubleType);
    return SparkSession.active().createDataFrame(rows, schema);
  }

  /** Every token and its vector, in id order: columns word, vector. */
  public Dataset<Row> getVectors() {
    SparkSession spark = SparkSession.active();
    try {
      Hostings.Lease l = lease(spark);
      RowSource source = RowSource.hosted(l.hosting);
      if (!l.hosting.manifest().hasVocabulary()) {
        throw new IllegalArgumentException("Cannot list the vectors of " + getTablePath() + ": the table has no vocabulary");
      }
      Dataset<Row> ids = spark.range(l.hosting.manifest().rows()).toDF("id")
          .withColumn("word", functions.udf((org.apache.spark.sql.api.java.UDF1<Long, String>) id -> source.vocabulary().token(id),
              DataTypes.StringType).apply(functions.col("id")));
      StructType schema = ids.schema().add(new StructField("vector", SQLDataTypes.VectorType(), true, Metadata.empty()));
      LookupPartition f = new LookupPartition(source, 0, "id", LookupPartition.Kind.ID, false, false, "error",
          LookupPartition.Output.VECTOR, 4096, schema);
      f.lease = l;
      return Internal.mapPartitions(ids, f, schema).select("word", "vector");
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot list the vectors of " + getTablePath() + ": " + e.getMessage(), e);
    }
  }

  private EmbeddingClient client() throws IOException {
    Hostings.Lease l = lease(SparkSession.active());
    return io.embstore.spark.TableHosting.client(l.hosting.key(), l.hosting.manifest().toJson(), l.hosting.endpoints());
  }

  private synchronized Vocabulary vocabulary() throws IOException {
    if (vocabulary == null) {
      Table t = Table.open(table());
      if (!t.manifest().hasVocabulary()) {
        throw new IllegalArgumentException("Cannot name the tokens of " + table() + ": the table has no vocabulary");
      }
      try (BufferAllocator allocator = new RootAllocator()) {
        vocabulary = t.vocabulary(allocator);
      }
    }
    return vocabulary;
  }

  @Override
  public EmbeddingModel copy(ParamMap extra) {
    EmbeddingModel copy = copyValues(new EmbeddingModel(uid), extra);
    return parent() == null ? copy : copy.setParent(parent());
  }

  @Override
  public MLWriter write() {
    return new ModelStore.Writer(this);
  }

  public static MLReader<EmbeddingModel> read() {
    return new ModelStore.Reader();
  }

  public static EmbeddingModel load(String path) {
    return read().load(path);
  }

  @Override
  public String toString() {
    return "EmbeddingModel: uid=" + uid + ", table=" + (isDefined(tablePath) ? getTablePath() : "(none)") + ", vectorSize=" + getVectorSize();
  }

  /** The manifest of the model's table (for the writer). */
  TableManifest manifest() throws IOException {
    return Table.open(table()).manifest();
  }
}
