package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Partitioner;
import io.embstore.format.TestMatrices;
import io.embstore.shard.ShardServer;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HealthCommandTest {
  @TempDir Path dir;
  BufferAllocator allocator;
  final StringWriter out = new StringWriter();
  final StringWriter err = new StringWriter();

  @BeforeEach
  void setUp() throws Exception {
    allocator = new RootAllocator();
    TestMatrices.write(dir, TestMatrices.random(100, 8, 1), 100, 8, 2, Partitioner.MODULO, allocator);
  }

  @AfterEach
  void tearDown() {
    allocator.close();
  }

  private int health(String... args) {
    return Cli.run(new HealthCommand(), new PrintWriter(out, true), new PrintWriter(err, true), args);
  }

  @Test
  void servingServersAreHealthy() throws Exception {
    try (ShardServer a = ShardServer.builder().table(dir).shards(0).allocator(allocator).start();
        ShardServer b = ShardServer.builder().table(dir).shards(1).allocator(allocator).start()) {
      assertThat(health("--endpoint", a.endpoint() + "," + b.endpoint())).isZero();
      assertThat(out.toString()).contains(a.endpoint() + " ok").contains(b.endpoint() + " ok");
      assertThat(err.toString()).isEmpty();
    }
  }

  @Test
  void aStoppedServerFailsTheCheck() throws Exception {
    String gone;
    try (ShardServer s = ShardServer.builder().table(dir).shards(0).allocator(allocator).start()) {
      gone = s.endpoint();
    }
    assertThat(health("--endpoint", gone, "--deadline-ms", "3000")).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(err.toString()).startsWith("embstore health: Cannot check health of " + gone + ": UNAVAILABLE");
  }

  @Test
  void aServerWithTokensNeedsOne() throws Exception {
    try (ShardServer s = ShardServer.builder().table(dir).allocator(allocator)
        .readToken("r-secret").writeToken("w-secret").start()) {
      assertThat(health("--endpoint", s.endpoint())).isEqualTo(Cli.EXIT_FAILURE);
      assertThat(err.toString()).startsWith("embstore health: Cannot check health of " + s.endpoint() + ": UNAUTHENTICATED");
      err.getBuffer().setLength(0);
      assertThat(health("--endpoint", s.endpoint(), "--auth-token", "r-secret")).isZero();
      assertThat(out.toString()).contains(s.endpoint() + " ok");
    }
  }

  @Test
  void aMalformedEndpointIsRejected() {
    assertThat(health("--endpoint", "localhost:8815")).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(err.toString().trim()).isEqualTo(
        "embstore health: Cannot use endpoint 'localhost:8815': scheme 'localhost' (expected grpc+tcp://HOST:PORT or grpc+tls://HOST:PORT)");
  }

  @Test
  void aNonPositiveDeadlineIsRejected() {
    assertThat(health("--endpoint", "grpc+tcp://127.0.0.1:1", "--deadline-ms", "0")).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(err.toString().trim()).isEqualTo("embstore health: Cannot check health: --deadline-ms 0 (must be at least 1)");
  }
}
