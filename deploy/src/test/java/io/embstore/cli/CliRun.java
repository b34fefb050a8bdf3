package io.embstore.cli;

import java.io.PrintWriter;
import java.io.StringWriter;

/** The exit code, stdout and stderr of one in-process command run. */
record CliRun(int exit, String out, String err) {
  static CliRun of(Object command, String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = Cli.run(command, new PrintWriter(out), new PrintWriter(err), args);
    return new CliRun(exit, out.toString(), err.toString());
  }

  static CliRun importing(String... args) {
    return of(new ImportCommand(), args);
  }

  static CliRun exporting(String... args) {
    return of(new ExportCommand(), args);
  }

  static CliRun inspecting(String... args) {
    return of(new InspectCommand(), args);
  }

  static CliRun converting(String... args) {
    return of(new ConvertCommand(), args);
  }

  static CliRun verifying(String... args) {
    return of(new VerifyCommand(), args);
  }
}
