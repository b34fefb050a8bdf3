package io.embstore.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * bin/java-flags.sh (used by bin/embstore, the local cluster and the spark-submit examples) must
 * carry exactly the flags of the parent pom's {@code embstore.jvm.flags}, which the tests run with:
 * a flag missing in one place makes Spark hang there only.
 */
class JavaFlagsTest {
  @Test
  void shellFlagsEqualThePomProperty() throws IOException {
    Path repo = Path.of(System.getProperty("embstore.repo.dir", ".."));
    String pom = Files.readString(repo.resolve("pom.xml"));
    Matcher m = Pattern.compile("<embstore.jvm.flags>([^<]+)</embstore.jvm.flags>").matcher(pom);
    assertThat(m.find()).as("embstore.jvm.flags in %s", repo.resolve("pom.xml")).isTrue();
    List<String> pomFlags = Arrays.asList(m.group(1).trim().split("\\s+"));

    String sh = Files.readString(repo.resolve("deploy/bin/java-flags.sh"));
    Matcher a = Pattern.compile("EMBSTORE_JVM_FLAGS=\\(([^)]*)\\)", Pattern.DOTALL).matcher(sh);
    assertThat(a.find()).as("EMBSTORE_JVM_FLAGS=( ... ) in java-flags.sh").isTrue();
    List<String> shellFlags = Arrays.asList(a.group(1).trim().split("\\s+"));

    assertThat(shellFlags).containsExactlyElementsOf(pomFlags);
  }
}
