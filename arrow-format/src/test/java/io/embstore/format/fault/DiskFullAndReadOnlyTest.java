package io.embstore.format.fault;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import io.embstore.format.TableWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Disk full and read-only output while a table version is written, on a small tmpfs mounted for the
 * test (needs root and {@code mount}; skipped with the reason otherwise): the writer fails with an
 * IOException naming the file and the cause, the previous version stays intact and verifies, and no
 * partial file is left behind.
 */
class DiskFullAndReadOnlyTest {
  static final long ROWS = 8_000;
  static final int DIM = 128; // 4 MB of rows, two shards of about 2 MB
  static final int SHARDS = 2;

  @TempDir Path tmp;
  Path mnt;
  BufferAllocator allocator;

  @BeforeEach
  void setUp() throws Exception {
    allocator = new RootAllocator();
    mnt = tmp.resolve("mnt");
    Files.createDirectories(mnt);
    Assumptions.assumeTrue(
        "root".equals(System.getProperty("user.name")), "needs root to mount a tmpfs (user is " + System.getProperty("user.name") + ")");
  }

  private void mount(String size) throws IOException {
    String out = run("mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", mnt.toString());
    Assumptions.assumeTrue(out == null, "cannot mount a tmpfs: " + out);
  }

  @AfterEach
  void tearDown() throws Exception {
    try {
      if (isMounted()) {
        String out = run("umount", mnt.toString());
        if (out != null) {
          // A file left open would keep the mount busy: detach it anyway, then fail the test.
          run("umount", "-l", mnt.toString());
          throw new IllegalStateException("Cannot unmount " + mnt + " (a file left open?): " + out);
        }
      }
    } finally {
      allocator.close();
    }
  }

  @Test
  void diskFullWhileWritingShardsFailsClearlyAndKeepsThePreviousVersion() throws IOException {
    mount("6m");
    Path dir = mnt.resolve("t");
    TableManifest v1 = write(dir);
    // 6 MB of space, 4 MB used: the next version's 4 MB of shards cannot fit.
    IOException e = writeNextVersionExpectingFailure(dir, v1);
    assertThat(e.getMessage()).containsIgnoringCase("no space left on device").contains(dir.toString());
    assertIntact(dir, v1);
  }

  @Test
  void diskFullWhileCommittingTheManifestFailsClearlyAndKeepsThePreviousVersion() throws IOException {
    mount("16m");
    Path dir = mnt.resolve("t");
    TableManifest v1 = write(dir);
    // Leave room for the new shard files (same sizes as version 1's) but not for the manifest.
    long shardPages = 0;
    for (TableManifest.ShardEntry s : v1.shards()) {
      shardPages += (s.bytes() + 4095) / 4096;
    }
    long free = Files.getFileStore(mnt).getUsableSpace();
    long filler = free - shardPages * 4096;
    assertThat(filler).as("room on the tmpfs for this test").isPositive();
    Path fill = mnt.resolve("filler");
    try (FileChannel ch = FileChannel.open(fill, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ByteBuffer zeros = ByteBuffer.allocate(64 * 1024);
      long left = filler;
      while (left > 0) {
        zeros.clear().limit((int) Math.min(zeros.capacity(), left));
        left -= ch.write(zeros);
      }
    }
    IOException e = writeNextVersionExpectingFailure(dir, v1);
    assertThat(e.getMessage()).containsIgnoringCase("no space left on device").contains(dir.toString());
    assertIntact(dir, v1);
    Files.delete(fill);
  }

  @Test
  void readOnlyOutputFailsClearlyAndKeepsThePreviousVersion() throws Exception {
    mount("16m");
    Path dir = mnt.resolve("t");
    TableManifest v1 = write(dir);
    String out = run("mount", "-o", "remount,ro", mnt.toString());
    Assumptions.assumeTrue(out == null, "cannot remount read-only: " + out);
    IOException e = writeNextVersionExpectingFailure(dir, v1);
    assertThat(e.getMessage()).contains("Read-only file system").contains(dir.toString());
    assertIntact(dir, v1);
  }

  private IOException writeNextVersionExpectingFailure(Path dir, TableManifest base) {
    Throwable thrown =
        org.assertj.core.api.Assertions.catchThrowable(
            () -> {
              try (TableWriter w = TableWriter.nextVersion(dir, base, allocator)) {
                fill(w, base.tableVersion() + 1);
                w.commit();
              }
            });
    assertThat(thrown).as("writing a version that cannot fit").isInstanceOf(IOException.class);
    System.out.println("disk fault -> " + thrown);
    return (IOException) thrown;
  }

  private void assertIntact(Path dir, TableManifest v1) throws IOException {
    Table t = Table.open(dir);
    assertThat(t.manifest()).isEqualTo(v1);
    assertThat(t.verify(allocator)).hasSize(SHARDS + 1);
    assertThat(Arrays.equals(TableFiles.readAll(t, allocator), TableWriterChild.matrix(ROWS, DIM, 1))).isTrue();
    TreeSet<String> files = TableFiles.list(dir);
    assertThat(files).as("no partial files left").isEqualTo(TableFiles.filesOf(v1));
  }

  private TableManifest write(Path dir) throws IOException {
    try (TableWriter w = TableWriter.create(dir, ROWS, DIM, SHARDS, "modulo", allocator)) {
      fill(w, 1);
      return w.commit();
    }
  }

  private static void fill(TableWriter w, long version) throws IOException {
    float[] m = TableWriterChild.matrix(ROWS, DIM, version);
    ByteBuffer buf = ByteBuffer.allocateDirect(m.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    buf.asFloatBuffer().put(m);
    w.appendInIdOrder(buf, (int) ROWS);
  }

  private boolean isMounted() throws IOException {
    return Files.readString(Path.of("/proc/mounts")).contains(" " + mnt + " ");
  }

  /** Runs a command (bounded); returns null on success, else its output and exit code. */
  static String run(String... cmd) throws IOException {
    Process p;
    try {
      p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    } catch (IOException e) {
      return e.toString();
    }
    try {
      if (!p.waitFor(30, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        return String.join(" ", cmd) + ": timed out";
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "interrupted";
    }
    String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).trim();
    return p.exitValue() == 0 ? null : String.join(" ", cmd) + " exited " + p.exitValue() + ": " + out;
  }
}
