package io.embstore.deploy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.embstore.cli.Cli;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/**
 * conf/embstore-defaults.conf documents every {@code spark.embstore.*} key: one per option of
 * {@code embstore train} (= TrainJob's options, the key being the option name without dashes),
 * with the option's default. This keeps the file true when the job's options change.
 */
class DefaultsConfTest {
  static final Path CONF = Processes.repoDir().resolve("deploy/src/dist/conf/embstore-defaults.conf");

  @Test
  void everyTrainOptionIsListedWithItsDefault() throws IOException {
    CommandLine train = Cli.root().getSubcommands().get("train");
    assumeTrue(train != null, "no `train` command on the class path (spark-job not merged)");
    Map<String, String> listed = listedKeys(Files.readString(CONF));

    Map<String, String> expected = new LinkedHashMap<>();
    for (OptionSpec o : train.getCommandSpec().options()) {
      if (o.hidden() || o.usageHelp() || o.versionHelp()) {
        continue;
      }
      String key = "spark.embstore." + o.longestName().replaceFirst("^--", "");
      expected.put(key, o.defaultValue() == null ? "" : o.defaultValue());
    }
    assertThat(listed).containsExactlyInAnyOrderEntriesOf(expected);
  }

  /** {@code #spark.embstore.key value} or {@code spark.embstore.key value} lines. */
  static Map<String, String> listedKeys(String conf) {
    Map<String, String> keys = new LinkedHashMap<>();
    Matcher m = Pattern.compile("(?m)^#?(spark\\.embstore\\.[a-z0-9-]+)[ \\t]*(.*)$").matcher(conf);
    while (m.find()) {
      keys.put(m.group(1), m.group(2).trim());
    }
    return keys;
  }
}
