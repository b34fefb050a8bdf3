package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.TableManifest;
import io.embstore.format.TestMatrices;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The write-ahead log of {@code serve --wal}, in process: updates acknowledged through Flight are
 * replayed at a restart to the same rows and optimizer state bit for bit (compared with {@link
 * ReferenceRows}, the same optimizer code applied to the acknowledged batches), also on top of a
 * snapshot taken while updates went on; a torn tail is cut off; damage in the middle, a table the
 * log does not follow, another optimizer and a second server on the same log refuse to start; old
 * segments go once a snapshot is committed. Process kills: {@code fault.WalKillTest}.
 */
@Timeout(300)
class WriteAheadLogTest {
  static final int DIM = 8;
  @TempDir Path tmp;
  BufferAllocator allocator;
  Path table;
  Path wal;
  float[] matrix;
  final List<ShardServer> servers = new ArrayList<>();

  @BeforeEach
  void setUp() {
    allocator = new RootAllocator();
    table = tmp.resolve("t");
    wal = tmp.resolve("wal");
  }

  @AfterEach
  void tearDown() {
    for (ShardServer s : servers) {
      s.close();
    }
    allocator.close();
  }

  private void writeTable(long rows, int shards) throws IOException {
    matrix = TestMatrices.random(rows, DIM, 3);
    TestMatrices.write(table, matrix, rows, DIM, shards, "modulo", allocator);
  }

  private ShardServer start(Optimizer optimizer, String sync) throws IOException {
    ShardServer s = ShardServer.builder().table(table).optimizer(optimizer).wal(wal).walSync(sync).allocator(allocator).start();
    servers.add(s);
    return s;
  }

  private void stop(ShardServer s) {
    s.close();
    servers.remove(s);
  }

  private EmbeddingClient client(ShardServer s) throws IOException {
    return EmbeddingClient.builder().table(table).endpoints(List.of(s.endpoint())).allocator(allocator).build();
  }

  record Batch(long[] ids, float[] grads, float lr) {}

  /** {@code n} distinct ids from {@code [0, rows)} with {@code id mod stride == lane}, random gradients and rate. */
  static Batch batch(SplittableRandom r, long rows, int n, int lane, int stride) {
    Set<Long> ids = new LinkedHashSet<>();
    while (ids.size() < n) {
      ids.add(r.nextLong(rows / stride) * stride + lane);
    }
    float[] g = new float[n * DIM];
    for (int i = 0; i < g.length; i++) {
      g[i] = (float) (r.nextDouble() * 2 - 1);
    }
    float[] rates = {0.01f, 0.05f, 0.003f};
    return new Batch(ids.stream().mapToLong(Long::longValue).toArray(), g, rates[r.nextInt(rates.length)]);
  }

  /** Snapshots what the server holds into the table directory and checks it against the reference: rows and state bit for bit. */
  private void assertHolds(ShardServer s, ReferenceRows ref) throws IOException {
    try (EmbeddingClient c = client(s)) {
      TableSnapshot.write(c, table);
    }
    try (ReferenceRows.Snapshot snap = new ReferenceRows.Snapshot(table, allocator)) {
      assertThat(ref.diff(snap)).as("ids whose row or optimizer state differs from the reference").isEmpty();
    }
  }

  @Test
  void acknowledgedUpdatesAreReplayedToTheSameRowsAndStateAfterARestart() throws Exception {
    writeTable(2_000, 2);
    Optimizer adam = Optimizer.adam(0.01, 0.9, 0.999, 1e-8);
    try (ReferenceRows ref = new ReferenceRows(allocator, matrix, 2_000, DIM, adam)) {
      ShardServer s = start(adam, null);
      SplittableRandom r = new SplittableRandom(1);
      try (EmbeddingClient c = client(s)) {
        for (int i = 0; i < 60; i++) {
          Batch b = batch(r, 2_000, 1 + r.nextInt(40), 0, 1);
          c.update(b.ids(), b.grads(), b.lr());
          ref.apply(b.ids(), b.grads(), ReferenceRows.wireRate(b.lr()));
        }
      }
      stop(s);
      ShardServer again = start(adam, null);
      assertThat(again.hosted(0, "test").log().replayed()).isPositive();
      assertHolds(again, ref);
    }
  }

