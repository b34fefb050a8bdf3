package io.embstore.format.fault;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.apache.arrow.memory.BufferAllocator;

/** Helpers shared by the fault and fuzz tests: read a whole table, list a directory, delete a tree. */
public final class TableFiles {
  private TableFiles() {}

  /** Every row of the table in id order, row-major (checksums of every shard verified). */
  public static float[] readAll(Table table, BufferAllocator allocator) throws IOException {
    TableManifest m = table.manifest();
    int dim = m.dim();
    float[] out = new float[Math.toIntExact(m.rows() * dim)];
    table.forEachRowInIdOrder(
        allocator,
        true,
        (firstId, n, buf, offset) -> {
          int base = (int) (firstId * dim);
          for (int i = 0; i < n * dim; i++) {
            out[base + i] = buf.getFloat(offset + 4L * i);
          }
        });
    return out;
  }

  /** Names of the files in {@code dir}, sorted (empty when it does not exist). */
  public static TreeSet<String> list(Path dir) throws IOException {
    TreeSet<String> names = new TreeSet<>();
    if (!Files.isDirectory(dir)) {
      return names;
    }
    try (Stream<Path> s = Files.list(dir)) {
      s.forEach(p -> names.add(p.getFileName().toString()));
    }
    return names;
  }

  /** The files a committed manifest names, plus manifest.json itself. */
  public static TreeSet<String> filesOf(TableManifest m) {
    TreeSet<String> names = new TreeSet<>();
    names.add("manifest.json");
    List<String> files = new ArrayList<>();
    m.shards().forEach(s -> files.add(s.file()));
    m.vocabularyFiles().forEach(v -> files.add(v.file()));
    names.addAll(files);
    return names;
  }

  /** Deletes {@code dir} and everything below it; nothing when it does not exist. */
  public static void deleteTree(Path dir) throws IOException {
    if (!java.nio.file.Files.exists(dir)) {
      return;
    }
    try (java.util.stream.Stream<Path> s = java.nio.file.Files.walk(dir)) {
      for (Path f : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
        java.nio.file.Files.delete(f);
      }
    }
  }
}
