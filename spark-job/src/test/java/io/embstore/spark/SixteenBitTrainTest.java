package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.HalfFloats;
import io.embstore.format.Table;
import io.embstore.format.ValueType;
import io.embstore.format.Vocabulary;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code train --dtype bfloat16}: both matrices held and checkpointed in 16 bits, words still land near their neighbours. */
class SixteenBitTrainTest extends SparkTestBase {
  @TempDir Path dir;
  BufferAllocator allocator;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    allocator.close();
  }

  @Test
  void trainsProseInBfloat16IntoABfloat16TableWhereRelatedWordsAreClose() throws Exception {
    Path corpus = proseSlice(dir, 1_000_000);
    Path out = dir.resolve("table");
    TrainJob.Result r = TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
        "--input", corpus.toString(), "--output", out.toString(), "--epochs", "3", "--dim", "50",
        "--dtype", "bfloat16", "--checkpoint-minutes", "0", "--progress-seconds", "5"));
    System.out.println(r.summary());
    Table t = Table.open(out);
    Table context = Table.open(out.resolve(TrainJob.CONTEXT_DIR));
    assertThat(t.manifest().valueType()).isEqualTo(ValueType.BFLOAT16);
    assertThat(context.manifest().valueType()).isEqualTo(ValueType.BFLOAT16);
    assertThat(t.verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
    assertThat(context.verify(allocator)).isNotEmpty().allMatch(l -> l.contains(": ok"));
    assertThat(t.manifest().properties()).containsEntry(TrainJob.P_COMPLETE, "true");
    Vocabulary v = t.vocabulary(allocator);
    float[] king = TrainJobTest.row(t, v, "king", allocator);
    for (float x : king) {
      assertThat(HalfFloats.bfloat16ToFloat(HalfFloats.toBfloat16(x))).isEqualTo(x);
    }
    double related = TrainJobTest.cos(king, TrainJobTest.row(t, v, "queen", allocator));
    double navy = TrainJobTest.cos(TrainJobTest.row(t, v, "army", allocator), TrainJobTest.row(t, v, "navy", allocator));
    double unrelated = TrainJobTest.cos(king, TrainJobTest.row(t, v, "water", allocator));
    System.out.printf("bfloat16: cos(king,queen)=%.3f cos(army,navy)=%.3f cos(king,water)=%.3f%n", related, navy, unrelated);
    assertThat(related).isGreaterThan(unrelated + 0.1);
    assertThat(navy).isGreaterThan(unrelated + 0.1);

    // Resuming it as another type is refused in one line.
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
        "--input", corpus.toString(), "--output", out.toString(), "--epochs", "4", "--dim", "50", "--resume")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("Cannot resume ")
        .hasMessageEndingWith(": its rows are bfloat16, --dtype is float32 (resume with --dtype bfloat16, or convert the table first: embstore convert)");
  }

  @Test
  void anUnknownDtypeIsRefused() {
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), "--input", "x", "--output", "y", "--dtype", "float8"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot use --dtype: float8 (known: float32, float16, bfloat16)");
  }

  @Test
  void trainingInInt8IsRefusedInOneLine() {
    assertThatThrownBy(() -> TrainOptions.parse(new SparkConf(false), "--input", "x", "--output", "y", "--dtype", "int8"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot use --dtype: int8 (int8 tables are read-only serving copies: train in float32, float16 or bfloat16"
            + " and convert the result with embstore convert --dtype int8)");
  }

  @Test
  void resumingAnInt8TableIsRefusedInOneLine() throws Exception {
    Path corpus = proseSlice(dir, 10_000);
    Path out = dir.resolve("int8");
    int rows = 20;
    int dim = 4;
    try (io.embstore.format.TableWriter w = io.embstore.format.TableWriter.create(io.embstore.format.TableLocation.of(out),
        io.embstore.format.TableManifest.builder().rows(rows).dim(dim).partitioner("modulo").valueType(ValueType.INT8), 2, allocator)) {
      java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocateDirect(rows * dim * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
      for (int i = 0; i < rows * dim; i++) {
        buf.putFloat(i * 0.01f);
      }
      buf.flip();
      w.appendInIdOrder(buf, rows);
      w.property(TrainJob.P_EPOCH, "1");
      w.commit();
    }
    assertThatThrownBy(() -> TrainJob.run(spark, TrainOptions.parse(new SparkConf(false),
        "--input", corpus.toString(), "--output", out.toString(), "--epochs", "2", "--dim", "4", "--resume")))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("Cannot resume ")
        .hasMessageContaining(out.toString())
        .hasMessageEndingWith(": its rows are int8 (a quantized serving copy cannot be trained;"
            + " convert it to float32, float16 or bfloat16 first: embstore convert --dtype float32)");
  }
}
