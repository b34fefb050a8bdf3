package io.embstore.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.embstore.format.TableManifest;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.junit.jupiter.api.Test;

/**
 * The codec of every JSON message of the protocol: what one side writes the other reads back
 * unchanged, the member names are those of docs/protocol.md, and a malformed message is refused
 * naming what is wrong (INVALID_ARGUMENT for requests a server parses, an IOException naming the
 * endpoint for results a client parses).
 */
class MessagesTest {
  static final String E = "grpc+tcp://127.0.0.1:1";

  static TableManifest.Optimizer adagrad(long step) {
    Map<String, Double> params = new LinkedHashMap<>();
    params.put("lr", 0.05);
    params.put("eps", 1e-8);
    return new TableManifest.Optimizer("rowwise-adagrad", params, List.of(new TableManifest.StateColumn("adagrad_row_sum", 1)), step);
  }

  static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void commandsRoundTripWithTheirDefaults() {
    Messages.Command lookup = Messages.Command.parse(Messages.Command.lookup(3).descriptor());
    assertThat(lookup.op()).isEqualTo("lookup");
    assertThat(lookup.shard()).isEqualTo(3);
    assertThat(lookup.lr()).isNaN();
    assertThat(lookup.k()).isEqualTo(10);
    assertThat(lookup.exclude()).isEqualTo(-1);
    assertThat(Messages.Command.parse(Messages.Command.nearest(1, 25, 77).descriptor()))
        .isEqualTo(new Messages.Command("nearest", 1, Double.NaN, 25, 77));
    // what a client in another language sends: the members of docs/protocol.md
    assertThat(Messages.Command.parse(FlightDescriptor.command(utf8("{\"op\":\"update\",\"shard\":0,\"lr\":0.5}"))).lr())
        .isEqualTo(0.5);
    assertThat(new String(Messages.Command.update(2).descriptor().getCommand(), StandardCharsets.UTF_8))
        .isEqualTo("{\"op\":\"update\",\"shard\":2}");
  }

  @Test
  void badCommandsAreInvalidArguments() {
    assertInvalid(() -> Messages.Command.parse(FlightDescriptor.path("x")),
        "Cannot run exchange: descriptor is not a command (expected UTF-8 JSON {\"op\": ..., \"shard\": ...})");
    assertInvalid(() -> Messages.Command.parse(FlightDescriptor.command(utf8("{nope"))), "Cannot run exchange: command is not JSON: '{nope'");
    assertInvalid(() -> Messages.Command.parse(FlightDescriptor.command(utf8("{\"op\":\"lookup\"}"))),
        "Cannot run exchange: command '{\"op\":\"lookup\"}' (expected {\"op\": \"lookup\"|\"update\"|\"nearest\", \"shard\": N})");
    assertInvalid(() -> Messages.Command.parse(FlightDescriptor.command(utf8("{\"op\":\"update\",\"shard\":0,\"lr\":\"fast\"}"))),
        "Cannot run exchange: lr \"fast\" is not a number");
  }

  @Test
  void learningRatesInAppMetadata() {
    // the float's shortest decimal form, read back as that decimal (the server rounds it to float32 once)
    assertThat(Messages.learningRate(Messages.learningRate(0.025f), Double.NaN)).isEqualTo(0.025);
    assertThat((float) Messages.learningRate(Messages.learningRate(0.1f / 3), Double.NaN)).isEqualTo(0.1f / 3);
    assertThat(Messages.learningRate(null, 0.1)).isEqualTo(0.1);
    assertThat(Messages.learningRate(utf8("{\"other\":1}"), 0.1)).isEqualTo(0.1);
    assertInvalid(() -> Messages.learningRate(utf8("lr=1"), Double.NaN), "Cannot update: app metadata is not JSON: 'lr=1'");
    assertInvalid(() -> Messages.learningRate(utf8("{\"lr\":[1]}"), Double.NaN), "Cannot update: lr [1] in app metadata is not a number");
  }

