package io.embstore.shard;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.embstore.format.TableManifest;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.flight.FlightDescriptor;

/**
 * Every JSON message of the shard protocol, both ways, in one place: the exchange command (the
 * DoExchange descriptor), the learning rate an update batch carries in its app metadata, and the
 * bodies and results of the actions ({@code health}, {@code describe}, {@code stats}, {@code
 * snapshot}). Servers write with {@code toJson} and parse requests with {@code parse}, which
 * throws INVALID_ARGUMENT naming the bad member; clients write requests and parse results, which
 * throws an {@link IOException} naming the endpoint. Member names and meanings: {@code
 * docs/protocol.md}.
 */
final class Messages {
  static final ObjectMapper JSON = new ObjectMapper();

  private Messages() {}

  // ------------------------------------------------------------------ exchanges

  /** The command of a DoExchange: {@code {"op": ..., "shard": S, "lr"?, "k"?, "exclude"?}}. */
  record Command(String op, int shard, double lr, int k, long exclude) {
    static final int DEFAULT_K = 10;

    static Command lookup(int shard) {
      return new Command(Protocol.OP_LOOKUP, shard, Double.NaN, DEFAULT_K, -1);
    }

    static Command update(int shard) {
      return new Command(Protocol.OP_UPDATE, shard, Double.NaN, DEFAULT_K, -1);
    }

    static Command nearest(int shard, int k, long exclude) {
      return new Command(Protocol.OP_NEAREST, shard, Double.NaN, k, exclude);
    }

    /** The descriptor carrying this command; members at their defaults are left out. */
    FlightDescriptor descriptor() {
      ObjectNode n = JSON.createObjectNode();
      n.put("op", op);
      n.put("shard", shard);
      if (!Double.isNaN(lr)) {
        n.put("lr", lr);
      }
      if (Protocol.OP_NEAREST.equals(op)) {
        n.put("k", k);
        n.put("exclude", exclude);
      }
      return FlightDescriptor.command(encode(n));
    }

    /** Parses a request's descriptor; INVALID_ARGUMENT when it is not a command. */
    static Command parse(FlightDescriptor descriptor) {
      if (descriptor == null || !descriptor.isCommand()) {
        throw ShardErrors.invalid(
            "Cannot run exchange: descriptor is not a command (expected UTF-8 JSON {\"op\": ..., \"shard\": ...})");
      }
      String text = new String(descriptor.getCommand(), StandardCharsets.UTF_8);
      JsonNode root;
      try {
        root = JSON.readTree(text);
      } catch (IOException e) {
        throw ShardErrors.invalid("Cannot run exchange: command is not JSON: " + abbreviate(text));
      }
      if (root == null || !root.isObject() || !root.path("op").isTextual() || !root.path("shard").isIntegralNumber()) {
        throw ShardErrors.invalid(
            "Cannot run exchange: command " + abbreviate(text) + " (expected {\"op\": \"lookup\"|\"update\"|\"nearest\", \"shard\": N})");
      }
      if (root.has("lr") && !root.path("lr").isNumber()) {
        throw ShardErrors.invalid("Cannot run exchange: lr " + root.get("lr") + " is not a number");
      }
      double lr = root.path("lr").isNumber() ? root.path("lr").asDouble() : Double.NaN;
      int k = root.path("k").isIntegralNumber() ? root.path("k").asInt() : DEFAULT_K;
      long exclude = root.path("exclude").isIntegralNumber() ? root.path("exclude").asLong() : -1;
      return new Command(root.get("op").asText(), root.get("shard").asInt(), lr, k, exclude);
    }
  }

  /** The app metadata of an update batch: {@code {"lr": lr}} in UTF-8. */
  static byte[] learningRate(float lr) {
    return ("{\"lr\":" + lr + "}").getBytes(StandardCharsets.UTF_8);
  }

  /**
   * The learning rate in an update batch's app metadata, else {@code fallback} (the command's, or
   * NaN); INVALID_ARGUMENT when the metadata is not JSON or its {@code lr} not a number.
   */
  static double learningRate(byte[] metadata, double fallback) {
    if (metadata == null) {
      return fallback;
    }
    String text = new String(metadata, StandardCharsets.UTF_8);
    JsonNode node;
    try {
      node = JSON.readTree(text);
    } catch (IOException e) {
      throw ShardErrors.invalid("Cannot update: app metadata is not JSON: " + abbreviate(text));
    }
    if (node != null && node.path("lr").isNumber()) {
      return node.get("lr").asDouble();
    }
    if (node != null && node.has("lr")) {
      throw ShardErrors.invalid("Cannot update: lr " + node.get("lr") + " in app metadata is not a number");
    }
    return fallback;
  }

