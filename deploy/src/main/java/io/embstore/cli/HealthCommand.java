package io.embstore.cli;

import io.embstore.format.cli.Subcommand;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.CallOption;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.Result;
import org.apache.arrow.flight.auth2.BearerCredentialWriter;
import org.apache.arrow.flight.grpc.CredentialCallOption;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine.Command;
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
    List<Location> locations = new ArrayList<>();
    for (String e : endpoints) {
      locations.add(location(e));
    }
    PrintWriter out = spec.commandLine().getOut();
    try (BufferAllocator allocator = new RootAllocator()) {
      for (int i = 0; i < locations.size(); i++) {
        out.println(endpoints.get(i) + " " + check(allocator, locations.get(i), endpoints.get(i), bearer));
        out.flush();
      }
    }
    return 0;
  }

  private String check(BufferAllocator allocator, Location location, String endpoint, String bearer)
      throws IOException {
    List<CallOption> options = new ArrayList<>();
    options.add(CallOptions.timeout(deadlineMs, TimeUnit.MILLISECONDS));
    if (bearer != null) {
      options.add(new CredentialCallOption(new BearerCredentialWriter(bearer)));
    }
    try (FlightClient client = FlightClient.builder(allocator, location).build()) {
      Iterator<Result> results = client.doAction(new Action("health"), options.toArray(new CallOption[0]));
      if (!results.hasNext()) {
        throw new IOException("Cannot check health of " + endpoint + ": empty answer");
      }
      String body = new String(results.next().getBody(), StandardCharsets.UTF_8);
      while (results.hasNext()) {
        results.next();
      }
      if (!body.replace(" ", "").contains("\"status\":\"ok\"")) {
        throw new IOException("Cannot check health of " + endpoint + ": answer " + body + " (expected status ok)");
      }
      return "ok";
    } catch (FlightRuntimeException e) {
      throw new IOException("Cannot check health of " + endpoint + ": " + e.status().code()
          + (e.getMessage() == null ? "" : " " + e.getMessage()), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("Cannot check health of " + endpoint + ": interrupted", e);
    }
  }

  static Location location(String endpoint) {
    try {
      URI uri = new URI(endpoint);
      if (uri.getScheme() == null || uri.getHost() == null || uri.getPort() < 0) {
        throw new IllegalArgumentException(
            "Cannot use endpoint: " + endpoint + " (expected grpc+tcp://HOST:PORT or grpc+tls://HOST:PORT)");
      }
      return new Location(uri);
    } catch (URISyntaxException e) {
      throw new IllegalArgumentException(
          "Cannot use endpoint: " + endpoint + " (expected grpc+tcp://HOST:PORT or grpc+tls://HOST:PORT)", e);
    }
  }
}
