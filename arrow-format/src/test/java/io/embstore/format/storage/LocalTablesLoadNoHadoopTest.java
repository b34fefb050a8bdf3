package io.embstore.format.storage;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.fault.ChildJvm;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A local table (a plain path or a {@code file:} URI) is written, opened, verified, loaded and
 * exported with java.nio alone: in a fresh JVM that does all of it, no Hadoop class is loaded, so
 * Hadoop's layer is not in a local read's path (and an application without Hadoop's jars works).
 */
class LocalTablesLoadNoHadoopTest {
  @TempDir Path tmp;

  @Test
  void localTablesNeverLoadHadoop() throws Exception {
    try (ChildJvm child = ChildJvm.start(LocalTableChild.class, ChildJvm.defaultJvmArgs(),
        Files.createTempFile(tmp, "child", ".err"), tmp.resolve("t").toString())) {
      assertThat(child.waitFor(120_000)).as("stderr: %s", child.stderrText()).isZero();
      assertThat(child.output()).as("classes loaded by the child").containsExactly("NO_HADOOP");
    }
    assertThat(tmp.resolve("out.npy")).exists();
  }
}