  // ------------------------------------------------------------------ actions

  /** The result of {@code health} while serving. */
  static byte[] healthOk() {
    return encode(JSON.createObjectNode().put("status", "ok"));
  }

  /** Checks a {@code health} result; throws naming {@code endpoint} unless its status is ok. */
  static void checkHealth(byte[] result, String endpoint) throws IOException {
    JsonNode n = read(result, "health", endpoint);
    if (!"ok".equals(n.path("status").asText(null))) {
      throw new IOException("Cannot check health of " + endpoint + ": answer " + new String(result, StandardCharsets.UTF_8)
          + " (expected status ok)");
    }
  }

  /** A hosted shard as {@code describe} lists it. */
  record ShardInfo(int index, long rows, long minId, long maxId, String description) {}

  /**
   * The result of {@code describe}: what a server hosts, the limits it enforces, and the gRPC methods
   * of its fast lookups ({@link LookupMethod}) and fast updates ({@link UpdateMethod}; each null when
   * it has none).
   */
  record Describe(int protocolVersion, String table, long tableVersion, long rows, int dim, String partitioner,
      int numShards, List<ShardInfo> shards, TableManifest.Optimizer optimizer, int maxIdsPerRequest,
      int maxMessageBytes, boolean auth, String lookupMethod, String updateMethod) {
    byte[] toJson() {
      ObjectNode n = JSON.createObjectNode();
      n.put("protocolVersion", protocolVersion);
      n.put("table", table);
      n.put("tableVersion", tableVersion);
      n.put("rows", rows);
      n.put("dim", dim);
      n.put("partitioner", partitioner);
      n.put("numShards", numShards);
      ArrayNode list = n.putArray("shards");
      for (ShardInfo s : shards) {
        list.addObject().put("index", s.index()).put("rows", s.rows()).put("minId", s.minId()).put("maxId", s.maxId())
            .put("description", s.description());
      }
      optimizer.writeTo(n.putObject("optimizer"));
      n.put("maxIdsPerRequest", maxIdsPerRequest);
      n.put("maxMessageBytes", maxMessageBytes);
      n.put("auth", auth);
      if (lookupMethod != null) {
        n.put("lookupMethod", lookupMethod);
      }
      if (updateMethod != null) {
        n.put("updateMethod", updateMethod);
      }
      return encode(n);
    }

    static Describe parse(byte[] result, String endpoint) throws IOException {
      JsonNode n = read(result, "describe", endpoint);
      try {
        List<ShardInfo> shards = new ArrayList<>();
        for (JsonNode s : array(n, "shards")) {
          shards.add(new ShardInfo(integer(s, "index"), number(s, "rows"), number(s, "minId"), number(s, "maxId"),
              s.path("description").asText("")));
        }
        JsonNode table = n.get("table");
        return new Describe(integer(n, "protocolVersion"), table == null || table.isNull() ? null : table.asText(),
            number(n, "tableVersion"), number(n, "rows"), integer(n, "dim"), text(n, "partitioner"),
            integer(n, "numShards"), shards, TableManifest.Optimizer.fromJson(object(n, "optimizer")),
            integer(n, "maxIdsPerRequest"), integer(n, "maxMessageBytes"), n.path("auth").asBoolean(false),
            n.path("lookupMethod").isTextual() ? n.get("lookupMethod").asText() : null,
            n.path("updateMethod").isTextual() ? n.get("updateMethod").asText() : null);
      } catch (IllegalArgumentException e) {
        throw bad("describe", endpoint, e);
      }
    }
  }

  /** The body of {@code snapshot}: write the hosted shards {@code shards} (null: all) as table version {@code version} into {@code dir}. */
  record SnapshotRequest(String dir, long version, int[] shards) {
    byte[] toJson() {
      ObjectNode n = JSON.createObjectNode().put("dir", dir).put("version", version);
      if (shards != null) {
        ArrayNode list = n.putArray("shards");
        for (int s : shards) {
          list.add(s);
        }
      }
      return encode(n);
    }

