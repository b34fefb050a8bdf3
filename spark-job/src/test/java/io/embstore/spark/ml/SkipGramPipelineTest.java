package io.embstore.spark.ml;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import io.embstore.spark.SparkTestBase;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.ml.Pipeline;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.PipelineStage;
import org.apache.spark.ml.feature.Tokenizer;
import org.apache.spark.ml.feature.Word2Vec;
import org.apache.spark.ml.linalg.DenseVector;
import org.apache.spark.ml.linalg.SparseVector;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Pipeline (Tokenizer, SkipGram) fit on the quickstart corpus (the King James Bible, in the
 * repository), saved, loaded and applied, with neighbours checked; the same pipeline with MLlib's
 * Word2Vec gives the same output schema; the model's mean vectors, synonyms and vectors agree with
 * the table's rows; a saved pointer refuses a table that moved on, a saved copy does not need it.
 */
@Timeout(900)
class SkipGramPipelineTest extends SparkTestBase {
  @TempDir static Path tmp;
  static Dataset<Row> text;
  static PipelineModel fitted;
  static Path table;

  static Path corpus() {
    return Paths.get(System.getProperty("embstore.repo.dir", "..")).resolve("deploy/quickstart/kjv.txt.gz").toAbsolutePath().normalize();
  }

  static Pipeline pipeline(PipelineStage embedding) {
    return new Pipeline().setStages(new PipelineStage[] {new Tokenizer().setInputCol("text").setOutputCol("words"), embedding});
  }

  @BeforeAll
  static void fit() {
    text = spark.read().text(corpus().toString()).toDF("text").cache();
    table = tmp.resolve("kjv");
    SkipGram sg = new SkipGram().setInputCol("words").setOutputCol("vec").setVectorSize(50).setMinCount(5).setMaxIter(3)
        .setNumPartitions(2).setSeed(42).setTablePath(table.toString());
    fitted = pipeline(sg).fit(text);
  }

  @AfterAll
  static void release() {
    text.unpersist();
    if (fitted != null) {
      ((EmbeddingModel) fitted.stages()[1]).release();
    }
  }

  static List<String> synonyms(EmbeddingModel m, String word, int k) {
    return m.findSynonyms(word, k).collectAsList().stream().map(r -> r.getString(0)).toList();
  }

  @Test
  void savedPipelineLoadsAndTransformsWithSensibleNeighbours() throws Exception {
    EmbeddingModel model = (EmbeddingModel) fitted.stages()[1];
    assertThat(model.getVectorSize()).isEqualTo(50);
    assertThat(Table.open(table).manifest().rows()).isGreaterThan(5000);
    // Neighbours vary a little between runs (threads race on shared rows, as in word2vec): each
    // query must find one of its related words among its 20 nearest, and none of the unrelated ones.
    assertThat(synonyms(model, "god", 20)).doesNotContain("god", "seventh", "thyself")
        .containsAnyOf("lord", "almighty", "saviour", "salvation", "glorified", "praise", "praises", "holy", "hosts");
    assertThat(synonyms(model, "thou", 20)).doesNotContain("god", "seventh")
        .containsAnyOf("thee", "thy", "thyself", "ye", "wilt", "wast", "didst", "hast", "shalt", "art");
    assertThat(synonyms(model, "seventh", 20)).doesNotContain("thou", "god")
        .containsAnyOf("sixth", "fifth", "eighth", "fourth", "third", "second", "tenth", "ninth");
    Path saved = tmp.resolve("pipeline");
    fitted.write().overwrite().save(saved.toString());
    PipelineModel loaded = PipelineModel.load(saved.toString());
    EmbeddingModel back = (EmbeddingModel) loaded.stages()[1];
    assertThat(back.getTablePath()).isEqualTo(table.toString());
    assertThat(back.getInputCol()).isEqualTo("words");
    assertThat(synonyms(back, "god", 10)).isEqualTo(synonyms(model, "god", 10));

    Dataset<Row> out = loaded.transform(text.limit(20));
    List<Row> rows = out.collectAsList();
    assertThat(rows).hasSize(20);
    Vector v = rows.get(0).getAs("vec");
    assertThat(v.size()).isEqualTo(50);
    assertThat(Arrays.stream(v.toArray()).map(Math::abs).sum()).isGreaterThan(0);
  }