  /** In process, a shard with a log keeps the staged path (its record needs the bytes): logged and replayed alike. */
  @Test
  void updatesInProcessAreLoggedAndReplayedToTheSameRowsAndState() throws Exception {
    writeTable(2_000, 2);
    Optimizer adam = Optimizer.adam(0.01, 0.9, 0.999, 1e-8);
    try (ReferenceRows ref = new ReferenceRows(allocator, matrix, 2_000, DIM, adam)) {
      ShardServer s = start(adam, null);
      SplittableRandom r = new SplittableRandom(2);
      try (EmbeddingClient c = EmbeddingClient.builder().table(table).endpoints(List.of(s.endpoint())).inProcess(List.of(s))
          .allocator(allocator).build()) {
        for (int i = 0; i < 60; i++) {
          Batch b = batch(r, 2_000, 1 + r.nextInt(40), 0, 1);
          c.update(b.ids(), b.grads(), b.lr());
          ref.apply(b.ids(), b.grads(), ReferenceRows.wireRate(b.lr()));
        }
      }
      assertThat(s.stats().inProcessRequests()).isPositive();
      stop(s);
      ShardServer again = start(adam, null);
      assertThat(again.hosted(0, "test").log().replayed()).isPositive();
      assertHolds(again, ref);
    }
  }

  @Test
  void aSnapshotTakenWhileUpdatesGoOnIsACutTheLogReplaysOnExactly() throws Exception {
    // 200,000 rows of dim 8 with Adam's state: four chunks of 65,536 rows, copied one after the other.
    long rows = 200_000;
    writeTable(rows, 1);
    Optimizer adam = Optimizer.adam(0.01, 0.9, 0.999, 1e-8);
    try (ReferenceRows ref = new ReferenceRows(allocator, matrix, rows, DIM, adam)) {
      ShardServer s = start(adam, "none");
      List<List<Batch>> acked = new ArrayList<>();
      AtomicBoolean stop = new AtomicBoolean();
      List<Thread> writers = new ArrayList<>();
      List<Throwable> failures = new java.util.concurrent.CopyOnWriteArrayList<>();
      try (EmbeddingClient c = client(s)) {
        for (int w = 0; w < 2; w++) {
          List<Batch> mine = new ArrayList<>();
          acked.add(mine);
          int lane = w;
          Thread t = new Thread(() -> {
            SplittableRandom r = new SplittableRandom(10 + lane);
            try {
              // each writer owns the ids of its lane, so that the order of each row's updates is known
              while (!stop.get() || mine.size() < 50) {
                Batch b = batch(r, rows, 64, lane, 2);
                c.update(b.ids(), b.grads(), b.lr());
                mine.add(b);
              }
            } catch (IOException | RuntimeException e) {
              failures.add(e);
            }
          });
          t.start();
          writers.add(t);
        }
        Thread.sleep(300);
        TableManifest v2 = TableSnapshot.write(c, table);
        Thread.sleep(200);
        stop.set(true);
        for (Thread t : writers) {
          t.join();
        }
        assertThat(failures).isEmpty();
        assertThat(v2.tableVersion()).isEqualTo(2);
      }
      ShardLog.Base cut = s.hosted(0, "test").log().bases().get(1);
      System.out.printf("snapshot cut: update numbers at its 4 chunk copies %s; %d and %d batches acknowledged%n",
          java.util.Arrays.toString(cut.seqs()), acked.get(0).size(), acked.get(1).size());
      assertThat(cut.seqs()).hasSize(4);
      stop(s);
      for (List<Batch> mine : acked) {
        for (Batch b : mine) {
          ref.apply(b.ids(), b.grads(), ReferenceRows.wireRate(b.lr()));
        }
      }
      // restart from version 2 (the snapshot) and the log: each chunk gets exactly the updates it lacks
      ShardServer again = start(adam, "none");
      assertThat(again.manifest().tableVersion()).isEqualTo(2);
      assertHolds(again, ref);
    }
  }

  /** Offsets of the records of a segment file (walking their length fields). */
  private static List<Long> recordOffsets(Path segment) throws IOException {
    List<Long> offsets = new ArrayList<>();
    try (FileChannel ch = FileChannel.open(segment, StandardOpenOption.READ)) {
      ByteBuffer h = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
      long pos = 0;
      while (pos < ch.size()) {
        offsets.add(pos);
        h.clear();
        ch.read(h, pos);
        pos += ShardLog.HEADER + h.getInt(0);
      }
    }
    return offsets;
  }

  private static Path onlySegmentWithUpdates(Path shardLog) throws IOException {
    try (var files = Files.list(shardLog)) {
      return files.filter(p -> p.getFileName().toString().endsWith(".log"))
          .filter(p -> {
            try {
              return recordOffsets(p).size() > 2;
            } catch (IOException e) {
              throw new java.io.UncheckedIOException(e);
            }
          }).findFirst().orElseThrow();
    }
  }

