package io.embstore.bench.common;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A helper process (a server JVM or redis-server) that the harness talks to by lines: it reads the
 * child's stdout line by line, and writes commands to its stdin. Stderr goes to a log file so that a
 * chatty server never blocks on a full pipe. Closing it ends the process (stdin EOF, then destroy).
 */
public final class ChildProcess implements AutoCloseable {
  private final Process process;
  private final BufferedReader out;
  private final PrintWriter in;
  private final String name;
  private final Path log;

  private ChildProcess(String name, Process process, Path log) {
    this.name = name;
    this.process = process;
    this.log = log;
    this.out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
    this.in = new PrintWriter(new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8), true);
  }

  public static ChildProcess start(String name, List<String> command) throws IOException {
    Path log = Files.createTempFile("embstore-bench-" + name.replaceAll("[^A-Za-z0-9]", "_") + "-", ".log");
    ProcessBuilder pb = new ProcessBuilder(command).redirectError(log.toFile());
    return new ChildProcess(name, pb.start(), log);
  }

  /**
   * Starts {@code mainClass} in a new JVM with this JVM's class path and flags (less heap and agent
   * options) plus {@code jvmOptions}.
   */
  public static ChildProcess java(String name, List<String> jvmOptions, String mainClass, List<String> args)
      throws IOException {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (!a.startsWith("-Xmx") && !a.startsWith("-Xms") && !a.startsWith("-agent") && !a.startsWith("-XX:StartFlightRecording")) {
        cmd.add(a);
      }
    }
    cmd.addAll(jvmOptions);
    cmd.add("-cp");
    cmd.add(System.getProperty("java.class.path"));
    cmd.add(mainClass);
    cmd.addAll(args);
    return start(name, cmd);
  }

  public long pid() {
    return process.pid();
  }

  /** Reads stdout until a line starting with {@code prefix}; returns the rest of that line. */
  public String await(String prefix) throws IOException {
    String line;
    while ((line = out.readLine()) != null) {
      if (line.startsWith(prefix)) {
        return line.substring(prefix.length()).trim();
      }
    }
    throw new IOException(
        "Cannot start " + name + ": it exited (" + exitCode() + ") before printing '" + prefix + "'; log " + log + ":\n" + tail());
  }

  /** Sends one command line and returns the reply line that starts with {@code replyPrefix}. */
  public String ask(String command, String replyPrefix) throws IOException {
    in.println(command);
    return await(replyPrefix);
  }

  private String exitCode() {
    try {
      return process.waitFor(2, TimeUnit.SECONDS) ? "exit " + process.exitValue() : "still running";
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "interrupted";
    }
  }

  private String tail() {
    try {
      List<String> lines = Files.readAllLines(log);
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
    } catch (IOException e) {
      return "(log unreadable: " + e.getMessage() + ")";
    }
  }

  @Override
  public void close() {
    in.close();
    try {
      if (!process.waitFor(10, TimeUnit.SECONDS)) {
        process.destroy();
        if (!process.waitFor(5, TimeUnit.SECONDS)) {
          process.destroyForcibly().waitFor();
        }
      }
      Files.deleteIfExists(log);
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    } catch (IOException e) {
      // the log is only a diagnostic
    }
  }

  /** VmRSS and VmHWM (peak RSS) of process {@code pid}, in bytes, from /proc; -1 when unknown. */
  public static long[] rss(long pid) {
    long rss = -1;
    long hwm = -1;
    try {
      for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "status"))) {
        if (line.startsWith("VmRSS:")) {
          rss = kb(line);
        } else if (line.startsWith("VmHWM:")) {
          hwm = kb(line);
        }
      }
    } catch (IOException e) {
      // not Linux, or the process is gone
    }
    return new long[] {rss, hwm};
  }

  /**
   * CPU seconds (user + system, its threads included) that process {@code pid} has used, from
   * /proc/PID/stat; 0 when unknown (not Linux, or the process is gone).
   */
  public static double cpuSeconds(long pid) {
    try {
      String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
      // after the command name in parentheses: field 3 (state) first, utime and stime are fields 14 and 15
      String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / (double) CLOCK_TICKS;
    } catch (IOException | RuntimeException e) {
      return 0;
    }
  }

  /** USER_HZ, the unit of /proc/PID/stat's times (100 on every Linux we run on; getconf says). */
  private static final long CLOCK_TICKS = clockTicks();

  private static long clockTicks() {
    try {
      Process p = new ProcessBuilder("getconf", "CLK_TCK").redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
      return p.waitFor() == 0 ? Long.parseLong(out) : 100;
    } catch (IOException | RuntimeException e) {
      return 100;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return 100;
    }
  }

  private static long kb(String line) {
    String[] f = line.trim().split("\\s+");
    return Long.parseLong(f[1]) * 1024;
  }
}
