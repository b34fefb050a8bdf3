package io.embstore.spark.ml;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.embstore.format.Tokenizer;
import io.embstore.format.fault.ChildJvm;
import io.embstore.spark.SparkTestBase;
import io.embstore.spark.TableHosting;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import scala.collection.Seq;

/**
 * EmbeddingLookup in local[2]: against a table hosted in the executors (table URI) and against two
 * {@code embstore serve} processes, rows bit-exact against the table files, order and nulls kept,
 * every handleInvalid case, text through the table's tokenizer, and a 1,000,000-row DataFrame.
 */
@Timeout(600)
class EmbeddingLookupTest extends SparkTestBase {
  static final int V = 1000;
  static final int C = 16;
  @TempDir static Path tmp;
  static Path table;
  static int[] bits;

  @BeforeAll
  static void writeTable() throws Exception {
    table = tmp.resolve("t");
    bits = Tables.write(table, V, C, 3, 7, null, null);
  }

  @AfterAll
  static void releaseHosting() {
    new EmbeddingLookup().setTablePath(table.toString()).release();
  }

  static Dataset<Row> input() {
    StructType schema = new StructType()
        .add("n", DataTypes.IntegerType)
        .add("id", DataTypes.LongType)
        .add("small", DataTypes.IntegerType)
        .add("token", DataTypes.StringType)
        .add("ids", DataTypes.createArrayType(DataTypes.LongType, true))
        .add("tokens", DataTypes.createArrayType(DataTypes.StringType, true));
    List<Row> rows = new ArrayList<>();
    for (int n = 0; n < 500; n++) {
      long id = (n * 7919L) % V;
      boolean nul = n % 17 == 5;
      rows.add(RowFactory.create(n, nul ? null : id, nul ? null : (int) ((id + 1) % V), nul ? null : "t" + id,
          nul ? null : scala.jdk.javaapi.CollectionConverters.asScala(Arrays.asList(id, n % 11 == 0 ? null : (id + 3) % V, id)).toList(),
          n % 13 == 0 ? scala.jdk.javaapi.CollectionConverters.asScala(List.<String>of()).toList()
              : scala.jdk.javaapi.CollectionConverters.asScala(Arrays.asList("t" + (n % V), n % 9 == 0 ? null : "t" + (999 - n))).toList()));
    }
    return spark.createDataFrame(rows, schema).repartition(4).sortWithinPartitions("n");
  }

  /** The float bits of row {@code id} of the table files. */
  static int[] row(long id) {
    return Arrays.copyOfRange(bits, (int) id * C, (int) id * C + C);
  }

  static int[] bitsOf(Object value) {
    int[] out = new int[C];
    if (value instanceof Vector v) {
      assertThat(v.size()).isEqualTo(C);
      for (int c = 0; c < C; c++) {
        double d = v.apply(c);
        assertThat((double) (float) d).isEqualTo(d);
        out[c] = Float.floatToRawIntBits((float) d);
      }
    } else {
      Seq<?> s = (Seq<?>) value;
      assertThat(s.size()).isEqualTo(C);
      for (int c = 0; c < C; c++) {
        out[c] = Float.floatToRawIntBits((Float) s.apply(c));
      }
    }
    return out;
  }

  private static void assertRowsMatch(List<Row> in, List<Row> out, String inCol, String outCol) {
    assertThat(out).hasSize(in.size());
    for (int i = 0; i < in.size(); i++) {
      Row a = in.get(i);
      Row b = out.get(i);
      assertThat(b.<Integer>getAs("n")).isEqualTo(a.<Integer>getAs("n"));
      Object key = a.getAs(inCol);
      Object value = b.getAs(outCol);
      if (key == null) {
        assertThat(value).as("row %d", i).isNull();
      } else if (key instanceof Seq<?> keys) {
        Seq<?> values = (Seq<?>) value;
        assertThat(values.size()).isEqualTo(keys.size());
        for (int k = 0; k < keys.size(); k++) {
          Object e = keys.apply(k);
          if (e == null) {
            assertThat(values.apply(k)).isNull();
          } else {
            assertThat(bitsOf(values.apply(k))).isEqualTo(row(idOf(e)));
          }
        }
      } else {
        assertThat(bitsOf(value)).as("row %d (%s)", i, key).isEqualTo(row(idOf(key)));
      }
    }
  }

  private static long idOf(Object key) {
    return key instanceof String s ? Long.parseLong(s.substring(1)) : ((Number) key).longValue();
  }