  /** Writes 10 update batches of shard 0 through a server with a log, then stops it; returns them. */
  private List<Batch> tenBatches(Optimizer o) throws IOException {
    ShardServer s = start(o, "always");
    List<Batch> sent = new ArrayList<>();
    SplittableRandom r = new SplittableRandom(5);
    try (EmbeddingClient c = client(s)) {
      for (int i = 0; i < 10; i++) {
        Batch b = batch(r, 500, 7, 0, 1);
        c.update(b.ids(), b.grads(), b.lr());
        sent.add(b);
      }
    }
    stop(s);
    return sent;
  }

  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.ValueSource(strings = {"cut short", "garbage after a part"})
  void aTornTailIsCutOffAndTheRestReplayed(String damage) throws Exception {
    writeTable(500, 1);
    Optimizer rowwise = Optimizer.rowwiseAdagrad(0.05, 1e-8);
    List<Batch> sent = tenBatches(rowwise);
    Path segment = onlySegmentWithUpdates(ShardLog.shardDir(wal, 0));
    List<Long> offsets = recordOffsets(segment);
    long last = offsets.get(offsets.size() - 1);
    // the last record cut short (a write killed half-way), or long enough but not what was written
    try (FileChannel ch = FileChannel.open(segment, StandardOpenOption.WRITE)) {
      ch.truncate(last + 30);
      if (damage.startsWith("garbage")) {
        byte[] junk = new byte[400];
        new SplittableRandom(2).nextBytes(junk);
        ch.write(ByteBuffer.wrap(junk), last + 30);
      }
    }
    try (ReferenceRows ref = new ReferenceRows(allocator, matrix, 500, DIM, rowwise)) {
      for (Batch b : sent.subList(0, 9)) {
        ref.apply(b.ids(), b.grads(), ReferenceRows.wireRate(b.lr()));
      }
      ShardServer again = start(rowwise, "always");
      assertThat(Files.size(segment)).isEqualTo(last);
      assertThat(again.hosted(0, "test").log().replayed()).isEqualTo(9);
      assertHolds(again, ref);
    }
  }

