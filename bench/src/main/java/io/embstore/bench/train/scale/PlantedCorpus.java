package io.embstore.bench.train.scale;

import java.io.Serializable;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.SplittableRandom;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * A generated id corpus with planted structure. The ids {@code [0, V)} fall into {@code G = V / k}
 * groups of {@code k}; every sentence is one group's ids in random order, and with probability
 * {@code noise} one extra id drawn uniformly from {@code [0, V)} at a random place. Groups are
 * drawn from a mixture: with probability {@code uniform} uniformly (so that the tail gets some
 * occurrences), else from a power law over group ranks with exponent {@code zipf} (hot groups get
 * many occurrences, as hot words do). Group g's members are the positions {@code g*k .. g*k+k-1},
 * mapped to ids by the affine permutation {@code id = (a*x + b) mod V} with {@code a} odd, coprime
 * to V and near 0.618 V: members of a group are far apart, and consecutive positions land on
 * different shards of a modulo partitioner (P = 4 divides V: the k members cover every shard).
 *
 * <p>Written as Parquet by Spark, one task per partition, each generating its rows lazily from its
 * own seed: the corpus is never in one heap. Columns: {@code tokens array<int>} (the ids) and
 * {@code group int} (the planted group, for counting occurrences; the trainer reads only tokens).
 */
public final class PlantedCorpus implements Serializable {
  private static final long serialVersionUID = 1L;

  final long v;
  final int k;
  final long groups;
  final double zipf;
  final double uniform;
  final double noise;
  final long seed;
  private final long a;
  private final long aInverse;
  private final long b;

  public PlantedCorpus(long v, int k, double zipf, double uniform, double noise, long seed) {
    if (v < 2L * k || v > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("Cannot plant groups: V=" + v + " (needs 2k <= V < 2^31)");
    }
    if (k < 2) {
      throw new IllegalArgumentException("Cannot plant groups: k=" + k + " (a group needs at least 2 ids)");
    }
    this.v = v;
    this.k = k;
    this.groups = v / k;
    this.zipf = zipf;
    this.uniform = uniform;
    this.noise = noise;
    this.seed = seed;
    long x = Math.round(v * 0.6180339887) | 1;
    while (BigInteger.valueOf(x).gcd(BigInteger.valueOf(v)).longValue() != 1) {
      x += 2;
    }
    this.a = x;
    this.aInverse = BigInteger.valueOf(x).modInverse(BigInteger.valueOf(v)).longValue();
    this.b = v / 3;
  }

  /** The id of member {@code m} of group {@code g}. */
  public long id(long g, int m) {
    return Math.floorMod(a * (g * k + m) + b, v);
  }

  /** The group of {@code id}, or -1 for the {@code V mod k} ids in no group. */
  public long groupOf(long id) {
    // a, its inverse and ids are below 2^31: products fit in a long.
    long x = Math.floorMod(aInverse * Math.floorMod(id - b, v), v);
    return x < groups * k ? x / k : -1;
  }

  public int k() {
    return k;
  }

  public long groups() {
    return groups;
  }

  /** Draws a group: uniform with probability {@code uniform}, else the power law over ranks. */
  long drawGroup(SplittableRandom r) {
    if (r.nextDouble() < uniform) {
      return r.nextLong(groups);
    }
    double u = r.nextDouble();
    double x;
    if (Math.abs(zipf - 1) < 1e-9) {
      x = Math.exp(u * Math.log(groups + 1.0));
    } else {
      double e = 1 - zipf;
      x = Math.pow(1 + u * (Math.pow(groups + 1.0, e) - 1), 1 / e);
    }
    return Math.min(groups - 1, Math.max(0, (long) Math.floor(x) - 1));
  }

  /**
   * Writes {@code sentences} rows in {@code partitions} Parquet files under {@code dir}
   * (overwritten); returns the number of tokens written.
   */
  public long write(SparkSession spark, String dir, long sentences, int partitions) {
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    List<Integer> parts = new ArrayList<>();
    for (int i = 0; i < partitions; i++) {
      parts.add(i);
    }
    PlantedCorpus self = this;
    JavaRDD<Row> rows = sc.parallelize(parts, partitions).mapPartitions(it -> {
      int p = it.next();
      long from = sentences * p / partitions;
      long to = sentences * (p + 1) / partitions;
      return self.sentences(p, to - from);
    });
    StructType schema = new StructType()
        .add("tokens", DataTypes.createArrayType(DataTypes.IntegerType, false), false)
        .add("group", DataTypes.IntegerType, false);
    sc.setJobDescription("scale bench: generate the planted corpus");
    spark.createDataFrame(rows, schema).write().mode(SaveMode.Overwrite).parquet(dir);
    sc.setJobDescription("scale bench: count corpus tokens");
    return spark.read().parquet(dir).selectExpr("sum(size(tokens))").first().getLong(0);
  }

  /** The rows of partition {@code p}, generated lazily. */
  Iterator<Row> sentences(int p, long n) {
    SplittableRandom r = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + p);
    return new Iterator<>() {
      long left = n;

      @Override
      public boolean hasNext() {
        return left > 0;
      }

      @Override
      public Row next() {
        if (left-- <= 0) {
          throw new NoSuchElementException();
        }
        long g = drawGroup(r);
        boolean withNoise = r.nextDouble() < noise;
        int[] ids = new int[k + (withNoise ? 1 : 0)];
        for (int m = 0; m < k; m++) {
          ids[m] = (int) id(g, m);
        }
        if (withNoise) {
          ids[k] = (int) r.nextLong(v);
        }
        for (int i = ids.length - 1; i > 0; i--) {
          int j = r.nextInt(i + 1);
          int t = ids[i];
          ids[i] = ids[j];
          ids[j] = t;
        }
        return RowFactory.create(ids, (int) g);
      }
    };
  }

  /** Sentences per group in the Parquet corpus at {@code dir} (its {@code group} column). */
  public int[] groupCounts(SparkSession spark, String dir) {
    int gs = (int) groups;
    JavaSparkContext.fromSparkContext(spark.sparkContext()).setJobDescription("scale bench: count sentences per group");
    return spark.read().parquet(dir).select("group").javaRDD().mapPartitions(it -> {
      int[] c = new int[gs];
      while (it.hasNext()) {
        c[it.next().getInt(0)]++;
      }
      return Collections.singletonList(c).iterator();
    }).treeReduce((x, y) -> {
      for (int i = 0; i < x.length; i++) {
        x[i] += y[i];
      }
      return x;
    });
  }
}
