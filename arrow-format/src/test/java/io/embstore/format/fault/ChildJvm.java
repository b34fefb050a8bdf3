package io.embstore.format.fault;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * A child JVM running a {@code main} from the test classpath, so that fault tests can kill a real
 * process with SIGKILL ({@link Process#destroyForcibly()}) at a moment of their choosing. Its
 * standard output is read line by line on a daemon thread (so the child never blocks on a full
 * pipe); standard error goes to a file, shown when the child fails.
 */
public final class ChildJvm implements AutoCloseable {
  private final Process process;
  private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
  private final List<String> allLines = java.util.Collections.synchronizedList(new ArrayList<>());
  private final Path stderr;

  private ChildJvm(Process process, Path stderr) {
    this.process = process;
    this.stderr = stderr;
    Thread reader =
        new Thread(
            () -> {
              try (BufferedReader in =
                  new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                  allLines.add(line);
                  lines.add(line);
                }
              } catch (IOException e) {
                // The child was killed: its pipe closes; nothing more to read.
              }
            },
            "child-stdout-" + process.pid());
    reader.setDaemon(true);
    reader.start();
  }

  /**
   * The test classpath. Surefire may run tests from a manifest-only jar, in which case {@code
   * java.class.path} holds just that jar; {@code surefire.test.class.path} then has the real one.
   */
  public static String classpath() {
    String cp = System.getProperty("surefire.test.class.path");
    if (cp == null || cp.isBlank()) {
      cp = System.getProperty("java.class.path");
    }
    return cp;
  }

  /** JVM flags Arrow needs on Java 17, plus a bounded heap. */
  public static List<String> defaultJvmArgs() {
    return List.of(
        "-Xmx768m",
        "-XX:+IgnoreUnrecognizedVMOptions",
        "--add-opens=java.base/java.nio=ALL-UNNAMED",
        "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
        "--add-opens=java.base/java.lang=ALL-UNNAMED",
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn");
  }

  /** Starts {@code main} in a new JVM with the test classpath; stderr goes to {@code stderrFile}. */
  public static ChildJvm start(Class<?> main, List<String> jvmArgs, Path stderrFile, String... args)
      throws IOException {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.addAll(jvmArgs);
    cmd.add("-cp");
    cmd.add(classpath());
    cmd.add(main.getName());
    cmd.addAll(Arrays.asList(args));
    ProcessBuilder pb = new ProcessBuilder(cmd);
    pb.redirectError(stderrFile.toFile());
    pb.redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
    return new ChildJvm(pb.start(), stderrFile);
  }

  public Process process() {
    return process;
  }

  public long pid() {
    return process.pid();
  }

  /**
   * Waits at most {@code timeoutMillis} for a line of standard output that matches; returns it, or
   * null when the child ended or the time ran out first.
   */
  public String awaitLine(Predicate<String> matches, long timeoutMillis) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
    while (true) {
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        return null;
      }
      String line = lines.poll(Math.min(left, TimeUnit.MILLISECONDS.toNanos(100)), TimeUnit.NANOSECONDS);
      if (line != null) {
        if (matches.test(line)) {
          return line;
        }
      } else if (!process.isAlive() && lines.isEmpty()) {
        // Give the reader thread a moment to drain what the child printed last.
        line = lines.poll(200, TimeUnit.MILLISECONDS);
        if (line == null) {
          return null;
        }
        if (matches.test(line)) {
          return line;
        }
      }
    }
  }

  /** Every line the child printed so far. */
  public List<String> output() {
    synchronized (allLines) {
      return new ArrayList<>(allLines);
    }
  }

  /** SIGKILL, then wait (bounded) for the process to be gone. */
  public void kill() throws InterruptedException {
    process.destroyForcibly();
    if (!process.waitFor(30, TimeUnit.SECONDS)) {
      throw new IllegalStateException("Cannot kill child " + process.pid() + ": still alive after 30 s");
    }
  }

  /** Waits at most {@code timeoutMillis}; returns the exit code or kills the child and throws. */
  public int waitFor(long timeoutMillis) throws InterruptedException {
    if (!process.waitFor(timeoutMillis, TimeUnit.MILLISECONDS)) {
      kill();
      throw new IllegalStateException(
          "Child " + process.pid() + " did not finish within " + timeoutMillis + " ms; killed. stderr: " + stderrText());
    }
    return process.exitValue();
  }

  /** The child's standard error so far (for failure messages). */
  public String stderrText() {
    try {
      return java.nio.file.Files.readString(stderr);
    } catch (IOException e) {
      return "(cannot read " + stderr + ": " + e + ")";
    }
  }

  @Override
  public void close() throws InterruptedException {
    if (process.isAlive()) {
      kill();
    }
  }
}
