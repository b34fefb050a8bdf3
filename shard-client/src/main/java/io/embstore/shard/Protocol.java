package io.embstore.shard;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The embstore shard protocol over Arrow Flight, version {@value #VERSION}; {@code
 * docs/protocol.md} is its description for clients in other languages.
 *
 * <p>Data calls are DoExchange streams whose descriptor is a command: UTF-8 JSON {@code {"op":
 * "lookup"|"update"|"nearest", "shard": S, ...}}. Every request record batch the client sends gets
 * exactly one reply batch, in order. Control calls are DoAction with a JSON body and one JSON
 * result.
 */
final class Protocol {
  static final int VERSION = 1;

  static final String OP_LOOKUP = "lookup";
  static final String OP_UPDATE = "update";
  static final String OP_NEAREST = "nearest";

  static final String ACTION_HEALTH = "health";
  static final String ACTION_DESCRIBE = "describe";
  static final String ACTION_STATS = "stats";
  static final String ACTION_SNAPSHOT = "snapshot";

  static final String ID = "id";
  static final String EMBEDDING = "embedding";
  static final String GRAD = "grad";
  static final String QUERY = "query";
  static final String SIMILARITY = "similarity";
  static final String APPLIED = "applied";

  static final ObjectMapper JSON = new ObjectMapper();

  private Protocol() {}

  static Field int64(String name) {
    return new Field(name, FieldType.notNullable(new ArrowType.Int(64, true)), null);
  }

  static Field float32(String name) {
    return new Field(name, FieldType.notNullable(new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE)), null);
  }

  static Field floatList(String name, int width) {
    return new Field(
        name, FieldType.notNullable(new ArrowType.FixedSizeList(width)), List.of(float32("item")));
  }

  static Schema lookupRequest() {
    return new Schema(List.of(int64(ID)));
  }

  static Schema lookupReply(int dim) {
    return new Schema(List.of(floatList(EMBEDDING, dim)));
  }

  static Schema updateRequest(int dim) {
    return new Schema(List.of(int64(ID), floatList(GRAD, dim)));
  }

  static Schema updateReply() {
    return new Schema(List.of(int64(APPLIED)));
  }

  static Schema nearestRequest(int dim) {
    return new Schema(List.of(floatList(QUERY, dim)));
  }

  static Schema nearestReply() {
    return new Schema(List.of(int64(ID), float32(SIMILARITY)));
  }

  /** Whether {@code actual} has the fields of {@code expected} (names, types, widths), ignoring metadata and nullability. */
  static boolean sameShape(Schema actual, Schema expected) {
    List<Field> a = actual.getFields();
    List<Field> e = expected.getFields();
    if (a.size() != e.size()) {
      return false;
    }
    for (int i = 0; i < a.size(); i++) {
      if (!sameField(a.get(i), e.get(i))) {
        return false;
      }
    }
    return true;
  }

  private static boolean sameField(Field a, Field e) {
    if (!a.getName().equals(e.getName()) || !a.getType().equals(e.getType())
        || a.getChildren().size() != e.getChildren().size()) {
      return false;
    }
    for (int i = 0; i < a.getChildren().size(); i++) {
      if (!a.getChildren().get(i).getType().equals(e.getChildren().get(i).getType())) {
        return false;
      }
    }
    return true;
  }

  /** A parsed exchange command. */
  record Command(String op, int shard, double lr, int k, long exclude) {
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
      double lr = root.path("lr").isNumber() ? root.path("lr").asDouble() : Double.NaN;
      if (root.has("lr") && !root.path("lr").isNumber()) {
        throw ShardErrors.invalid("Cannot run exchange: lr " + root.get("lr") + " is not a number");
      }
      int k = root.path("k").isIntegralNumber() ? root.path("k").asInt() : 10;
      long exclude = root.path("exclude").isIntegralNumber() ? root.path("exclude").asLong() : -1;
      return new Command(root.get("op").asText(), root.get("shard").asInt(), lr, k, exclude);
    }
  }

  static FlightDescriptor command(String op, int shard) {
    return command(op, shard, null);
  }

  static FlightDescriptor command(String op, int shard, ObjectNode extra) {
    ObjectNode n = JSON.createObjectNode();
    n.put("op", op);
    n.put("shard", shard);
    if (extra != null) {
      n.setAll(extra);
    }
    return FlightDescriptor.command(n.toString().getBytes(StandardCharsets.UTF_8));
  }

  static String abbreviate(String s) {
    return s.length() <= 200 ? "'" + s + "'" : "'" + s.substring(0, 200) + "...'";
  }
}