  @Test
  void tableUriRowsAreBitExactInOrderWithNulls() {
    Dataset<Row> in = input().cache();
    List<Row> expected = in.collectAsList();
    for (String outputType : new String[] {"vector", "array"}) {
      for (String col : new String[] {"id", "small", "token", "ids", "tokens"}) {
        EmbeddingLookup lookup = new EmbeddingLookup().setTablePath(table.toString()).setInputCol(col)
            .setOutputCol("e").setOutputType(outputType).setBatchSize(37);
        Dataset<Row> out = lookup.transform(in);
        assertThat(out.schema().apply("e").dataType().toString()).as(col + " " + outputType)
            .isEqualTo(expectedType(col, outputType).toString());
        assertRowsMatch(expected, out.collectAsList(), col, "e");
      }
    }
    in.unpersist();
  }

  static org.apache.spark.sql.types.DataType expectedType(String col, String outputType) {
    org.apache.spark.sql.types.DataType row = outputType.equals("vector") ? SQLDataTypes.VectorType() : DataTypes.createArrayType(DataTypes.FloatType, false);
    return col.equals("ids") || col.equals("tokens") ? DataTypes.createArrayType(row, true) : row;
  }

  @Test
  void handleInvalidErrorSkipAndKeep() {
    StructType schema = new StructType().add("n", DataTypes.IntegerType).add("id", DataTypes.LongType).add("token", DataTypes.StringType)
        .add("ids", DataTypes.createArrayType(DataTypes.LongType, true));
    List<Row> rows = List.of(
        RowFactory.create(0, 5L, "t5", scala.jdk.javaapi.CollectionConverters.asScala(List.of(5L, 6L)).toList()),
        RowFactory.create(1, 1000L, "king", scala.jdk.javaapi.CollectionConverters.asScala(List.of(5L, -1L)).toList()),
        RowFactory.create(2, 7L, "t7", scala.jdk.javaapi.CollectionConverters.asScala(List.of(7L)).toList()));
    Dataset<Row> in = spark.createDataFrame(rows, schema).coalesce(1);
    EmbeddingLookup lookup = new EmbeddingLookup().setTablePath(table.toString()).setOutputCol("e");

    Throwable id = catchThrowable(() -> lookup.setInputCol("id").transform(in).collectAsList());
    assertThat(rootCause(id)).isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot look up id 1000 (outside [0, 1000)) of column id (handleInvalid=error; set handleInvalid to skip to drop such rows or keep to give them null)");
    Throwable token = catchThrowable(() -> lookup.setInputCol("token").transform(in).collectAsList());
    assertThat(rootCause(token)).isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("Cannot look up token 'king' (not in the vocabulary of 1000 tokens) of column token (handleInvalid=error;");
    Throwable element = catchThrowable(() -> lookup.setInputCol("ids").transform(in).collectAsList());
    assertThat(rootCause(element)).isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("Cannot look up id -1 (outside [0, 1000)) of column ids");

    for (String col : new String[] {"id", "token", "ids"}) {
      List<Row> skipped = lookup.setInputCol(col).setHandleInvalid("skip").transform(in).collectAsList();
      assertThat(skipped).extracting(r -> r.<Integer>getAs("n")).as(col).containsExactly(0, 2);
      List<Row> kept = lookup.setInputCol(col).setHandleInvalid("keep").transform(in).collectAsList();
      assertThat(kept).extracting(r -> r.<Integer>getAs("n")).containsExactly(0, 1, 2);
      if (col.equals("ids")) {
        Seq<?> second = kept.get(1).getAs("e");
        assertThat(bitsOf(second.apply(0))).isEqualTo(row(5));
        assertThat(second.apply(1)).isNull();
      } else {
        assertThat(kept.get(1).<Object>getAs("e")).as(col).isNull();
        assertThat(bitsOf(kept.get(2).getAs("e"))).isEqualTo(row(7));
      }
      lookup.setHandleInvalid("error");
    }
  }

  static Throwable rootCause(Throwable t) {
    while (t.getCause() != null && t.getCause() != t) {
      t = t.getCause();
    }
    return t;
  }