  @Test
  void mllibWord2VecPipelineGivesTheSameSchema() {
    Word2Vec w2v = new Word2Vec().setInputCol("words").setOutputCol("vec").setVectorSize(50).setMinCount(5).setMaxIter(1)
        .setNumPartitions(2).setSeed(42);
    Dataset<Row> small = text.limit(100);
    PipelineModel mllib = pipeline(w2v).fit(small);
    StructType theirs = mllib.transform(small).schema();
    StructType ours = fitted.transform(small).schema();
    assertThat(ours).isEqualTo(theirs);
    assertThat(ours.apply("vec").metadata().json()).isEqualTo(theirs.apply("vec").metadata().json());
  }

  @Test
  void meanVectorsAndVectorsAgreeWithTheTableRows() throws Exception {
    EmbeddingModel model = (EmbeddingModel) fitted.stages()[1];
    List<Row> vectors = model.getVectors().collectAsList();
    TableManifest m = Table.open(table).manifest();
    assertThat(vectors).hasSize((int) m.rows());
    Vector god = vectors.stream().filter(r -> r.getString(0).equals("god")).findFirst().orElseThrow().getAs("vector");
    Vector lord = vectors.stream().filter(r -> r.getString(0).equals("lord")).findFirst().orElseThrow().getAs("vector");

    StructType schema = new StructType().add("words", DataTypes.createArrayType(DataTypes.StringType, true));
    Dataset<Row> sentences = spark.createDataFrame(List.of(
        RowFactory.create(scala.jdk.javaapi.CollectionConverters.asScala(List.of("god", "lord", "xyzzy")).toList()),
        RowFactory.create(scala.jdk.javaapi.CollectionConverters.asScala(List.<String>of()).toList()),
        RowFactory.create((Object) null)), schema);
    List<Row> means = model.transform(sentences).collectAsList();
    DenseVector mean = means.get(0).getAs("vec");
    for (int c = 0; c < 50; c++) {
      // Word2VecModel's mean: the known words' sum over all three words.
      assertThat(mean.apply(c)).isCloseTo((god.apply(c) + lord.apply(c)) / 3, org.assertj.core.api.Assertions.within(1e-6));
    }
    SparseVector empty = means.get(1).getAs("vec");
    assertThat(empty.size()).isEqualTo(50);
    assertThat(empty.numActives()).isZero();
    assertThat(means.get(2).<Object>getAs("vec")).isNull();

    List<String> byVector = model.findSynonyms(god, 3).collectAsList().stream().map(r -> r.getString(0)).toList();
    assertThat(byVector.get(0)).isEqualTo("god");
    assertThat(catchThrowable(() -> model.findSynonyms("xyzzy", 3))).isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("Cannot find synonyms of 'xyzzy': not in the vocabulary of ");
  }

  @Test
  void savedPointerRefusesATableThatMovedOnAndACopyDoesNot() throws Exception {
    Path t = tmp.resolve("moving");
    Tables.write(t, 20, 4, 2, 1, null, null);
    EmbeddingModel model = new EmbeddingModel().setInputCol("words").setOutputCol("v").setTablePath(t.toString());
    Path pointer = tmp.resolve("pointer");
    Path copy = tmp.resolve("copy");
    model.save(pointer.toString());
    model.setCopyTable(true).save(copy.toString());
    TableManifest before = Table.open(t).manifest();
    try (BufferAllocator allocator = new RootAllocator(); TableWriter w = TableWriter.nextVersion(t, before, allocator)) {
      w.property("moved", "on");
      w.commit();
    }
    assertThat(catchThrowable(() -> EmbeddingModel.load(pointer.toString())))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot load EmbeddingModel from " + pointer + ": the table " + t + " is at version 2, the model was saved with version 1"
            + " (save the model again, or with copyTable)");
    EmbeddingModel copied = EmbeddingModel.load(copy.toString());
    assertThat(Path.of(copied.getTablePath())).startsWith(copy);
    assertThat(Table.open(Path.of(copied.getTablePath())).manifest().tableVersion()).isEqualTo(1);
    assertThat(Files.exists(Path.of(copied.getTablePath(), "manifest.json"))).isTrue();
    assertThat(synonyms(copied, "t3", 19)).hasSize(19).doesNotContain("t3");
    copied.release();
  }
}
