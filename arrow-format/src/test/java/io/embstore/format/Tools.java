package io.embstore.format;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Optional external tools of the interoperability tests, and the shared data directory. */
public final class Tools {
  /** Debian's python3 (with python3-numpy / python3-gensim), not whatever python3 is on PATH. */
  public static final String PYTHON = "/usr/bin/python3";

  private Tools() {}

  /** Whether /usr/bin/python3 can import {@code module}. */
  public static boolean pythonHas(String module) {
    if (!Files.isExecutable(Paths.get(PYTHON))) {
      return false;
    }
    try {
      return run(PYTHON, "-c", "import " + module).exit == 0;
    } catch (IOException e) {
      return false;
    }
  }

  public static boolean nodeAvailable() {
    try {
      return run("node", "--version").exit == 0;
    } catch (IOException e) {
      return false;
    }
  }

  /** The repository root (system property embstore.repo.dir, else found from the working dir). */
  public static Path repoDir() {
    String p = System.getProperty("embstore.repo.dir");
    if (p != null && Files.isDirectory(Paths.get(p, "arrow-format"))) {
      return Paths.get(p);
    }
    Path here = Paths.get("").toAbsolutePath();
    return Files.isDirectory(here.resolve("arrow-format")) ? here : here.getParent();
  }

  /** The shared data directory (system property embstore.shared.dir, else ../shared of the repo). */
  public static Path sharedDir() {
    String p = System.getProperty("embstore.shared.dir");
    return p != null ? Paths.get(p) : repoDir().resolve("../shared").normalize();
  }

  public record Result(int exit, String out, String err) {}

  /** Runs a process to completion (at most 5 minutes) and returns its exit code and output. */
  public static Result run(String... command) throws IOException {
    return run(List.of(command));
  }

  public static Result run(List<String> command) throws IOException {
    Path out = Files.createTempFile("tool-out", ".txt");
    Path err = Files.createTempFile("tool-err", ".txt");
    try {
      Process p =
          new ProcessBuilder(new ArrayList<>(command))
              .redirectOutput(out.toFile())
              .redirectError(err.toFile())
              .start();
      if (!p.waitFor(5, TimeUnit.MINUTES)) {
        p.destroyForcibly();
        throw new IOException("timed out: " + command);
      }
      return new Result(
          p.exitValue(),
          Files.readString(out, StandardCharsets.UTF_8),
          Files.readString(err, StandardCharsets.UTF_8));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted: " + command, e);
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }

  /** Runs a Python script with /usr/bin/python3 and returns stdout; fails on a non-zero exit. */
  public static String python(String script, String... args) throws IOException {
    List<String> cmd = new ArrayList<>(List.of(PYTHON, "-c", script));
    cmd.addAll(List.of(args));
    Result r = run(cmd);
    if (r.exit != 0) {
      throw new AssertionError("python failed (exit " + r.exit + "): " + r.err + r.out);
    }
    return r.out;
  }
}