  @Test
  void aDamagedRecordInTheMiddleRefusesToStartNamingFileAndOffset() throws Exception {
    writeTable(500, 1);
    Optimizer sgd = Optimizer.sgd(0.1);
    tenBatches(sgd);
    Path segment = onlySegmentWithUpdates(ShardLog.shardDir(wal, 0));
    List<Long> offsets = recordOffsets(segment);
    long middle = offsets.get(5);
    long size = Files.size(segment);
    try (FileChannel ch = FileChannel.open(segment, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ByteBuffer one = ByteBuffer.allocate(1);
      ch.read(one, middle + 40);
      one.put(0, (byte) (one.get(0) ^ 0x10)).rewind();
      ch.write(one, middle + 40);
    }
    assertThatThrownBy(() -> start(sgd, "always"))
        .isInstanceOf(IOException.class)
        .hasMessage("Cannot open write-ahead log " + segment + ": damaged at offset " + middle + " (record checksum mismatch; a valid record follows at offset "
            + offsets.get(6) + "); its updates cannot be replayed past it (move the log away to start without them)");
    assertThat(Files.size(segment)).as("nothing cut off").isEqualTo(size);
    // a flip in a record's header (its length) is found the same way
    try (FileChannel ch = FileChannel.open(segment, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ByteBuffer one = ByteBuffer.allocate(1);
      ch.read(one, middle + 40);
      one.put(0, (byte) (one.get(0) ^ 0x10)).rewind();
      ch.write(one, middle + 40);
      ch.read(one.rewind(), offsets.get(3) + 1);
      one.put(0, (byte) (one.get(0) ^ 0x01)).rewind();
      ch.write(one, offsets.get(3) + 1);
    }
    assertThatThrownBy(() -> start(sgd, "always"))
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith("Cannot open write-ahead log " + segment + ": damaged at offset " + offsets.get(3) + " (record header checksum mismatch; a valid record follows at offset "
            + offsets.get(4) + ")");
  }

  @Test
  void aLogThatFollowsAnotherTableOrOptimizerRefusesToStartAndOneLogServesOneServer() throws Exception {
    writeTable(500, 1);
    Optimizer sgd = Optimizer.sgd(0.1);
    tenBatches(sgd);
    Path segment = onlySegmentWithUpdates(ShardLog.shardDir(wal, 0));
    assertThatThrownBy(() -> start(Optimizer.adagrad(0.1, 1e-8), "always"))
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith("Cannot open write-ahead log " + segment.getParent().resolve("wal-00000000000000000000.log")
            + ": written for optimizer sgd {}, but the server uses adagrad {eps=1.0E-8}");

    ShardServer s = start(sgd, "always");
    assertThatThrownBy(() -> start(sgd, "always"))
        .isInstanceOf(IOException.class)
        .hasMessage("Cannot open write-ahead log " + ShardLog.shardDir(wal, 0) + ": in use by another server (one log directory per hosted shard)");
    stop(s);

    // the table replaced by another one (an import over it): the log does not follow it
    io.embstore.format.TableManifest v1 = io.embstore.format.TableManifest.read(table);
    io.embstore.format.fault.TableFiles.deleteTree(table);
    TestMatrices.write(table, TestMatrices.random(500, DIM, 99), 500, DIM, 1, "modulo", allocator);
    io.embstore.format.TableManifest other = io.embstore.format.TableManifest.read(table);
    assertThatThrownBy(() -> start(sgd, "always"))
        .isInstanceOf(IOException.class)
        .hasMessage("Cannot open write-ahead log " + ShardLog.shardDir(wal, 0) + ": it follows " + ShardLog.Origin.of(1, v1.shard(0))
            + ", not the loaded " + ShardLog.Origin.of(1, other.shard(0))
            + " (serve the table version it follows, or move the log away to start without its updates)");
  }

  @Test
  void segmentsBeforeACommittedSnapshotAreDeletedAtTheNextSnapshotOrAtARestart() throws Exception {
    writeTable(500, 1);
    Optimizer sgd = Optimizer.sgd(0.1);
    try (ReferenceRows ref = new ReferenceRows(allocator, matrix, 500, DIM, sgd)) {
      ShardServer s = start(sgd, "10ms");
      Path dir = ShardLog.shardDir(wal, 0);
      SplittableRandom r = new SplittableRandom(8);
      try (EmbeddingClient c = client(s)) {
        for (int round = 0; round < 3; round++) {
          for (int i = 0; i < 5; i++) {
            Batch b = batch(r, 500, 9, 0, 1);
            c.update(b.ids(), b.grads(), b.lr());
            ref.apply(b.ids(), b.grads(), ReferenceRows.wireRate(b.lr()));
          }
          TableSnapshot.write(c, table);
        }
        // three snapshots: the first started segment 2, each later one found the one before committed
        assertThat(s.hosted(0, "test").log().segmentFiles()).extracting(p -> p.getFileName().toString())
            .containsExactly("wal-00000000000000000010.log", "wal-00000000000000000015.log");
        Batch b = batch(r, 500, 9, 0, 1);
        c.update(b.ids(), b.grads(), b.lr());
        ref.apply(b.ids(), b.grads(), ReferenceRows.wireRate(b.lr()));
      }
      stop(s);
      ShardServer again = start(sgd, "10ms");
      // restarted from version 4: only its segment and the new one remain
      assertThat(again.hosted(0, "test").log().segmentFiles()).extracting(p -> p.getFileName().toString())
          .containsExactly("wal-00000000000000000015.log", "wal-00000000000000000016.log");
      assertThat(again.hosted(0, "test").log().replayed()).isEqualTo(1);
      try (var files = Files.list(dir)) {
        assertThat(files.filter(p -> p.toString().endsWith(".log")).count()).isEqualTo(2);
      }
      assertHolds(again, ref);
      // restarted again with no update since (the last segment holds only the snapshot's base): continued, not replaced
      stop(again);
      ShardServer third = start(sgd, "10ms");
      assertThat(third.hosted(0, "test").log().segmentFiles()).extracting(p -> p.getFileName().toString())
          .containsExactly("wal-00000000000000000016.log");
      assertThat(third.manifest().tableVersion()).isEqualTo(5);
      assertHolds(third, ref);
    }
  }

  @Test
  void badSyncModesAreRefusedNamingTheValue() throws Exception {
    writeTable(100, 1);
    for (String bad : new String[] {"5s", "0ms", "sometimes", "-3ms", ""}) {
      assertThatThrownBy(() -> ShardServer.builder().table(table).wal(wal).walSync(bad).allocator(allocator).start())
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("Cannot use write-ahead log sync '" + bad + "': expected always, none or <N>ms (N from 1 to 999999, e.g. 10ms)");
    }
    assertThatThrownBy(() -> ShardServer.builder().table(table).walSync("always").allocator(allocator).start())
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot start shard server: walSync always needs a write-ahead log directory (wal)");
  }
}
