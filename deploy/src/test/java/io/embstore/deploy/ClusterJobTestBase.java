package io.embstore.deploy;

import static io.embstore.deploy.ClusterEndToEndIT.sparkEnv;
import static io.embstore.deploy.ClusterEndToEndIT.stopCluster;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the integration tests that submit a training job to a standalone cluster share: a temporary
 * directory, the cluster's run directory and the driver process, both stopped after each test
 * (also when it fails), and an allocator that fails the test on a leak.
 */
abstract class ClusterJobTestBase {
  @TempDir Path tmp;
  Path clusterDir;
  Process driver;
  BufferAllocator allocator;

  @BeforeEach
  void setUp() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void stopAll() throws Exception {
    if (driver != null && driver.isAlive()) {
      driver.descendants().forEach(ProcessHandle::destroyForcibly);
      driver.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
    }
    if (clusterDir != null) {
      stopCluster(tmp, clusterDir);
    }
    allocator.close();
  }

  /** Starts SparkSubmit {@code cmd} (from {@link ClusterEndToEndIT#submitCommand}) with its output in {@code log}. */
  Process submit(Path log, List<String> cmd) throws IOException {
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(tmp.toFile()).redirectErrorStream(true)
        .redirectOutput(log.toFile()).redirectInput(ProcessBuilder.Redirect.PIPE);
    pb.environment().putAll(sparkEnv());
    Process p = pb.start();
    p.getOutputStream().close();
    return p;
  }
}
