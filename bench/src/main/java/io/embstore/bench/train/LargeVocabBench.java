package io.embstore.bench.train;

import java.io.BufferedWriter;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code embstore train} on a text corpus of {@code --distinct} distinct tokens (each once, plus
 * 100 frequent words every 5th token: the corpus of {@code LargeVocabularyIT}) with a small heap,
 * once with another build's jars ({@code --compare-with}, e.g. main's) and once with this build's,
 * each in a JVM of its own with a GC log: whether it finishes, its wall time, its heap peak before
 * and after collections, and the line it failed with.
 *
 * <p>Run: {@code bench/run train.LargeVocabBench --compare-with DIR [--distinct 10000000] [--heap
 * 768m]}. Files go to {@code --work} (default {@code bench/results/large-vocab}).
 */
@Command(name = "LargeVocabBench", mixinStandardHelpOptions = true,
    description = "embstore train on a text corpus of many distinct tokens with a small heap, two builds.")
public final class LargeVocabBench implements Callable<Integer> {
  @Option(names = "--distinct", defaultValue = "10000000", description = "Distinct tokens. Default: ${DEFAULT-VALUE}.")
  int distinct;

  @Option(names = "--heap", defaultValue = "768m", description = "-Xmx of each run. Default: ${DEFAULT-VALUE}.")
  String heap;

  @Option(names = "--compare-with", paramLabel = "DIR", description = "Jars of another build to run first (embstore-arrow-format, -shard-client, -spark-job).")
  Path compareWith;

  @Option(names = "--work", defaultValue = "bench/results/large-vocab", description = "Default: ${DEFAULT-VALUE}.")
  Path work;

  public static void main(String[] args) {
    System.exit(new CommandLine(new LargeVocabBench()).execute(args));
  }

  /**
   * The command line of the tool, for a child JVM: that of the build on the class path first. A
   * build from before the commands moved to deploy ({@code --compare-with}) has it in arrow-format.
   */
  public static final class Cli {
    private Cli() {}

    public static void main(String[] args) throws ReflectiveOperationException {
      Class<?> cli;
      try {
        cli = Class.forName("io.embstore.format.cli.Cli");
      } catch (ClassNotFoundException e) {
        cli = io.embstore.cli.Cli.class;
      }
      System.exit(((CommandLine) cli.getMethod("root").invoke(null)).execute(args));
    }
  }

  @Override
  public Integer call() throws Exception {
    work = work.toAbsolutePath();
    Files.createDirectories(work);
    Path corpus = work.resolve("corpus-" + distinct + ".txt");
    if (!Files.exists(corpus)) {
      try (BufferedWriter w = Files.newBufferedWriter(corpus, StandardCharsets.UTF_8)) {
        StringBuilder line = new StringBuilder(12_000);
        int inLine = 0;
        for (int i = 0; i < distinct; i++) {
          line.append(inLine > 0 ? " " : "").append('t').append(i);
          if (i % 4 == 3) {
            line.append(" f").append((i / 4) % 100);
            inLine++;
          }
          if (++inLine >= 1000) {
            w.write(line.append('\n').toString());
            line.setLength(0);
            inLine = 0;
          }
        }
        w.write(line.append('\n').toString());
      }
    }
    System.out.printf(Locale.ROOT, "== LargeVocabBench %s: %,d distinct tokens (+100 frequent), -Xmx%s, load average %s%n",
        java.time.Instant.now(), distinct, heap, ScaleBench.loadAverage());
    List<String[]> runs = new ArrayList<>();
    if (compareWith != null) {
      runs.add(new String[] {"before (" + compareWith.getFileName() + ")", ScaleBench.classpathWith(compareWith)});
    }
    runs.add(new String[] {"after (this build)", System.getProperty("java.class.path")});
    for (String[] r : runs) {
      run(r[0], r[1], corpus);
    }
    return 0;
  }

  private void run(String label, String classpath, Path corpus) throws Exception {
    Path out = work.resolve("table-" + label.replaceAll("[^A-Za-z0-9]+", "_"));
    ScaleBench.deleteTree(out);
    Path gc = work.resolve("gc-" + label.replaceAll("[^A-Za-z0-9]+", "_") + ".log");
    Path log = work.resolve("train-" + label.replaceAll("[^A-Za-z0-9]+", "_") + ".log");
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (!a.startsWith("-Xmx") && !a.startsWith("-Xms") && !a.startsWith("-XX:MaxDirectMemorySize") && !a.startsWith("-agent")) {
        cmd.add(a);
      }
    }
    cmd.addAll(List.of("-Xmx" + heap, "-Xlog:gc:file=" + gc, "-cp", classpath, Cli.class.getName(), "train",
        "--input", corpus.toString(), "--output", out.toString(), "--min-count", "1", "--dim", "4", "--window", "2",
        "--negatives", "2", "--epochs", "1", "--shards", "2", "--checkpoint-minutes", "0", "--progress-seconds", "30"));
    long t0 = System.nanoTime();
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    p.getOutputStream().close();
    long rss = 0;
    while (p.isAlive()) {
      rss = Math.max(rss, io.embstore.bench.common.ChildProcess.rss(p.pid())[1]);
      Thread.sleep(500);
    }
    double secs = (System.nanoTime() - t0) / 1e9;
    long before = 0;
    long after = 0;
    Matcher g = Pattern.compile("(\\d+)M->(\\d+)M\\((\\d+)M\\)").matcher(Files.exists(gc) ? Files.readString(gc) : "");
    while (g.find()) {
      before = Math.max(before, Long.parseLong(g.group(1)));
      after = Math.max(after, Long.parseLong(g.group(2)));
    }
    String text = Files.readString(log);
    String outcome = p.exitValue() == 0 ? text.lines().filter(l -> l.startsWith("trained ")).findFirst().orElse("finished")
        : text.lines().filter(l -> l.startsWith("embstore train:") || l.contains("OutOfMemoryError")).findFirst().orElse("failed");
    System.out.printf(Locale.ROOT, "== %s: exit %d after %.0f s; heap peak %d MB before a collection, %d MB after one; RSS peak %.2f GB;"
        + " load average now %s%n   %s%n", label, p.exitValue(), secs, before, after, rss / 1e9, ScaleBench.loadAverage(),
        outcome.length() > 400 ? outcome.substring(0, 400) + "..." : outcome);
    text.lines().filter(l -> l.contains("vocabulary and sampler")).forEach(l -> System.out.println("   " + l.replaceFirst("^\\S+ \\S+\\s+", "")));
    ScaleBench.deleteTree(out);
  }

}
