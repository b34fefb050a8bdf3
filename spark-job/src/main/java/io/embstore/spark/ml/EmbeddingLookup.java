package io.embstore.spark.ml;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.Tokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.List;
import org.apache.spark.ml.Transformer;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.param.ParamValidators;
import org.apache.spark.ml.param.StringArrayParam;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.ml.util.DefaultParamsWritable;
import org.apache.spark.ml.util.Identifiable;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * A Spark ML {@link Transformer} that looks up embedding rows: an input column of ids ({@code
 * bigint} / {@code int}), tokens ({@code string}) or arrays of them (a sentence as ids or tokens)
 * becomes an output column of vectors ({@code ml.linalg.Vector}, or {@code array<float>} with
 * {@code outputType=array}), or arrays of vectors. A string column of a table that records a
 * tokenizer ({@code import --tokenizer gpt2}) is text: each string becomes the array of its
 * tokens' rows ({@code stringInput} chooses otherwise).
 *
 * <p>The rows come from shard servers already running ({@code endpoints}, with {@link
 * #setAuthToken} and the {@code tls*} files as for {@code embstore lookup}), or, without
 * endpoints, from the table in {@code tablePath}, whose shards {@link #transform} hosts inside the
 * executors (the training job's hosting). The hosting lives while the returned DataFrame (or one
 * derived from it, or a stage that can recompute it) is reachable: it is released when the
 * garbage collector finds none left, by {@link #release}, or when the application ends. Every
 * executor must read {@code tablePath} (a shared file system).
 *
 * <p>Each partition looks up in batches ({@code batchSize} rows), deduplicated and routed by
 * shard; row order and nulls are kept. An id outside the table or a token outside its vocabulary
 * follows {@code handleInvalid}: {@code error} (default) fails naming the value, {@code skip} drops
 * the row, {@code keep} gives null (a null element in an array). Persistable ({@code
 * save}/{@code load}); the bearer token is not saved.
 */
public final class EmbeddingLookup extends Transformer implements DefaultParamsWritable {
  private static final long serialVersionUID = 1L;

  private final String uid;
  private final Param<String> inputCol;
  private final Param<String> outputCol;
  private final Param<String> tablePath;
  private final StringArrayParam endpoints;
  private final Param<String> tlsCa;
  private final Param<String> tlsCert;
  private final Param<String> tlsKey;
  private final Param<String> handleInvalid;
  private final Param<String> outputType;
  private final Param<String> stringInput;
  private final IntParam batchSize;
  /** The bearer token of running servers: not a Param, so that saving the stage does not write it. */
  private transient String authToken;

  public EmbeddingLookup(String uid) {
    // Params read uid() when they are made: after it is set.
    this.uid = uid;
    inputCol = new Param<>(this, "inputCol", "input column: ids (bigint, int), tokens or text (string), or arrays of ids or tokens");
    outputCol = new Param<>(this, "outputCol", "output column");
    tablePath = new Param<>(this, "tablePath", "the table directory (manifest, vocabulary; hosted in the executors unless endpoints are given)");
    endpoints = new StringArrayParam(this, "endpoints", "shard servers grpc+tcp://HOST:PORT serving the table (empty: host the table in the executors)");
    tlsCa = new Param<>(this, "tlsCa", "PEM certificates to trust for grpc+tls:// endpoints (empty: the JVM's)");
    tlsCert = new Param<>(this, "tlsCert", "PEM client certificate chain for servers that require one (with tlsKey)");
    tlsKey = new Param<>(this, "tlsKey", "PKCS#8 PEM private key of tlsCert");
    handleInvalid = new Param<>(this, "handleInvalid", "an id outside the table or a token outside its vocabulary: error (fail), skip (drop the row), keep (null)", ParamValidators.inArray(List.of("error", "skip", "keep")));
    outputType = new Param<>(this, "outputType", "vector (ml.linalg.Vector) or array (array<float>)", ParamValidators.inArray(List.of("vector", "array")));
    stringInput = new Param<>(this, "stringInput", "a string column holds: token (a vocabulary token), text (tokenized as the table records, else whitespace-separated tokens), or auto (text when the table records a tokenizer)", ParamValidators.inArray(List.of("auto", "token", "text")));
    batchSize = new IntParam(this, "batchSize", "input rows per lookup batch", ParamValidators.gt(0));
    setDefault(outputCol, "embedding");
    setDefault(endpoints, new String[0]);
    setDefault(tlsCa, "");
    setDefault(tlsCert, "");
    setDefault(tlsKey, "");
    setDefault(handleInvalid, "error");
    setDefault(outputType, "vector");
    setDefault(stringInput, "auto");
    setDefault(batchSize, 4096);
  }

  public EmbeddingLookup() {
    this(Identifiable.randomUID("embstoreLookup"));
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

  public Param<String> tablePath() {
    return tablePath;
  }

  public StringArrayParam endpoints() {
    return endpoints;
  }

  public Param<String> tlsCa() {
    return tlsCa;
  }

  public Param<String> tlsCert() {
    return tlsCert;
  }

  public Param<String> tlsKey() {
    return tlsKey;
  }

  public Param<String> handleInvalid() {
    return handleInvalid;
  }

  public Param<String> outputType() {
    return outputType;
  }

  public Param<String> stringInput() {
    return stringInput;
  }

  public IntParam batchSize() {
    return batchSize;
  }

  public String getInputCol() {
    return getOrDefault(inputCol);
  }

  public String getOutputCol() {
    return getOrDefault(outputCol);
  }

  public String getTablePath() {
    return getOrDefault(tablePath);
  }

  public String[] getEndpoints() {
    return getOrDefault(endpoints);
  }

  public String getHandleInvalid() {
    return getOrDefault(handleInvalid);
  }

  public String getOutputType() {
    return getOrDefault(outputType);
  }

  public String getStringInput() {
    return getOrDefault(stringInput);
  }

  public int getBatchSize() {
    return (Integer) getOrDefault(batchSize);
  }

  public EmbeddingLookup setInputCol(String value) {
    set(inputCol, value);
    return this;
  }

  public EmbeddingLookup setOutputCol(String value) {
    set(outputCol, value);
    return this;
  }

  public EmbeddingLookup setTablePath(String value) {
    set(tablePath, value);
    return this;
  }

  public EmbeddingLookup setEndpoints(String... value) {
    set(endpoints, value);
    return this;
  }

  public EmbeddingLookup setTlsCa(String pemFile) {
    set(tlsCa, pemFile);
    return this;
  }

  /** The client certificate chain and its key, for servers that require client certificates. */
  public EmbeddingLookup setTlsClientCertificate(String certFile, String keyFile) {
    set(tlsCert, certFile);
    set(tlsKey, keyFile);
    return this;
  }

  public EmbeddingLookup setHandleInvalid(String value) {
    set(handleInvalid, value);
    return this;
  }

  public EmbeddingLookup setOutputType(String value) {
    set(outputType, value);
    return this;
  }

  public EmbeddingLookup setStringInput(String value) {
    set(stringInput, value);
    return this;
  }

  public EmbeddingLookup setBatchSize(int value) {
    set(batchSize, value);
    return this;
  }

  /** The bearer token sent to running shard servers (default: the driver's {@code EMBSTORE_TOKEN}); never saved. */
  public EmbeddingLookup setAuthToken(String token) {
    this.authToken = token;
    return this;
  }

  /** Releases the hosting of this lookup's table now; DataFrames that still read through it fail afterwards. */
  public void release() {
    Hostings.release(RowSource.dir(getTablePath()));
  }

  @Override
  public StructType transformSchema(StructType schema) {
    return plan(schema, manifest()).schema;
  }

  @Override
  public Dataset<Row> transform(Dataset<?> dataset) {
    TableManifest manifest = manifest();
    Plan plan = plan(dataset.schema(), manifest);
    try {
      Path dir = RowSource.dir(getTablePath());
      if (plan.kind == LookupPartition.Kind.TOKEN && !manifest.hasVocabulary()) {
        throw new IllegalArgumentException("Cannot look up tokens of column " + getInputCol() + ": the table " + dir + " has no vocabulary");
      }
      RowSource source;
      Hostings.Lease lease = null;
      if (getEndpoints().length == 0) {
        lease = Hostings.acquire(dataset.sparkSession(), dir);
        source = RowSource.hosted(lease.hosting);
      } else {
        String token = authToken != null ? authToken : System.getenv("EMBSTORE_TOKEN");
        source = RowSource.servers(dir.toString(), manifest, Arrays.asList(getEndpoints()), token,
            pem(tlsCa), pem(tlsCert), pem(tlsKey));
      }
      LookupPartition.Output output = "array".equals(getOutputType()) ? LookupPartition.Output.FLOATS : LookupPartition.Output.VECTOR;
      LookupPartition f = new LookupPartition(source, plan.ordinal, getInputCol(), plan.kind, plan.intIds, plan.array,
          getHandleInvalid(), output, getBatchSize(), plan.schema);
      f.lease = lease;
      return Internal.mapPartitions(dataset, f, plan.schema);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot look up column " + getInputCol() + " in " + getTablePath() + ": " + e.getMessage(), e);
    }
  }

  private byte[] pem(Param<String> file) throws IOException {
    String f = getOrDefault(file);
    return f.isEmpty() ? null : Files.readAllBytes(Paths.get(f));
  }

  private TableManifest manifest() {
    if (!isDefined(tablePath)) {
      throw new IllegalArgumentException("Cannot look up rows: tablePath is not set (the table directory)");
    }
    try {
      return Table.open(RowSource.dir(getTablePath())).manifest();
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot look up rows in " + getTablePath() + ": " + e.getMessage(), e);
    }
  }

  /** What the input column is and the output schema. */
  record Plan(int ordinal, LookupPartition.Kind kind, boolean intIds, boolean array, StructType schema) {}

  private Plan plan(StructType schema, TableManifest manifest) {
    if (!isDefined(inputCol)) {
      throw new IllegalArgumentException("Cannot look up rows: inputCol is not set");
    }
    String in = getInputCol();
    String out = getOutputCol();
    List<String> names = Arrays.asList(schema.fieldNames());
    if (!names.contains(in)) {
      throw new IllegalArgumentException("Cannot look up column " + in + ": not found (columns: " + String.join(", ", names) + ")");
    }
    if (names.contains(out)) {
      throw new IllegalArgumentException("Cannot write column " + out + ": it already exists (set outputCol to a new name)");
    }
    DataType type = schema.apply(in).dataType();
    boolean array = type instanceof ArrayType;
    DataType element = array ? ((ArrayType) type).elementType() : type;
    LookupPartition.Kind kind;
    if (element.equals(DataTypes.LongType) || element.equals(DataTypes.IntegerType)) {
      kind = LookupPartition.Kind.ID;
    } else if (element.equals(DataTypes.StringType)) {
      String mode = getStringInput();
      boolean text = !array && ("text".equals(mode) || ("auto".equals(mode) && manifest.properties().containsKey(Tokenizer.PROPERTY)));
      kind = text ? LookupPartition.Kind.TEXT : LookupPartition.Kind.TOKEN;
    } else {
      throw new IllegalArgumentException("Cannot look up column " + in + ": type " + type.simpleString()
          + " (expected bigint, int or string, or an array of them)");
    }
    DataType row = "array".equals(getOutputType()) ? DataTypes.createArrayType(DataTypes.FloatType, false) : SQLDataTypes.VectorType();
    DataType outType = array || kind == LookupPartition.Kind.TEXT ? DataTypes.createArrayType(row, true) : row;
    StructType result = schema.add(new StructField(out, outType, true, org.apache.spark.sql.types.Metadata.empty()));
    return new Plan(names.indexOf(in), kind, element.equals(DataTypes.IntegerType), array, result);
  }

  @Override
  public EmbeddingLookup copy(ParamMap extra) {
    EmbeddingLookup copy = defaultCopy(extra);
    copy.authToken = authToken;
    return copy;
  }

  public static MLReader<EmbeddingLookup> read() {
    return new DefaultParamsReader<>();
  }

  public static EmbeddingLookup load(String path) {
    return read().load(path);
  }
}