    /** Parses a request body; INVALID_ARGUMENT naming what is wrong. */
    static SnapshotRequest parse(byte[] body) {
      JsonNode req;
      try {
        req = JSON.readTree(body == null ? new byte[0] : body);
      } catch (IOException e) {
        throw ShardErrors.invalid("Cannot snapshot: body is not JSON (expected {\"dir\": D, \"version\": N})");
      }
      if (req == null || !req.path("dir").isTextual() || !req.path("version").isIntegralNumber() || req.get("version").asLong() < 1) {
        throw ShardErrors.invalid("Cannot snapshot: body " + (req == null || req.isMissingNode() ? "empty" : req.toString())
            + " (expected {\"dir\": D, \"version\": N >= 1})");
      }
      int[] shards = null;
      if (req.has("shards")) {
        if (!req.get("shards").isArray()) {
          throw ShardErrors.invalid("Cannot snapshot: shards " + req.get("shards") + " is not a list");
        }
        shards = new int[req.get("shards").size()];
        for (int i = 0; i < shards.length; i++) {
          shards[i] = req.get("shards").get(i).asInt(-1);
        }
      }
      return new SnapshotRequest(req.get("dir").asText(), req.get("version").asLong(), shards);
    }
  }

  /** The result of {@code snapshot}: the manifest entries of the files written, and the optimizer with its step. */
  record SnapshotReply(long version, List<TableManifest.ShardEntry> shards, TableManifest.Optimizer optimizer) {
    byte[] toJson() {
      ObjectNode n = JSON.createObjectNode().put("version", version);
      ArrayNode list = n.putArray("shards");
      for (TableManifest.ShardEntry s : shards) {
        s.writeTo(list.addObject());
      }
      optimizer.writeTo(n.putObject("optimizer"));
      return encode(n);
    }

    static SnapshotReply parse(byte[] result, String endpoint) throws IOException {
      JsonNode n = read(result, "snapshot", endpoint);
      try {
        List<TableManifest.ShardEntry> shards = new ArrayList<>();
        for (JsonNode s : array(n, "shards")) {
          shards.add(TableManifest.ShardEntry.fromJson(s));
        }
        return new SnapshotReply(number(n, "version"), shards, TableManifest.Optimizer.fromJson(object(n, "optimizer")));
      } catch (IllegalArgumentException e) {
        throw bad("snapshot", endpoint, e);
      }
    }
  }

  /**
   * One hosted shard's part of {@code stats}; {@code walRecords} and {@code walSyncs}: update records
   * its write-ahead log appended and fsyncs it made since start (0 without a log).
   */
  record ShardStats(int index, long rows, long bytes, long lookupRows, long updateRows, long walRecords, long walSyncs) {}

