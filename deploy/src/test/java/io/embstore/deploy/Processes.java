package io.embstore.deploy;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Runs external commands with a bounded wait, for the deploy integration tests. */
final class Processes {
  private Processes() {}

  record Result(int exit, String out, String err) {
    @Override
    public String toString() {
      return "exit " + exit + "\n--- stdout\n" + out + "\n--- stderr\n" + err;
    }
  }

  /** Runs {@code cmd} in {@code dir}, waits at most {@code timeout}, kills it on timeout. */
  static Result run(Path dir, Map<String, String> env, Duration timeout, List<String> cmd)
      throws IOException, InterruptedException {
    Path out = Files.createTempFile("proc", ".out");
    Path err = Files.createTempFile("proc", ".err");
    try {
      ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile());
      pb.environment().putAll(env);
      pb.redirectOutput(out.toFile()).redirectError(err.toFile()).redirectInput(ProcessBuilder.Redirect.PIPE);
      Process p = pb.start();
      p.getOutputStream().close();
      if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        p.descendants().forEach(ProcessHandle::destroyForcibly);
        p.destroyForcibly();
        p.waitFor(10, TimeUnit.SECONDS);
        throw new IllegalStateException(
            "Cannot finish " + cmd + ": still running after " + timeout + "\n--- stdout\n"
                + Files.readString(out, StandardCharsets.UTF_8) + "\n--- stderr\n"
                + Files.readString(err, StandardCharsets.UTF_8));
      }
      return new Result(
          p.exitValue(),
          Files.readString(out, StandardCharsets.UTF_8),
          Files.readString(err, StandardCharsets.UTF_8));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }

  static Path repoDir() {
    return Path.of(System.getProperty("embstore.repo.dir", "..")).toAbsolutePath().normalize();
  }

  static Path deployTarget() {
    return repoDir().resolve("deploy/target");
  }
}
