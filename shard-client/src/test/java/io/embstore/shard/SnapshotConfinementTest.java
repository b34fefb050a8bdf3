package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.Table;
import io.embstore.format.TableFormat;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.stream.Stream;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.Result;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code snapshot} action writes only below the served table's directory, or below the
 * directory fixed with {@code snapshotDir} ({@code serve --snapshot-dir}): a raw Flight client
 * asking for {@code ..}, an absolute directory elsewhere, or a symbolic link that leads out gets
 * UNAUTHORIZED (gRPC PERMISSION_DENIED) and nothing is written there.
 */
class SnapshotConfinementTest {
  @TempDir Path tmp;
  BufferAllocator allocator;
  ShardFixture fx;
  Path elsewhere;

  @BeforeEach
  void setUp() throws Exception {
    allocator = new RootAllocator();
    fx = new ShardFixture(tmp.resolve("t"), 200, 4, 2, "modulo", allocator);
    elsewhere = Files.createDirectories(tmp.resolve("elsewhere"));
  }

  @AfterEach
  void tearDown() {
    fx.close();
    allocator.close();
  }

  private static String snapshot(FlightClient c, String dir, long version) {
    byte[] body = new Messages.SnapshotRequest(dir, version, null).toJson();
    Iterator<Result> it = c.doAction(new Action(Protocol.ACTION_SNAPSHOT, body));
    return new String(it.next().getBody(), StandardCharsets.UTF_8);
  }

  private void assertRefused(FlightClient c, String dir, String message) {
    assertThatThrownBy(() -> snapshot(c, dir, 2))
        .isInstanceOf(FlightRuntimeException.class)
        .hasMessage(message)
        .satisfies(e -> assertThat(((FlightRuntimeException) e).status().code()).isEqualTo(FlightStatusCode.UNAUTHORIZED));
  }

  private static long files(Path dir) throws Exception {
    try (Stream<Path> s = Files.list(dir)) {
      return s.count();
    }
  }

  @Test
  void snapshotsGoBelowTheTableDirectoryOnly() throws Exception {
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).allocator(allocator));
    Path root = fx.dir.toRealPath();
    Path link = Files.createSymbolicLink(fx.dir.resolve("link"), elsewhere);
    try (FlightClient c = FlightClient.builder(allocator, Location.forGrpcInsecure("127.0.0.1", s.port())).build()) {
      String up = fx.dir + "/../elsewhere";
      assertRefused(c, up, "Cannot snapshot to " + up + ": outside " + root + " (this server writes snapshots only below it)");
      assertRefused(c, elsewhere.toString(), "Cannot snapshot to " + elsewhere + ": outside " + root + " (this server writes snapshots only below it)");
      assertRefused(c, "/", "Cannot snapshot to /: outside " + root + " (this server writes snapshots only below it)");
      assertRefused(c, link.toString(), "Cannot snapshot to " + link + " (" + elsewhere.toRealPath() + "): outside " + root
          + " (this server writes snapshots only below it)");
      assertRefused(c, link + "/sub/..", "Cannot snapshot to " + link + "/sub/.. (" + elsewhere.toRealPath() + "): outside " + root
          + " (this server writes snapshots only below it)");
      assertThat(files(elsewhere)).as("nothing written outside").isZero();

      // a link named like the next shard file, leading out: the file is not created through it
      Path target = elsewhere.resolve("target.arrow");
      Path trap = Files.createSymbolicLink(fx.dir.resolve(TableFormat.shardFileName(0, 2)), target);
      assertThatThrownBy(() -> snapshot(c, fx.dir.toString(), 2))
          .isInstanceOf(FlightRuntimeException.class)
          .hasMessageStartingWith("Cannot snapshot to " + root + ": version 2 already has a file " + trap);
      assertThat(Files.exists(target)).isFalse();
      Files.delete(trap);
      assertThat(snapshot(c, fx.dir.toString(), 2)).contains("\"version\":2");

      // below the table's directory: written
      Path sub = Files.createDirectories(fx.dir.resolve("sub"));
      assertThat(snapshot(c, sub.toString(), 2)).contains(TableFormat.shardFileName(1, 2));
      assertThat(files(sub)).isEqualTo(2);
      Path missing = fx.dir.resolve("missing");
      assertThatThrownBy(() -> snapshot(c, missing.toString(), 2))
          .isInstanceOf(FlightRuntimeException.class)
          .hasMessage("Cannot snapshot to " + missing + ": no such directory");
    }
    assertThat(Table.open(fx.dir).manifest().tableVersion()).isEqualTo(1);
  }

  @Test
  void aSnapshotDirectoryReplacesTheTableDirectoryAsTheOnePlaceToWrite() throws Exception {
    Path snaps = tmp.resolve("snaps");
    ShardServer s = fx.start(ShardServer.builder().table(fx.dir).snapshotDir(snaps).allocator(allocator));
    assertThat(Files.isDirectory(snaps)).as("created at start").isTrue();
    try (FlightClient c = FlightClient.builder(allocator, Location.forGrpcInsecure("127.0.0.1", s.port())).build()) {
      assertRefused(c, fx.dir.toString(), "Cannot snapshot to " + fx.dir + ": outside " + snaps.toRealPath()
          + " (this server writes snapshots only below it)");
      assertThat(snapshot(c, snaps.toString(), 2)).contains(TableFormat.shardFileName(0, 2));
    }
    try (EmbeddingClient client = EmbeddingClient.builder().table(fx.dir).endpoints(fx.endpoints()).allocator(allocator).build()) {
      Path table2 = Files.createDirectories(snaps.resolve("v"));
      assertThat(TableSnapshot.write(client, table2).tableVersion()).isEqualTo(2);
      assertThat(Table.open(table2).verify(allocator)).hasSize(3);
      assertThatThrownBy(() -> TableSnapshot.write(client, elsewhere))
          .isInstanceOf(ShardException.class)
          .hasMessageContaining("Cannot snapshot to " + elsewhere + ": outside " + snaps.toRealPath())
          .satisfies(e -> assertThat(((ShardException) e).code()).isEqualTo(FlightStatusCode.UNAUTHORIZED));
    }
    assertThat(files(elsewhere)).isZero();
  }
}
