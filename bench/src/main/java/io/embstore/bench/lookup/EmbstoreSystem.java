package io.embstore.bench.lookup;

import io.embstore.bench.common.IdStream;
import io.embstore.bench.common.Measure;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;

/** Placeholder until shard-client has EmbeddingClient and ShardServer. */
final class EmbstoreSystem implements AutoCloseable {
  static EmbstoreSystem start(Path table, boolean process, String heap, BufferAllocator root, PrintStream out) {
    throw new UnsupportedOperationException("Cannot start embstore: shard-client is not merged yet");
  }

  void check(IdStream ids, int b) {}

  Measure.Result lookupSync(IdStream ids, int b, Measure m) {
    return null;
  }

  Measure.Result lookupAsync(IdStream ids, int b, int window, Measure m) {
    return null;
  }

  Measure.Result updateSync(IdStream ids, int b, Measure m) {
    return null;
  }

  Measure.Result updateAsync(IdStream ids, int b, int window, Measure m) {
    return null;
  }

  List<String> memory(String label) {
    return List.of();
  }

  @Override
  public void close() {}
}
