package io.embstore.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.cli.Cli;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The distribution archive as a user gets it: unpacked into a fresh folder, {@code bin/embstore}
 * run from a different working directory, for the root and every subcommand.
 */
class DistributionIT {
  private static Path unpacked;
  private static Path home;
  private static Path elsewhere;

  @BeforeAll
  static void unpack() throws Exception {
    Path archive = Path.of(System.getProperty("embstore.dist"));
    assertThat(archive).as("the distribution built by `mvn package`").isRegularFile();
    unpacked = Files.createTempDirectory("embstore-dist");
    Processes.Result r =
        Processes.run(unpacked, Map.of(), Duration.ofMinutes(5),
            List.of("tar", "xzf", archive.toString()));
    assertThat(r.exit()).as("tar: %s", r).isZero();
    try (Stream<Path> s = Files.list(unpacked)) {
      home = s.findFirst().orElseThrow();
    }
    elsewhere = Files.createTempDirectory("embstore-cwd");
  }

  @AfterAll
  static void cleanUp() throws IOException {
    for (Path p : new Path[] {unpacked, elsewhere}) {
      if (p != null) {
        try (Stream<Path> s = Files.walk(p)) {
          s.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        }
      }
    }
  }

  private static Processes.Result embstore(String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(home.resolve("bin/embstore").toString());
    cmd.addAll(List.of(args));
    return Processes.run(elsewhere, Map.of(), Duration.ofMinutes(2), cmd);
  }

  @Test
  void archiveHasTheDocumentedLayout() throws IOException {
    assertThat(home.getFileName().toString()).startsWith("embstore-");
    assertThat(home.resolve("bin/embstore")).isExecutable();
    assertThat(home.resolve("bin/java-flags.sh")).isRegularFile();
    assertThat(home.resolve("README.md")).isRegularFile();
    assertThat(home.resolve("conf/embstore-defaults.conf")).isRegularFile();
    assertThat(home.resolve("examples/tokens.txt")).isRegularFile();
    assertThat(home.resolve("examples/client-app/LookupExample.java")).isRegularFile();
    assertThat(home.resolve("spark/SIZING.md")).isRegularFile();
    assertThat(home.resolve("spark/submit-standalone.sh")).isExecutable();
    assertThat(home.resolve("k8s/shard-servers.yaml")).isRegularFile();
    try (Stream<Path> s = Files.list(home.resolve("client"))) {
      assertThat(s.map(p -> p.getFileName().toString()))
          .singleElement(org.assertj.core.api.InstanceOfAssertFactories.STRING)
          .matches("embstore-client-.*\\.jar");
    }
    try (Stream<Path> s = Files.list(home.resolve("jobs"))) {
      assertThat(s.map(p -> p.getFileName().toString()))
          .singleElement(org.assertj.core.api.InstanceOfAssertFactories.STRING)
          .matches("embstore-spark-job-.*-job\\.jar");
    }
    try (Stream<Path> s = Files.list(home.resolve("lib"))) {
      List<String> jars = s.map(p -> p.getFileName().toString()).toList();
      assertThat(jars)
          .anyMatch(j -> j.startsWith("embstore-deploy-"))
          .anyMatch(j -> j.startsWith("embstore-shard-client-"))
          .anyMatch(j -> j.startsWith("spark-core_2.13-"))
          .noneMatch(j -> j.endsWith("-job.jar") || j.endsWith("-client.jar"));
    }
  }

  @Test
  void rootHelpListsEveryCommandOnTheClassPath() throws Exception {
    Processes.Result r = embstore("--help");
    assertThat(r.exit()).as("%s", r).isZero();
    assertThat(r.out()).contains("Usage: embstore").contains("Commands:");
    // Every subcommand the modules register (as seen by this test's class path) is in the listing.
    Set<String> expected = new TreeSet<>(Cli.root().getSubcommands().keySet());
    assertThat(listedCommands(r.out())).containsAll(expected);
  }

  @Test
  void everySubcommandPrintsItsHelpFromAnyDirectory() throws Exception {
    Processes.Result root = embstore("--help");
    Set<String> commands = listedCommands(root.out());
    assertThat(commands).contains("help");
    for (String c : commands) {
      if (c.equals("help")) {
        continue;
      }
      Processes.Result r = embstore(c, "--help");
      assertThat(r.exit()).as("embstore %s --help: %s", c, r).isZero();
      assertThat(r.out()).as("embstore %s --help", c).contains("Usage: embstore " + c);
      // Only train loads the incubating vector module (its SIMD kernels); no other command makes
      // the JVM print its warning about it.
      if (!c.equals("train")) {
        assertThat(r.err()).as("embstore %s --help stderr", c).doesNotContain("incubator");
      }
    }
  }

  @Test
  void theSparkSubmitExampleTrainsFromTheShadedJobJar() throws Exception {
    Path corpus = ClusterEndToEndIT.smallCorpus(elsewhere.resolve("corpus.txt"), 20);
    Path table = elsewhere.resolve("table-from-example");
    Processes.Result r = Processes.run(elsewhere, Map.of(), Duration.ofMinutes(10), List.of(
        home.resolve("examples/spark-submit-local.sh").toString(), corpus.toString(), table.toString(),
        "local[2]", "--dim", "16", "--epochs", "1", "--min-count", "2", "--shards", "2"));
    assertThat(r.exit()).as("spark-submit-local.sh: %s", ClusterEndToEndIT.tail(r)).isZero();
    assertThat(r.out()).contains("trained ");
    assertThat(io.embstore.format.TableManifest.read(table).dim()).isEqualTo(16);
  }

  @Test
  void unknownCommandFailsWithUsage() throws Exception {
    Processes.Result r = embstore("no-such-command");
    assertThat(r.exit()).isEqualTo(Cli.EXIT_USAGE);
    assertThat(r.err()).contains("Unmatched argument at index 0: 'no-such-command'");
  }

  /** Names under "Commands:" in picocli's usage: lines of two spaces, a name, spaces, text. */
  static Set<String> listedCommands(String usage) {
    Set<String> names = new TreeSet<>();
    int at = usage.indexOf("Commands:");
    if (at < 0) {
      return names;
    }
    Matcher m = Pattern.compile("(?m)^  ([a-z][a-z0-9-]*)(?:,[^ ]+)?(?:\\s|$)").matcher(usage.substring(at));
    while (m.find()) {
      names.add(m.group(1));
    }
    return names;
  }
}
