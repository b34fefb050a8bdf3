package io.embstore.cli;

import io.embstore.shard.ShardHealth;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code embstore health}: asks each shard server the Flight {@code health} action and exits 0
 * only when every one answers {@code "status":"ok"} within the deadline. Made for readiness probes
 * (deploy/k8s) and scripts; it needs no table, unlike lookup, whose client wants every shard hosted.
 */
@Command(
    name = "health",
    mixinStandardHelpOptions = true,
    description = {
      "Checks that shard servers answer the `health` action (exit 0 if all do, 1 otherwise).",
      "For readiness probes: embstore health --endpoint grpc+tcp://127.0.0.1:8815"
    })
public final class HealthCommand implements Subcommand, Callable<Integer> {
  @Option(names = {"--endpoint", "--endpoints"}, required = true, split = ",",
      description = "Shard servers, grpc+tcp://HOST:PORT[,...].")
  List<String> endpoints = new ArrayList<>();

  @Option(names = "--auth-token", description = "Bearer token (or env EMBSTORE_TOKEN).")
  String token;

  @Mixin TlsClientOptions tls;

  @Option(names = "--deadline-ms", defaultValue = "5000",
      description = "Deadline per server in ms (default: ${DEFAULT-VALUE}).")
  long deadlineMs;

  @Spec CommandSpec spec;

  @Override
  public int order() {
    return 230;
  }

  @Override
  public Integer call() throws IOException {
    if (deadlineMs < 1) {
      throw new IllegalArgumentException("Cannot check health: --deadline-ms " + deadlineMs + " (must be at least 1)");
    }
    String bearer = token != null ? token : System.getenv("EMBSTORE_TOKEN");
    for (String e : endpoints) {
      ShardHealth.location(e); // every endpoint is checked for syntax before any is asked
    }
    tls.check("check health");
    byte[] ca = tls.trusted();
    byte[] cert = tls.certificate();
    byte[] key = tls.key();
    PrintWriter out = spec.commandLine().getOut();
    try (BufferAllocator allocator = new RootAllocator()) {
      for (String e : endpoints) {
        ShardHealth.check(allocator, e, deadlineMs, bearer, ca, cert, key);
        out.println(e + " ok");
        out.flush();
      }
    }
    return 0;
  }
}
