package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.TableWriter;
import io.embstore.format.TestMatrices;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link ServerLauncher}: the ready line, serving until stopped, and the arguments of its main
 * (the server processes of tests and benchmarks), each bad one refused naming it.
 */
@Timeout(120)
class ServerLauncherTest {
  @TempDir Path tmp;

  @Test
  void servesFromTheReadyLineUntilStoppedThenCloses() throws Exception {
    int v = 40;
    int c = 3;
    float[] m = TestMatrices.random(v, c, 3);
    Path table = tmp.resolve("t");
    try (BufferAllocator allocator = new RootAllocator()) {
      try (TableWriter w = TableWriter.create(table, v, c, 2, "modulo", allocator)) {
        ByteBuffer buf = ByteBuffer.allocateDirect(m.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        buf.asFloatBuffer().put(m);
        w.createdBy("test").appendInIdOrder(buf, v);
        w.commit();
      }
      ServerLauncher launcher = new ServerLauncher();
      StringWriter out = new StringWriter();
      ServerLauncher.Launch l = ServerLauncher.parse("--table", table.toString(), "--shards", "1,0", "--port", "0", "--read-token", "r");
      CompletableFuture<Void> running = CompletableFuture.runAsync(() -> {
        try {
          launcher.run(l.builder(), l.table(), new PrintWriter(out, true));
        } catch (Exception e) {
          throw new RuntimeException(e);
        }
      });
      while (launcher.server() == null || out.toString().isEmpty()) {
        assertThat(running).isNotDone();
        Thread.sleep(20);
      }
      ShardServer s = launcher.server();
      assertThat(out.toString()).isEqualTo("embstore serve: serving shards [0, 1] of " + table + " at " + s.endpoint() + System.lineSeparator());
      assertThat(s.endpoint()).startsWith("grpc+tcp://127.0.0.1:");
      float[] row = new float[c];
      try (EmbeddingClient client = EmbeddingClient.builder().table(table).endpoints(List.of(s.endpoint())).token("r")
          .allocator(allocator).build()) {
        client.lookup(new long[] {3}, row);
        assertThat(row).containsExactly(m[3 * c], m[3 * c + 1], m[3 * c + 2]);
      }
      launcher.stop();
      running.get(30, TimeUnit.SECONDS);
      assertThatThrownBy(() -> EmbeddingClient.builder().table(table).endpoints(List.of(s.endpoint())).token("r")
          .allocator(allocator).build().close()).as("a client of the closed server").isInstanceOf(Exception.class);
    }
  }

  @Test
  void badArgumentsAreRefusedNamingThem() {
    assertThatThrownBy(() -> ServerLauncher.parse("--shards", "0"))
        .hasMessage("Cannot launch a shard server: --table is required");
    assertThatThrownBy(() -> ServerLauncher.parse("--table", "t", "--port"))
        .hasMessage("Cannot launch a shard server: --port has no value");
    assertThatThrownBy(() -> ServerLauncher.parse("--table", "t", "--port", "x1"))
        .hasMessage("Cannot launch a shard server: --port x1 (not a number)");
    assertThatThrownBy(() -> ServerLauncher.parse("--table", "t", "--tls-cert", "c.pem"))
        .hasMessageStartingWith("Cannot launch a shard server: unknown argument --tls-cert (known: --table ");
    assertThatThrownBy(() -> ServerLauncher.parse("--table", "t", "--lr", "0.5"))
        .hasMessage("Cannot launch a shard server: --lr 0.5 needs --optimizer");
  }
}
