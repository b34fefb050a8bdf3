package io.embstore.bench.train;

import io.embstore.bench.common.ChildProcess;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The training harnesses' standalone cluster ({@code ScaleBench --cluster}, {@code TrainBench
 * --cluster}): {@code deploy/local-cluster/start.sh} with N Workers of one core each on 127.0.0.1,
 * then {@code TrainJob} from the shaded job jar ({@code spark-job/target/*-job.jar}) submitted
 * through SparkSubmit from a driver JVM with {@code --total-executor-cores N} (one 1-core executor
 * per Worker) and {@code --min-executors N}; {@link #close} runs {@code stop.sh}. Needs {@code mvn
 * install -DskipTests} first (the job jar and {@code deploy/target/spark-home}).
 *
 * <p>While the driver runs, the driver's and every executor JVM's peak RSS (VmHWM) and CPU seconds
 * (utime + stime) are polled from /proc every {@link #POLL_MILLIS} ms: the last poll before a JVM
 * ends is what is reported, so up to that much of each JVM's last CPU is missed.
 */
final class LocalCluster implements AutoCloseable {
  static final long POLL_MILLIS = 250;
  private static final Pattern EXECUTOR = Pattern.compile("CoarseGrainedExecutorBackend.* --executor-id (\\S+)");

  private final int workers;
  private final Path deploy;
  private final Path sparkHome;
  private final Path dir;
  private final Map<String, String> env;
  private final String master;

  /** What one submitted driver did. */
  record Run(int exit, double wallSeconds, String output, Path log, long driverRss, double driverCpuSeconds,
      Map<String, Long> executorRss, Map<String, Double> executorCpuSeconds) {
    /** Driver and executors. */
    double cpuSeconds() {
      return driverCpuSeconds + executorCpuSeconds.values().stream().mapToDouble(Double::doubleValue).sum();
    }
  }

  private LocalCluster(int workers, Path deploy, Path dir, Map<String, String> env, String master) {
    this.workers = workers;
    this.deploy = deploy;
    this.sparkHome = Path.of(env.get("SPARK_HOME"));
    this.dir = dir;
    this.env = env;
    this.master = master;
  }

  /**
   * Starts {@code workers} Workers offering {@code workerMemory} each; the cluster's pid files and
   * logs go to {@code work/cluster} (emptied first), its start log to {@code work/cluster-start.log}.
   */
  static LocalCluster start(Path repo, Path work, int workers, String workerMemory) throws IOException, InterruptedException {
    if (workers < 1) {
      throw new IllegalArgumentException("Cannot start a cluster of " + workers + " Workers (need at least 1)");
    }
    Path deploy = repo.resolve("deploy");
    Path sparkHome = deploy.resolve("target/spark-home");
    if (!Files.isDirectory(sparkHome.resolve("jars"))) {
      throw new IllegalStateException("Cannot start the cluster: no " + sparkHome + "/jars (mvn install -DskipTests)");
    }
    Path dir = work.resolve("cluster");
    ScaleBench.deleteTree(dir);
    Map<String, String> env = new LinkedHashMap<>(Map.of("SPARK_HOME", sparkHome.toString(), "SPARK_SCALA_VERSION", "2.13",
        "SPARK_LOCAL_IP", "127.0.0.1", "CLUSTER_DIR", dir.toString(), "WORKER_MEMORY", workerMemory, "WORKER_CORES", "1",
        "START_TIMEOUT", "180"));
    Path startLog = work.resolve("cluster-start.log");
    ProcessBuilder sb = new ProcessBuilder(deploy.resolve("local-cluster/start.sh").toString(), Integer.toString(workers))
        .redirectErrorStream(true).redirectOutput(startLog.toFile());
    sb.environment().putAll(env);
    Process start = sb.start();
    start.getOutputStream().close();
    LocalCluster c = new LocalCluster(workers, deploy, dir, env, null);
    try {
      if (start.waitFor() != 0) {
        throw new IllegalStateException("Cannot start the cluster: " + Files.readString(startLog));
      }
      Properties ce = new Properties();
      try (var in = Files.newBufferedReader(dir.resolve("cluster.env"))) {
        ce.load(in);
      }
      return new LocalCluster(workers, deploy, dir, env, ce.getProperty("MASTER_URL"));
    } catch (IOException | RuntimeException | InterruptedException e) {
      c.close(); // stop.sh stops whatever start.sh left running
      throw e;
    }
  }

  /** The shaded job jar in {@code spark-job/target}. */
  static Path jobJar(Path repo) throws IOException {
    try (var s = Files.list(repo.resolve("spark-job/target"))) {
      return s.filter(f -> f.getFileName().toString().matches("embstore-spark-job-.*-job\\.jar")).findFirst()
          .orElseThrow(() -> new IllegalStateException("Cannot find the shaded job jar in spark-job/target (mvn -DskipTests install)"));
    }
  }

  /**
   * Runs {@code TrainJob} with {@code jobArgs} (and {@code --min-executors N}) in a driver JVM of
   * {@code driverHeap} with a GC log at {@code gcLog} (null: none), executors of {@code
   * executorHeap} with {@code executorDirect} of direct memory; the driver's output goes to {@code
   * log}. Returns when the driver has exited, whatever its exit code.
   */
  Run train(Path jobJar, List<String> jobArgs, String driverHeap, String executorHeap, String executorDirect, Path gcLog, Path log)
      throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (!a.startsWith("-Xmx") && !a.startsWith("-Xms") && !a.startsWith("-XX:MaxDirectMemorySize") && !a.startsWith("-agent")
          && !a.startsWith("-Dembstore") && !a.startsWith("-XX:StartFlightRecording")) {
        cmd.add(a);
      }
    }
    cmd.add("-Xmx" + driverHeap);
    if (gcLog != null) {
      Files.deleteIfExists(gcLog);
      cmd.add("-Xlog:gc:file=" + gcLog);
    }
    cmd.addAll(List.of("-cp", sparkHome.resolve("jars") + "/*",
        "org.apache.spark.deploy.SparkSubmit", "--master", master, "--executor-memory", executorHeap,
        "--total-executor-cores", Integer.toString(workers), "--conf", "spark.ui.enabled=false",
        "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.executor.heartbeatInterval=2s",
        "--conf", "spark.executor.extraJavaOptions=-XX:MaxDirectMemorySize=" + executorDirect,
        "--class", "io.embstore.spark.TrainJob", jobJar.toString()));
    cmd.addAll(jobArgs);
    cmd.addAll(List.of("--min-executors", Integer.toString(workers)));
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
    pb.environment().putAll(env);
    long t0 = System.nanoTime();
    Process driver = pb.start();
    driver.getOutputStream().close();
    long driverRss = 0;
    double driverCpu = 0;
    Map<String, Long> executorRss = new TreeMap<>();
    Map<String, Double> executorCpu = new TreeMap<>();
    while (driver.isAlive()) {
      driverRss = Math.max(driverRss, ChildProcess.rss(driver.pid())[1]);
      driverCpu = Math.max(driverCpu, ChildProcess.cpuSeconds(driver.pid()));
      for (Map.Entry<String, Long> e : executorPids().entrySet()) {
        executorRss.merge(e.getKey(), ChildProcess.rss(e.getValue())[1], Math::max);
        executorCpu.merge(e.getKey(), ChildProcess.cpuSeconds(e.getValue()), Math::max);
      }
      Thread.sleep(POLL_MILLIS);
    }
    double wall = (System.nanoTime() - t0) / 1e9;
    return new Run(driver.waitFor(), wall, Files.readString(log), log, driverRss, driverCpu, executorRss, executorCpu);
  }

  /** {executor id: pid} of the executor JVMs (CoarseGrainedExecutorBackend) under the cluster's Workers. */
  private Map<String, Long> executorPids() throws IOException {
    Map<String, Long> out = new TreeMap<>();
    try (var pids = Files.list(dir)) {
      for (Path f : (Iterable<Path>) pids::iterator) {
        if (!f.getFileName().toString().matches("worker.*\\.pid")) {
          continue;
        }
        java.util.Optional<ProcessHandle> worker = ProcessHandle.of(Long.parseLong(Files.readString(f).trim()));
        worker.ifPresent(w -> w.descendants().forEach(d -> {
          Matcher m = EXECUTOR.matcher(d.info().commandLine().orElse(""));
          if (m.find()) {
            out.put(m.group(1), d.pid());
          }
        }));
      }
    }
    return out;
  }

  /** Stops the Master and the Workers (and their executors) with {@code stop.sh}. */
  @Override
  public void close() throws IOException, InterruptedException {
    ProcessBuilder stop = new ProcessBuilder(deploy.resolve("local-cluster/stop.sh").toString()).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.DISCARD);
    stop.environment().putAll(env);
    stop.start().waitFor();
  }
}