  @Test
  void describeRoundTrips() throws IOException {
    Messages.Describe d = new Messages.Describe(1, "/t", 4, 1000, 16, "modulo", 4,
        List.of(new Messages.ShardInfo(0, 250, 0, 996, "shard 0 of 4"), new Messages.ShardInfo(2, 250, 2, 998, "shard 2 of 4")),
        adagrad(17), 1 << 20, 256 << 20, true, "embstore.Shard/Lookup", "embstore.Shard/Update");
    assertThat(Messages.Describe.parse(d.toJson(), E)).isEqualTo(d);
    Messages.Describe noTable = new Messages.Describe(1, null, 1, 10, 2, "range", 1, List.of(), adagrad(0), 5, 2048, false, null, null);
    assertThat(Messages.Describe.parse(noTable.toJson(), E)).isEqualTo(noTable);
    assertThatThrownBy(() -> Messages.Describe.parse(utf8("{\"protocolVersion\":1}"), E))
        .isInstanceOf(IOException.class)
        .hasMessage("Cannot read the describe result of " + E + ": member 'shards' missing or not a list");
    assertThatThrownBy(() -> Messages.Describe.parse(utf8("[]"), E))
        .isInstanceOf(IOException.class).hasMessage("Cannot read the describe result of " + E + ": not a JSON object");
  }

  @Test
  void snapshotRequestAndReplyRoundTrip() throws IOException {
    Messages.SnapshotRequest all = new Messages.SnapshotRequest("/data/t", 7, null);
    Messages.SnapshotRequest some = Messages.SnapshotRequest.parse(new Messages.SnapshotRequest("/data/t", 7, new int[] {0, 2}).toJson());
    assertThat(Messages.SnapshotRequest.parse(all.toJson()).shards()).isNull();
    assertThat(some.dir()).isEqualTo("/data/t");
    assertThat(some.version()).isEqualTo(7);
    assertThat(some.shards()).containsExactly(0, 2);
    Messages.SnapshotReply reply = new Messages.SnapshotReply(7,
        List.of(new TableManifest.ShardEntry(0, "shard-00000-v000007.arrow", 250, 0, 996, 123456, 0xdeadbeef)), adagrad(9));
    assertThat(Messages.SnapshotReply.parse(reply.toJson(), E)).isEqualTo(reply);
    assertThat(new String(reply.toJson(), StandardCharsets.UTF_8)).contains("\"crc32c\":\"deadbeef\"");
  }

  @Test
  void badSnapshotRequestsAreInvalidArguments() {
    assertInvalid(() -> Messages.SnapshotRequest.parse(utf8("{")), "Cannot snapshot: body is not JSON (expected {\"dir\": D, \"version\": N})");
    assertInvalid(() -> Messages.SnapshotRequest.parse(utf8("{\"dir\":\"/x\",\"version\":0}")),
        "Cannot snapshot: body {\"dir\":\"/x\",\"version\":0} (expected {\"dir\": D, \"version\": N >= 1})");
    assertInvalid(() -> Messages.SnapshotRequest.parse(utf8("{\"dir\":\"/x\",\"version\":2,\"shards\":3}")),
        "Cannot snapshot: shards 3 is not a list");
    assertInvalid(() -> Messages.SnapshotRequest.parse(null), "Cannot snapshot: body empty (expected {\"dir\": D, \"version\": N >= 1})");
  }

  @Test
  void statsRoundTrip() throws IOException {
    Messages.Stats s = new Messages.Stats(12.5, 1000, 64000, 70000, 500, 20, 300, 10, 4, 10.0, 50.5, 2.0, 30.0, 1.0, 40.0,
        24.0, List.of(new Messages.ShardStats(1, 500, 32000, 250, 150, 120, 40)));
    assertThat(Messages.Stats.parse(s.toJson(), E)).isEqualTo(s);
    assertThatThrownBy(() -> Messages.Stats.parse(utf8("{\"shards\":[],\"uptimeSeconds\":\"x\"}"), E))
        .isInstanceOf(IOException.class)
        .hasMessage("Cannot read the stats result of " + E + ": member 'uptimeSeconds' missing or not a number");
  }

  @Test
  void healthIsOkOrNamesTheAnswer() throws IOException {
    Messages.checkHealth(Messages.healthOk(), E);
    assertThatThrownBy(() -> Messages.checkHealth(utf8("{\"status\":\"starting\"}"), E))
        .isInstanceOf(IOException.class)
        .hasMessage("Cannot check health of " + E + ": answer {\"status\":\"starting\"} (expected status ok)");
  }

  private static void assertInvalid(org.assertj.core.api.ThrowableAssert.ThrowingCallable call, String message) {
    assertThatThrownBy(call)
        .isInstanceOf(FlightRuntimeException.class)
        .hasMessage(message)
        .satisfies(e -> assertThat(((FlightRuntimeException) e).status().code()).isEqualTo(FlightStatusCode.INVALID_ARGUMENT));
  }
}
