package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.TableLocation;
import io.embstore.format.TestMatrices;
import io.embstore.format.ValueType;
import io.embstore.shard.ShardServer;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code embstore lookup --stored-rows} on an int8 table: the client decodes the stored bytes to the rows the server would send. */
class Int8LookupCommandTest {
  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardServer server;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    if (server != null) {
      server.close();
    }
    allocator.close(); // fails the test on a leak
  }

  @Test
  void lookupWithStoredRowsPrintsTheSameRows() throws IOException {
    int rows = 30;
    int dim = 5;
    Path dir = tmp.resolve("t");
    TestMatrices.write(TableLocation.of(dir), TestMatrices.random(rows, dim, 4), rows, dim, 2, "modulo", ValueType.INT8, allocator);
    server = ShardServer.builder().table(dir).shards(0, 1).allocator(allocator).start();
    String plain = lookup("--table", dir.toString(), "--endpoints", server.endpoint(), "--ids", "0,7,29");
    String stored = lookup("--table", dir.toString(), "--endpoints", server.endpoint(), "--ids", "0,7,29", "--stored-rows");
    assertThat(stored).isEqualTo(plain);
    int[] bits = TestMatrices.readBits(dir, allocator);
    StringBuilder row7 = new StringBuilder("7\t");
    for (int c = 0; c < dim; c++) {
      row7.append(c == 0 ? "" : " ").append(Float.intBitsToFloat(bits[7 * dim + c]));
    }
    assertThat(plain.lines().toList().get(1)).isEqualTo(row7.toString());
  }

  private static String lookup(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Cli.run(new LookupCommand(), new PrintWriter(out, true), new PrintWriter(err, true), args);
    assertThat(code).as("stderr: %s", err).isZero();
    return out.toString();
  }
}