  /**
   * The result of {@code stats}: sizes, counters since start, and rates over the last {@code
   * rateWindowSeconds} (see {@link RecentRates}) next to the averages since start.
   */
  record Stats(double uptimeSeconds, long rows, long bytes, long allocatedBytes, long lookupRows, long lookupRequests,
      long updateRows, long updateRequests, long inProcessRequests, double rateWindowSeconds,
      double lookupRowsPerSecond, double lookupRequestsPerSecond, double updateRowsPerSecond,
      double updateRequestsPerSecond, double lookupRowsPerSecondSinceStart, double updateRowsPerSecondSinceStart,
      List<ShardStats> shards) {
    byte[] toJson() {
      ObjectNode n = JSON.createObjectNode();
      ArrayNode list = n.putArray("shards");
      for (ShardStats s : shards) {
        list.addObject().put("index", s.index()).put("rows", s.rows()).put("bytes", s.bytes())
            .put("lookupRows", s.lookupRows()).put("updateRows", s.updateRows())
            .put("walRecords", s.walRecords()).put("walSyncs", s.walSyncs());
      }
      n.put("uptimeSeconds", uptimeSeconds);
      n.put("rows", rows);
      n.put("bytes", bytes);
      n.put("allocatedBytes", allocatedBytes);
      n.put("lookupRows", lookupRows);
      n.put("lookupRequests", lookupRequests);
      n.put("updateRows", updateRows);
      n.put("updateRequests", updateRequests);
      n.put("inProcessRequests", inProcessRequests);
      n.put("rateWindowSeconds", rateWindowSeconds);
      n.put("lookupRowsPerSecond", lookupRowsPerSecond);
      n.put("lookupRequestsPerSecond", lookupRequestsPerSecond);
      n.put("updateRowsPerSecond", updateRowsPerSecond);
      n.put("updateRequestsPerSecond", updateRequestsPerSecond);
      n.put("lookupRowsPerSecondSinceStart", lookupRowsPerSecondSinceStart);
      n.put("updateRowsPerSecondSinceStart", updateRowsPerSecondSinceStart);
      return encode(n);
    }

    static Stats parse(byte[] result, String endpoint) throws IOException {
      JsonNode n = read(result, "stats", endpoint);
      try {
        List<ShardStats> shards = new ArrayList<>();
        for (JsonNode s : array(n, "shards")) {
          shards.add(new ShardStats(integer(s, "index"), number(s, "rows"), number(s, "bytes"), number(s, "lookupRows"),
              number(s, "updateRows"), s.path("walRecords").asLong(0), s.path("walSyncs").asLong(0)));
        }
        return new Stats(real(n, "uptimeSeconds"), number(n, "rows"), number(n, "bytes"), number(n, "allocatedBytes"),
            number(n, "lookupRows"), number(n, "lookupRequests"), number(n, "updateRows"), number(n, "updateRequests"),
            number(n, "inProcessRequests"), real(n, "rateWindowSeconds"), real(n, "lookupRowsPerSecond"),
            real(n, "lookupRequestsPerSecond"), real(n, "updateRowsPerSecond"), real(n, "updateRequestsPerSecond"),
            real(n, "lookupRowsPerSecondSinceStart"), real(n, "updateRowsPerSecondSinceStart"), shards);
      } catch (IllegalArgumentException e) {
        throw bad("stats", endpoint, e);
      }
    }
  }

  // ------------------------------------------------------------------ helpers

  static byte[] encode(JsonNode n) {
    try {
      return JSON.writeValueAsBytes(n);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("Cannot write JSON: " + e.getMessage(), e);
    }
  }

  private static JsonNode read(byte[] result, String action, String endpoint) throws IOException {
    JsonNode n;
    try {
      n = JSON.readTree(result);
    } catch (IOException e) {
      throw new IOException("Cannot read the " + action + " result of " + endpoint + ": not JSON: "
          + abbreviate(new String(result, StandardCharsets.UTF_8)), e);
    }
    if (n == null || !n.isObject()) {
      throw new IOException("Cannot read the " + action + " result of " + endpoint + ": not a JSON object");
    }
    return n;
  }

  private static IOException bad(String action, String endpoint, IllegalArgumentException e) {
    return new IOException("Cannot read the " + action + " result of " + endpoint + ": " + e.getMessage(), e);
  }

  private static JsonNode array(JsonNode n, String name) {
    JsonNode v = n.get(name);
    if (v == null || !v.isArray()) {
      throw new IllegalArgumentException("member '" + name + "' missing or not a list");
    }
    return v;
  }

  private static JsonNode object(JsonNode n, String name) {
    JsonNode v = n.get(name);
    if (v == null || !v.isObject()) {
      throw new IllegalArgumentException("member '" + name + "' missing or not an object");
    }
    return v;
  }

  private static String text(JsonNode n, String name) {
    JsonNode v = n.get(name);
    if (v == null || !v.isTextual()) {
      throw new IllegalArgumentException("member '" + name + "' missing or not a string");
    }
    return v.asText();
  }

  private static long number(JsonNode n, String name) {
    JsonNode v = n.get(name);
    if (v == null || !v.isIntegralNumber()) {
      throw new IllegalArgumentException("member '" + name + "' missing or not an integer");
    }
    return v.asLong();
  }

  private static int integer(JsonNode n, String name) {
    long v = number(n, name);
    if (v != (int) v) {
      throw new IllegalArgumentException("member '" + name + "' is " + v + " (outside the int range)");
    }
    return (int) v;
  }

  private static double real(JsonNode n, String name) {
    JsonNode v = n.get(name);
    if (v == null || !v.isNumber()) {
      throw new IllegalArgumentException("member '" + name + "' missing or not a number");
    }
    return v.asDouble();
  }

  static String abbreviate(String s) {
    return s.length() <= 200 ? "'" + s + "'" : "'" + s.substring(0, 200) + "...'";
  }
}
