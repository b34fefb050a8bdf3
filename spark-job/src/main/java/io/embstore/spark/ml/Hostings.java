package io.embstore.spark.ml;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.spark.TableHosting;
import java.io.IOException;
import java.lang.ref.Cleaner;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.apache.spark.SparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerApplicationEnd;
import org.apache.spark.sql.SparkSession;

/**
 * The driver's table hostings of Spark ML, one per (application, table directory, table version),
 * shared by every DataFrame and model that reads the table. A hosting lives while anything that
 * reads through it can still run: each {@link #acquire} gives a {@link Lease}, held by the lookup
 * function of a transformed DataFrame or by a model, and the hosting is released when every lease
 * has become unreachable (seen by the garbage collector, as Spark's ContextCleaner frees the shuffles and
 * broadcasts of unreachable RDDs), when {@link #release} is called, or when the application ends.
 */
final class Hostings {
  private static final Cleaner CLEANER = Cleaner.create();
  /** Releases run here, not on the cleaner's thread: releasing runs a short Spark job. */
  private static final ExecutorService RELEASER = Executors.newSingleThreadExecutor(r -> {
    Thread t = new Thread(r, "embstore-ml-release");
    t.setDaemon(true);
    return t;
  });
  private static final Map<String, Entry> HOSTED = new HashMap<>();
  private static final Set<String> LISTENING = new HashSet<>();

  private Hostings() {}

  private static final class Entry {
    final TableHosting hosting;
    int owners;

    Entry(TableHosting hosting) {
      this.hosting = hosting;
    }
  }

  /** A hold on a hosting: the hosting stays while some lease on it is reachable. */
  static final class Lease {
    final TableHosting hosting;

    private Lease(TableHosting hosting) {
      this.hosting = hosting;
    }
  }

  /** A lease on the hosting of the table in {@code table} for {@code spark}, started when there is none. */
  static Lease acquire(SparkSession spark, Path table) throws IOException {
    TableManifest m = Table.open(table).manifest();
    SparkContext sc = spark.sparkContext();
    String key = sc.applicationId() + "|" + table + "|" + m.tableVersion();
    Entry e;
    synchronized (Hostings.class) {
      e = HOSTED.get(key);
      if (e == null || e.hosting.isClosed()) {
        e = new Entry(TableHosting.start(spark, table));
        HOSTED.put(key, e);
        listen(sc);
      }
      e.owners++;
    }
    Entry held = e;
    Lease lease = new Lease(e.hosting);
    CLEANER.register(lease, () -> dropOwner(key, held));
    return lease;
  }

  private static void dropOwner(String key, Entry e) {
    synchronized (Hostings.class) {
      if (--e.owners > 0) {
        return;
      }
      HOSTED.remove(key, e);
    }
    RELEASER.execute(e.hosting::close);
  }

  /** Releases the hostings of {@code table} now (every version, every application of this JVM); returns how many. */
  static int release(Path table) {
    List<TableHosting> closing = new ArrayList<>();
    synchronized (Hostings.class) {
      HOSTED.entrySet().removeIf(e -> {
        if (e.getValue().hosting.table().equals(table)) {
          closing.add(e.getValue().hosting);
          return true;
        }
        return false;
      });
    }
    closing.forEach(TableHosting::close);
    return closing.size();
  }

  /** Releases every hosting of application {@code appId} when it ends. */
  private static void listen(SparkContext sc) {
    String appId = sc.applicationId();
    if (!LISTENING.add(appId)) {
      return;
    }
    sc.addSparkListener(new SparkListener() {
      @Override
      public void onApplicationEnd(SparkListenerApplicationEnd end) {
        List<TableHosting> closing = new ArrayList<>();
        synchronized (Hostings.class) {
          HOSTED.entrySet().removeIf(e -> {
            if (e.getKey().startsWith(appId + "|")) {
              closing.add(e.getValue().hosting);
              return true;
            }
            return false;
          });
          LISTENING.remove(appId);
        }
        closing.forEach(TableHosting::close);
      }
    });
  }
}
