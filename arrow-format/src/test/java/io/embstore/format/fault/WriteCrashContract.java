package io.embstore.format.fault;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.Table;
import io.embstore.format.TableFormatException;
import io.embstore.format.TableLocation;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Crash during a table write: a child JVM ({@link TableWriterChild}) writes a table version and is
 * killed with SIGKILL at a random moment, many times. After every kill the table must open, verify,
 * and be exactly the previous or exactly the new version (every row compared), never a mix; the
 * leftovers of a killed writer must not stop the next writer.
 *
 * <p>The kill moment is chosen by the child's progress (see {@link #killPoint}), so kills land in
 * appends, in shard finishing (fsync, hsync), around the manifest commit, in the clean-up after it,
 * and after the exit, however fast the machine is at the time. Subclasses give the storage: the
 * local disk ({@link TableWriteCrashTest}) and HDFS ({@link HdfsWriteCrashTest}).
 */
abstract class WriteCrashContract {
  static final long ROWS = 60_000;
  static final int DIM = 128;
  static final int SHARDS = 2;
  static final long CHILD_TIMEOUT_MS = 120_000;

  @TempDir Path tmp;
  BufferAllocator allocator;

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() {
    allocator.close();
  }

  /** The table at {@code name} on the storage under test (a path or a URI). */
  abstract String location(String name);

  /** Kills per test. */
  abstract int kills();

  @Test
  void killedNextVersionWriterLeavesExactlyTheOldOrTheNewVersion() throws Exception {
    String dir = location("t");
    writeInProcess(dir, 1, "modulo");
    long current = 1;

    // Calibration: one uninterrupted write in a child gives the window to kill in.
    long commitMillis;
    try (ChildJvm child = startNext(dir)) {
      commitMillis = calibrate(child);
      assertThat(child.output()).contains("COMMITTED 2");
    }
    current = checkTableIsVersion(dir, current, current + 1);
    assertThat(current).isEqualTo(2);

    SplittableRandom random = new SplittableRandom(20261127L);
    int stayedOld = 0;
    int becameNew = 0;
    int leftovers = 0;
    for (int trial = 0; trial < kills(); trial++) {
      try (ChildJvm child = startNext(dir)) {
        killPoint(child, random, commitMillis, trial);
        if (child.process().isAlive()) {
          child.kill();
        } else {
          assertThat(child.process().exitValue())
              .as("trial %d: child ended by itself with an error; stderr: %s", trial, child.stderrText())
              .isZero();
        }
      }
      long before = current;
      current = checkTableIsVersion(dir, current, current + 1);
      if (current == before) {
        stayedOld++;
      } else {
        becameNew++;
      }
      TreeSet<String> extra = new TreeSet<>(TableLocation.of(dir).list());
      extra.removeAll(TableFiles.filesOf(Table.open(dir).manifest()));
      if (!extra.isEmpty()) {
        leftovers++;
      }
    }
    System.out.printf(
        "crash test (next version): %d kills (half among %d appends, half in a commit of ~%d ms): %d left the old version, %d the new one, %d left stray files%n",
        kills(), CHUNKS, commitMillis, stayedOld, becameNew, leftovers);

    // A writer after all the kills: succeeds, and its commit leaves only its own files.
    writeNextInProcess(dir, current);
    current = checkTableIsVersion(dir, current + 1, current + 1);
    assertThat(new TreeSet<>(TableLocation.of(dir).list())).isEqualTo(TableFiles.filesOf(Table.open(dir).manifest()));
  }

  @Test
  void killedImportLeavesNoTableOrAWholeOne() throws Exception {
    long commitMillis;
    String first = location("calibrate");
    try (ChildJvm child = startCreate(first)) {
      commitMillis = calibrate(child);
    }
    checkTableIsVersion(first, 1, 1);

    SplittableRandom random = new SplittableRandom(6L);
    int absent = 0;
    int noManifest = 0;
    int complete = 0;
    for (int trial = 0; trial < kills(); trial++) {
      String dir = location("import-" + trial);
      TableLocation loc = TableLocation.of(dir);
      try (ChildJvm child = startCreate(dir)) {
        killPoint(child, random, commitMillis, trial);
        if (child.process().isAlive()) {
          child.kill();
        } else {
          assertThat(child.process().exitValue()).as("trial %d stderr: %s", trial, child.stderrText()).isZero();
        }
      }
      if (!loc.exists()) {
        absent++;
      } else if (!loc.hasManifest()) {
        noManifest++;
        assertThatThrownBy(() -> Table.open(dir))
            .isInstanceOf(TableFormatException.class)
            .hasMessageContaining("Cannot open table " + dir)
            .hasMessageContaining("no manifest.json");
        if (!loc.list().isEmpty()) {
          // The next import into the same place is refused with a clear message, never mixed in.
          assertThatThrownBy(() -> TableWriter.create(loc, TableManifest.builder().rows(ROWS).dim(DIM).partitioner("range"), SHARDS, allocator))
              .isInstanceOf(java.nio.file.FileAlreadyExistsException.class)
              .hasMessageContaining("Cannot create table: output " + dir + " already exists");
        }
      } else {
        complete++;
        checkTableIsVersion(dir, 1, 1);
      }
    }
    System.out.printf(
        "crash test (import): %d kills (half among %d appends, half in a commit of ~%d ms): %d no directory, %d no manifest, %d complete%n",
        kills(), CHUNKS, commitMillis, absent, noManifest, complete);
  }

