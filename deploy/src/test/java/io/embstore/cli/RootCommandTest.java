package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The root command: every command of the distribution, registered in this module, in help order. */
class RootCommandTest {
  @Test
  void everyCommandIsRegisteredOnceInHelpOrder() {
    assertThat(Cli.root().getSubcommands().keySet()).containsExactly(
        "help", "import", "export", "reshard", "convert", "inspect", "verify", "serve", "lookup", "nearest", "health", "train");
  }
}