  @Test
  void badColumnsAndSettingsAreRefusedNamingThem() {
    Dataset<Row> in = input();
    assertThat(catchThrowable(() -> new EmbeddingLookup().setTablePath(table.toString()).setInputCol("nope").transform(in)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot look up column nope: not found (columns: n, id, small, token, ids, tokens)");
    assertThat(catchThrowable(() -> new EmbeddingLookup().setTablePath(table.toString()).setInputCol("id").setOutputCol("token").transform(in)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot write column token: it already exists (set outputCol to a new name)");
    Dataset<Row> doubles = in.withColumn("x", functions.lit(1.5));
    assertThat(catchThrowable(() -> new EmbeddingLookup().setTablePath(table.toString()).setInputCol("x").transform(doubles)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot look up column x: type double (expected bigint, int or string, or an array of them)");
    assertThat(catchThrowable(() -> new EmbeddingLookup().setInputCol("id").transform(in)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot look up rows: tablePath is not set (the table directory)");
    assertThat(catchThrowable(() -> new EmbeddingLookup().setHandleInvalid("ignore")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("handleInvalid given invalid value ignore");
  }

  @Test
  void savedStagesLoadWithTheirParamsButNotTheToken() throws Exception {
    EmbeddingLookup lookup = new EmbeddingLookup().setTablePath(table.toString()).setInputCol("ids").setOutputCol("e")
        .setEndpoints("grpc+tcp://127.0.0.1:1", "grpc+tcp://127.0.0.1:2").setHandleInvalid("keep").setOutputType("array")
        .setBatchSize(99).setAuthToken("secret-token");
    Path path = tmp.resolve("lookup-stage");
    lookup.save(path.toString());
    EmbeddingLookup back = EmbeddingLookup.load(path.toString());
    assertThat(back.uid()).isEqualTo(lookup.uid());
    assertThat(back.getEndpoints()).containsExactly("grpc+tcp://127.0.0.1:1", "grpc+tcp://127.0.0.1:2");
    assertThat(List.of(back.getTablePath(), back.getInputCol(), back.getOutputCol(), back.getHandleInvalid(), back.getOutputType()))
        .containsExactly(table.toString(), "ids", "e", "keep", "array");
    assertThat(back.getBatchSize()).isEqualTo(99);
    try (java.util.stream.Stream<Path> files = Files.walk(path)) {
      for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile)::iterator) {
        assertThat(Files.readString(f, java.nio.charset.StandardCharsets.ISO_8859_1)).doesNotContain("secret-token");
      }
    }

    SkipGram sg = new SkipGram().setInputCol("words").setVectorSize(32).setNegatives(7).setOptimizer("rowwise-adagrad").setTablePath("/x/t");
    Path sgPath = tmp.resolve("skipgram-stage");
    sg.save(sgPath.toString());
    SkipGram sgBack = SkipGram.load(sgPath.toString());
    assertThat(List.of(sgBack.getVectorSize(), sgBack.getNegatives(), sgBack.getWindowSize(), sgBack.getMinCount(), sgBack.getMaxIter()))
        .containsExactly(32, 7, 5, 5, 1);
    assertThat(List.of(sgBack.getOptimizer(), sgBack.getTablePath(), sgBack.getInputCol())).containsExactly("rowwise-adagrad", "/x/t", "words");
    assertThat(sgBack.getSeed()).isEqualTo(sg.getSeed());
  }

  @Test
  void millionRowDataFrame() {
    Dataset<Row> ids = spark.range(1_000_000).select(functions.col("id"), functions.pmod(functions.col("id").multiply(31), functions.lit(V)).as("key"));
    Dataset<Row> out = new EmbeddingLookup().setTablePath(table.toString()).setInputCol("key").setOutputType("array").transform(ids);
    Broadcast<int[]> expected = JavaSparkContext.fromSparkContext(spark.sparkContext()).broadcast(bits);
    long[] counts = out.mapPartitions((org.apache.spark.api.java.function.MapPartitionsFunction<Row, long[]>) it -> {
      long n = 0;
      long bad = 0;
      long lastId = -1;
      long disorder = 0;
      int[] b = expected.value();
      while (it.hasNext()) {
        Row r = it.next();
        long id = r.getLong(0);
        disorder += id < lastId ? 1 : 0;
        lastId = id;
        long key = r.getLong(1);
        Seq<?> e = r.getAs(2);
        for (int c = 0; c < C; c++) {
          if (Float.floatToRawIntBits((Float) e.apply(c)) != b[(int) key * C + c]) {
            bad++;
            break;
          }
        }
        n++;
      }
      return List.of(new long[] {n, bad, disorder}).iterator();
    }, Encoders.kryo(long[].class)).reduce((org.apache.spark.api.java.function.ReduceFunction<long[]>) (a, b) -> new long[] {a[0] + b[0], a[1] + b[1], a[2] + b[2]});
    assertThat(counts).containsExactly(1_000_000, 0, 0);
  }

  @Test
  void textColumnOfAGpt2TableBecomesEachTokensRow() throws Exception {
    Path gpt2 = tmp.resolve("gpt2");
    int[] gptBits = Tables.write(gpt2, 50_257, 4, 2, 3, "gpt2", Tokenizer.of("gpt2").vocabulary());
    Dataset<Row> text = spark.createDataFrame(List.of(RowFactory.create("Hello world"), RowFactory.create((Object) null)),
        new StructType().add("s", DataTypes.StringType));
    EmbeddingLookup lookup = new EmbeddingLookup().setTablePath(gpt2.toString()).setInputCol("s").setOutputType("array");
    try {
      List<Row> out = lookup.transform(text).collectAsList();
      Seq<?> hello = out.get(0).getAs("embedding");
      assertThat(hello.size()).isEqualTo(2);
      for (int k = 0; k < 2; k++) {
        int id = k == 0 ? 15496 : 995;
        Seq<?> v = (Seq<?>) hello.apply(k);
        for (int c = 0; c < 4; c++) {
          assertThat(Float.floatToRawIntBits((Float) v.apply(c))).isEqualTo(gptBits[id * 4 + c]);
        }
      }
      assertThat(out.get(1).<Object>getAs("embedding")).isNull();
      // As vocabulary tokens instead: "Hello" is GPT-2's token 15496, "Hello world" is no token.
      Dataset<Row> tokens = spark.createDataFrame(List.of(RowFactory.create("Hello"), RowFactory.create("Hello world")),
          new StructType().add("s", DataTypes.StringType));
      List<Row> asToken = lookup.setStringInput("token").setHandleInvalid("keep").transform(tokens).collectAsList();
      Seq<?> v = asToken.get(0).getAs("embedding");
      for (int c = 0; c < 4; c++) {
        assertThat(Float.floatToRawIntBits((Float) v.apply(c))).isEqualTo(gptBits[15496 * 4 + c]);
      }
      assertThat(asToken.get(1).<Object>getAs("embedding")).isNull();
    } finally {
      lookup.release();
    }
  }

  @Test
  void hostingIsReleasedOnRequestAndRestartedByTheNextTransform() throws Exception {
    EmbeddingLookup lookup = new EmbeddingLookup().setTablePath(table.toString()).setInputCol("id");
    assertThat(lookup.transform(input()).count()).isEqualTo(500);
    long hosted = hostedShards();
    assertThat(hosted).isGreaterThan(0);
    lookup.release();
    assertThat(hostedShards()).isZero();
    assertThat(lookup.transform(input()).count()).isEqualTo(500);
    assertThat(hostedShards()).isEqualTo(hosted);
  }

  @Test
  void hostingIsReleasedOnceNoDataFrameReadingItIsReachable() throws Exception {
    EmbeddingLookup lookup = new EmbeddingLookup().setTablePath(table.toString()).setInputCol("id");
    lookup.release();
    Dataset<Row> out = lookup.transform(input());
    assertThat(out.count()).isEqualTo(500);
    assertThat(hostedShards()).isGreaterThan(0);
    out = null;
    // The driver's collector finds the lookup's lease unreachable; the release runs a short job.
    long deadline = System.nanoTime() + 120_000_000_000L;
    while (hostedShards() > 0 && System.nanoTime() < deadline) {
      System.gc();
      Thread.sleep(200);
    }
    assertThat(hostedShards()).isZero();
  }

  /** Bytes held by the shard allocators of this JVM's hosting (local mode: the executor is the driver). */
  static long hostedShards() {
    return io.embstore.spark.TrainJob.hostedMemory().entrySet().stream()
        .filter(e -> e.getKey().matches(".*/shard-\\d+#[0-9a-f]+$")).mapToLong(e -> e.getValue()[0]).sum();
  }

  @Test
  void twoServeProcessesServeTheLookup() throws Exception {
    List<ChildJvm> servers = new ArrayList<>();
    try {
      List<String> endpoints = new ArrayList<>();
      for (String shards : new String[] {"0,2", "1"}) {
        ChildJvm c = ChildJvm.start(io.embstore.shard.ServerLauncher.class, ChildJvm.defaultJvmArgs(), Files.createTempFile(tmp, "serve", ".err"),
            "--table", table.toString(), "--shards", shards, "--host", "127.0.0.1", "--port", "0", "--read-token", "r3ad");
        servers.add(c);
        String ready = c.awaitLine(l -> l.startsWith("embstore serve: serving shards"), 120_000);
        assertThat(ready).as("serve did not start: %s", c.stderrText()).isNotNull();
        endpoints.add(ready.replaceFirst("^.* at (grpc\\+tcp://\\S+).*$", "$1"));
      }
      Dataset<Row> in = input().cache();
      EmbeddingLookup lookup = new EmbeddingLookup().setTablePath(table.toString()).setEndpoints(endpoints.toArray(new String[0]))
          .setAuthToken("r3ad").setInputCol("tokens").setOutputCol("e");
      assertRowsMatch(in.collectAsList(), lookup.transform(in).collectAsList(), "tokens", "e");
      Throwable noToken = catchThrowable(() -> lookup.setAuthToken(null).setInputCol("id").transform(in).count());
      assertThat(rootCause(noToken).getMessage()).contains("Cannot authenticate: no bearer token");
      in.unpersist();
    } finally {
      for (ChildJvm c : servers) {
        c.close();
      }
    }
  }
}
