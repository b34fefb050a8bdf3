package io.embstore.spark;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.shard.EmbeddingClient;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Collectors;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The shards of a committed table hosted inside the executors for jobs that read rows by id (Spark
 * ML's {@code EmbeddingLookup} and {@code EmbeddingModel}): the training job's hosting ({@link
 * ShardHosting}: one short job starts a shard server in each executor, shard s on executor s mod
 * E, held by the executor's JVM-wide host, not by a task slot), for one table instead of the two
 * matrices of a training run. The driver starts it with {@link #start}; tasks reach the rows with
 * {@link #client}, which reads the shards of the task's own executor in process and the others
 * through Arrow Flight; {@link #close} stops every server (idempotent).
 */
public final class TableHosting implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(TableHosting.class);

  private final JavaSparkContext sc;
  private final String key;
  private final Path table;
  private final TableManifest manifest;
  private final List<ShardHosting.Placement> placements;
  private final List<String> endpoints;
  private final AtomicBoolean closed = new AtomicBoolean();

  private TableHosting(JavaSparkContext sc, String key, Path table, TableManifest manifest, List<ShardHosting.Placement> placements) {
    this.sc = sc;
    this.key = key;
    this.table = table;
    this.manifest = manifest;
    this.placements = placements;
    this.endpoints = placements.stream().map(ShardHosting.Placement::input).collect(Collectors.toList());
  }

  /** Hosts the shards of the table in {@code table} (a directory every executor reads) in the executors of {@code spark}. */
  public static TableHosting start(SparkSession spark, Path table) throws IOException {
    Path dir = table.toAbsolutePath();
    TableManifest m = Table.open(dir).manifest();
    JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
    String key = "table-" + UUID.randomUUID();
    TrainJob.describe(sc, "embstore: host the shards of " + dir);
    List<ShardHosting.Placement> placed = ShardHosting.hostTable(sc, key, dir.toString(), m.numShards());
    for (ShardHosting.Placement p : placed) {
      LOG.info("executor {} on {} hosts shards {} of {} at {}", p.executor(), p.host(), Arrays.toString(p.shards()), dir, p.input());
    }
    return new TableHosting(sc, key, dir, m, placed);
  }

  /** Names this hosting's servers and clients in the executors. */
  public String key() {
    return key;
  }

  public Path table() {
    return table;
  }

  /** The manifest of the table version the servers loaded. */
  public TableManifest manifest() {
    return manifest;
  }

  /** One endpoint per executor that hosts shards. */
  public List<String> endpoints() {
    return endpoints;
  }

  public boolean isClosed() {
    return closed.get();
  }

  /**
   * In a task (or the driver): this JVM's routing client of the hosting {@code key}, created on
   * first use and closed with the hosting. Shards that this JVM's own servers host are read in
   * process.
   */
  public static EmbeddingClient client(String key, byte[] manifestJson, List<String> endpoints) throws IOException {
    return ExecutorHost.client(key, "rows", ShardHosting.parse(manifestJson), endpoints, true, null);
  }

  /** Stops the shard servers in every executor (one short job, skipped when the context has stopped) and this JVM's clients. */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    if (sc.sc().isStopped()) {
      ExecutorHost.release(key);
    } else {
      ShardHosting.release(sc, key, placements, "embstore: stop the shard servers of " + table);
    }
    LOG.info("released the shards of {} ({})", table, key);
  }
}
