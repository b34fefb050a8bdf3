package io.embstore.format.storage;

import io.embstore.format.Table;
import io.embstore.format.TableLocation;
import io.embstore.format.TestMatrices;
import io.embstore.format.convert.ExportFormat;
import io.embstore.format.convert.Exporter;
import java.lang.reflect.Method;
import java.nio.file.Path;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * Child JVM of {@link LocalTablesLoadNoHadoopTest}: writes, opens, verifies, loads and exports a
 * table in the local directory {@code args[0]} (given as {@code file:} URI and as a path), then
 * prints each Hadoop class that the JVM has loaded, or {@code NO_HADOOP}.
 */
public final class LocalTableChild {
  private LocalTableChild() {}

  public static void main(String[] args) throws Exception {
    Path dir = Path.of(args[0]);
    try (BufferAllocator a = new RootAllocator()) {
      TestMatrices.write(TableLocation.of("file://" + dir.toAbsolutePath()), TestMatrices.random(500, 8, 1), 500, 8, 3, "modulo", a);
      Table t = Table.open(dir.toString());
      t.verify(a);
      try (ArrowBuf emb = a.buffer(t.manifest().partitioner().shardRows(1) * 8 * 4)) {
        t.readShardFully(1, a, emb);
      }
      Exporter.run(ExportFormat.NPY, TableLocation.of(dir.toString()), dir.resolveSibling("out.npy"), null, a);
    }
    Method loaded = ClassLoader.class.getDeclaredMethod("findLoadedClass", String.class);
    loaded.setAccessible(true);
    ClassLoader cl = ClassLoader.getSystemClassLoader();
    boolean any = false;
    for (String c : new String[] {"org.apache.hadoop.conf.Configuration", "org.apache.hadoop.fs.FileSystem",
        "org.apache.hadoop.fs.Path", "io.embstore.format.HadoopLocation"}) {
      if (loaded.invoke(cl, c) != null) {
        System.out.println("LOADED " + c);
        any = true;
      }
    }
    System.out.println(any ? "HADOOP" : "NO_HADOOP");
  }
}