  static final int CHUNKS = (int) ((ROWS + TableWriterChild.CHUNK_ROWS - 1) / TableWriterChild.CHUNK_ROWS);

  /** Runs an uninterrupted write; returns how long its commit took (COMMITTING to exit). */
  private static long calibrate(ChildJvm child) throws InterruptedException {
    assertThat(child.awaitLine("COMMITTING"::equals, CHILD_TIMEOUT_MS)).as("child stderr: %s", child.stderrText()).isNotNull();
    long t0 = System.nanoTime();
    assertThat(child.waitFor(CHILD_TIMEOUT_MS)).as("child stderr: %s", child.stderrText()).isZero();
    return Math.max(20, (System.nanoTime() - t0) / 1_000_000);
  }

  /**
   * Waits for a random point of the write, by progress rather than by time (the machine's speed
   * varies): half of the kills land after a random chunk of appended rows (plus up to 20 ms), half
   * at a random moment in [0, 1.3 x the calibrated commit time] after {@code COMMITTING}.
   */
  private static void killPoint(ChildJvm child, SplittableRandom random, long commitMillis, int trial) throws InterruptedException {
    String target;
    long delay;
    if (random.nextBoolean()) {
      int chunk = random.nextInt(CHUNKS);
      target = chunk == 0 ? "WRITING" : "P " + chunk;
      delay = random.nextLong(21);
    } else {
      target = "COMMITTING";
      delay = random.nextLong((long) (commitMillis * 1.3) + 1);
    }
    String seen = child.awaitLine(target::equals, CHILD_TIMEOUT_MS);
    assertThat(seen).as("trial %d: child never printed %s; stderr: %s", trial, target, child.stderrText()).isNotNull();
    Thread.sleep(delay);
  }

  /** Opens and verifies the table; it must be version a or b with exactly that version's rows. */
  private long checkTableIsVersion(String dir, long a, long b) throws IOException {
    Table t = Table.open(dir);
    long v = t.manifest().tableVersion();
    assertThat(v).as("table version after the crash").isIn(a, b);
    assertThat(t.verify(allocator)).hasSize(SHARDS + 1);
    float[] rows = TableFiles.readAll(t, allocator);
    if (!Arrays.equals(rows, TableWriterChild.matrix(ROWS, DIM, v))) {
      throw new AssertionError("table " + dir + " at version " + v + " does not hold the rows of version " + v + " (a mix?)");
    }
    return v;
  }

  private void writeInProcess(String dir, long version, String partitioner) throws IOException {
    try (TableWriter w = TableWriter.create(TableLocation.of(dir), TableManifest.builder().rows(ROWS).dim(DIM).partitioner(partitioner), SHARDS, allocator)) {
      fill(w, version);
      w.commit();
    }
  }

  private void writeNextInProcess(String dir, long current) throws IOException {
    TableManifest base = Table.open(dir).manifest();
    assertThat(base.tableVersion()).isEqualTo(current);
    try (TableWriter w = TableWriter.nextVersion(TableLocation.of(dir), base, allocator)) {
      fill(w, current + 1);
      w.commit();
    }
  }

  private static void fill(TableWriter w, long version) throws IOException {
    float[] m = TableWriterChild.matrix(ROWS, DIM, version);
    ByteBuffer buf = ByteBuffer.allocateDirect(m.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    buf.asFloatBuffer().put(m);
    w.appendInIdOrder(buf, (int) ROWS);
  }

  private ChildJvm startNext(String dir) throws IOException {
    return ChildJvm.start(
        TableWriterChild.class, ChildJvm.defaultJvmArgs(), Files.createTempFile(tmp, "child", ".err"), "next", dir.toString());
  }

  private ChildJvm startCreate(String dir) throws IOException {
    return ChildJvm.start(
        TableWriterChild.class,
        ChildJvm.defaultJvmArgs(),
        Files.createTempFile(tmp, "child", ".err"),
        "create",
        dir,
        Long.toString(ROWS),
        Integer.toString(DIM),
        Integer.toString(SHARDS),
        "range");
  }
}
