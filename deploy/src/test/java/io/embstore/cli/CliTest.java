package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.embstore.format.TableWriter;
import io.embstore.format.TestMatrices;
import io.embstore.format.Vocabulary;
import io.embstore.shard.EmbeddingClient;
import io.embstore.shard.ShardException;
import io.embstore.shard.TableSnapshot;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** serve, lookup and nearest run in-process: two serve commands host P=4 shards. */
@Timeout(300)
class CliTest {
  static final int V = 300;
  static final int C = 5;
  static final String READ_TOKEN = "cli-read-token-5f1c";
  static final String WRITE_TOKEN = "cli-write-token-9a7e";
  @TempDir Path tmp;
  BufferAllocator allocator;
  float[] matrix;
  Path table;
  final List<ServeCommand> serving = new ArrayList<>();
  final List<CompletableFuture<Integer>> exits = new ArrayList<>();

  @BeforeEach
  void open() throws Exception {
    allocator = new RootAllocator();
    matrix = TestMatrices.random(V, C, 5);
    table = tmp.resolve("t");
    List<String> tokens = new ArrayList<>();
    for (int i = 0; i < V; i++) {
      tokens.add("w" + i);
    }
    try (TableWriter w = TableWriter.create(table, V, C, 4, "modulo", allocator)) {
      ByteBuffer buf = ByteBuffer.allocateDirect(matrix.length * 4).order(ByteOrder.LITTLE_ENDIAN);
      buf.asFloatBuffer().put(matrix);
      w.vocabulary(Vocabulary.of(tokens, null)).createdBy("test").appendInIdOrder(buf, V);
      w.commit();
    }
  }

  @AfterEach
  void close() throws Exception {
    for (ServeCommand s : serving) {
      s.stop();
    }
    for (CompletableFuture<Integer> e : exits) {
      assertThat(e.get()).isEqualTo(0);
    }
    allocator.close();
  }

  /** Starts {@code embstore serve} on a thread and returns the endpoint from its ready line. */
  private String serve(String... args) throws Exception {
    return readyLine(args).group(1);
  }

  /** Starts {@code embstore serve} on a thread; the match of its ready line, endpoint in group 1. */
  private Matcher readyLine(String... args) throws Exception {
    ServeCommand cmd = new ServeCommand();
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    exits.add(CompletableFuture.supplyAsync(() -> Cli.run(cmd, new PrintWriter(out, true), new PrintWriter(err, true), args)));
    serving.add(cmd);
    // Any host: a test of the bind address must see what was printed, not wait for 127.0.0.1.
    Pattern ready = Pattern.compile("^embstore serve: serving shards \\[[0-9, ]+\\] of \\S+ at (grpc\\+tcp://\\S+:\\d+)(.*)$");
    while (true) {
      Matcher m = ready.matcher(out.toString().strip());
      if (out.toString().endsWith(System.lineSeparator()) && m.find()) {
        assertThat(out.toString().lines().count()).isEqualTo(1);
        return m;
      }
      assertThat(exits.get(exits.size() - 1).isDone()).as("serve exited early: %s", err).isFalse();
      Thread.sleep(20);
    }
  }

  private String[] run(Object cmd, int expectedExit, String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Cli.run(cmd, new PrintWriter(out, true), new PrintWriter(err, true), args);
    assertThat(code).as("stderr: %s", err).isEqualTo(expectedExit);
    return new String[] {out.toString(), err.toString()};
  }

  @Test
  void serveLookupAndNearestAcrossTwoServers() throws Exception {
    String a = serve("--table", table.toString(), "--shards", "0,2", "--port", "0");
    String b = serve("--table", table.toString(), "--shards", "1,3");
    String endpoints = a + "," + b;

    String[] byId = run(new LookupCommand(), 0, "--table", table.toString(), "--endpoints", endpoints, "--ids", "7,0,7,299");
    assertLookupLines(byId[0], 7, 0, 7, 299);
    List<String> lines = byId[0].lines().toList();

    String[] byToken = run(new LookupCommand(), 0, "--table", table.toString(), "--endpoints", endpoints, "--tokens", "w7,w299");
    assertThat(byToken[0].lines().toList()).containsExactly(
        lines.get(0).replaceFirst("^7", "w7"), lines.get(3).replaceFirst("^299", "w299"));

    String[] near = run(new NearestCommand(), 0, "--table", table.toString(), "--endpoints", endpoints, "--id", "42", "-k", "4");
    List<Integer> expected = IntStream.range(0, V).filter(i -> i != 42).boxed()
        .sorted(Comparator.comparingDouble((Integer i) -> -cosine(42, i))).limit(4).toList();
    List<String> got = near[0].lines().toList();
    assertThat(got).hasSize(4);
    for (int i = 0; i < 4; i++) {
      String[] parts = got.get(i).split("\t");
      assertThat(parts[0]).isEqualTo(Integer.toString(expected.get(i)));
      assertThat(Double.parseDouble(parts[1])).isCloseTo(cosine(42, expected.get(i)), org.assertj.core.api.Assertions.within(1e-5));
    }
    String[] nearToken = run(new NearestCommand(), 0, "--table", table.toString(), "--endpoints", endpoints, "--token", "w42", "-k", "4");
    assertThat(nearToken[0].lines().map(l -> l.split("\t")[0]).toList())
        .containsExactlyElementsOf(expected.stream().map(i -> "w" + i).toList());

    String[] unknown = run(new LookupCommand(), 1, "--table", table.toString(), "--endpoints", endpoints, "--tokens", "nosuchword");
    assertThat(unknown[1]).isEqualTo("embstore lookup: Unknown token 'nosuchword' (not in the vocabulary of 300 tokens)" + System.lineSeparator());
    String[] outside = run(new LookupCommand(), 1, "--table", table.toString(), "--endpoints", endpoints, "--ids", "300");
    assertThat(outside[1]).startsWith("embstore lookup: Cannot look up id 300: outside [0, 300)");
  }

  @Test
  void serveRefusesAShardTheTableDoesNotHave() {
    String[] r = run(new ServeCommand(), 1, "--table", table.toString(), "--shards", "4");
    assertThat(r[1]).isEqualTo("embstore serve: Cannot host shard 4: the table has shards 0..3" + System.lineSeparator());
  }

  @Test
  void tlsOptionsThatDoNotGoTogetherAreRefusedNamingThem() {
    String[] r = run(new ServeCommand(), 1, "--table", table.toString(), "--tls-client-ca", "ca.pem");
    assertThat(r[1]).isEqualTo("embstore serve: Cannot serve: --tls-client-ca needs --tls-cert and --tls-key" + System.lineSeparator());
    r = run(new LookupCommand(), 1, "--table", table.toString(), "--endpoints", "grpc+tls://127.0.0.1:1", "--ids", "1", "--tls-cert", "c.pem");
    assertThat(r[1]).isEqualTo("embstore lookup: Cannot connect: --tls-cert and --tls-key go together" + System.lineSeparator());
  }

  @Test
  void lookupNamesAnEndpointThatDoesNotAnswer() throws Exception {
    String a = serve("--table", table.toString());
    String dead = "grpc+tcp://127.0.0.1:1";
    String[] r = run(new LookupCommand(), 1, "--table", table.toString(), "--endpoints", a + "," + dead, "--ids", "1", "--deadline-ms", "5000");
    assertThat(r[1]).startsWith("embstore lookup: Cannot describe endpoint " + dead + ": UNAVAILABLE");
  }

  @Test
  void serveOnTheWildcardAddressPrintsALoopbackEndpointThatALookupConnectsTo() throws Exception {
    Matcher ready = readyLine("--table", table.toString(), "--host", "0.0.0.0", "--shards", "0,1,2,3");
    String endpoint = ready.group(1);
    String port = endpoint.substring(endpoint.lastIndexOf(':') + 1);
    // Not grpc+tcp://0.0.0.0:PORT, which names no server (Linux happens to route it to this
    // machine, so a lookup through it alone would not show the difference).
    assertThat(endpoint).isEqualTo("grpc+tcp://127.0.0.1:" + port);
    assertThat(ready.group(2)).isEqualTo(" (listening on every address, 0.0.0.0:" + port + ")");

    String[] r = run(new LookupCommand(), 0, "--table", table.toString(), "--endpoints", endpoint, "--ids", "299,3");
    assertLookupLines(r[0], 299, 3);
  }

  @Test
  void aServerWithTokensAnswersLookupAndNearestWithTheReadTokenOnly() throws Exception {
    String ep = serve("--table", table.toString(), "--read-token", READ_TOKEN, "--write-token", WRITE_TOKEN);
    String[] common = {"--table", table.toString(), "--endpoints", ep, "--deadline-ms", "20000"};

    String[] withRead = run(new LookupCommand(), 0, concat(common, "--ids", "7,299", "--auth-token", READ_TOKEN));
    assertLookupLines(withRead[0], 7, 299);
    assertThat(withRead[1]).as("no warning under the option's own name").isEmpty();
    assertLookupLines(run(new LookupCommand(), 0, concat(common, "--ids", "7,299", "--auth-token", WRITE_TOKEN))[0], 7, 299);
    // lookup's old name for the bearer token still works for a release, with a warning.
    String[] old = run(new LookupCommand(), 0, concat(common, "--ids", "7,299", "--token", READ_TOKEN));
    assertLookupLines(old[0], 7, 299);
    assertThat(old[1].strip()).isEqualTo("embstore lookup: --token is deprecated and will be removed; use --auth-token");
    assertThat(run(new LookupCommand(), 0, "--help")[0]).contains("--auth-token").doesNotContain("--token ");
    // nearest's --token is the query token; its bearer token is --auth-token.
    String[] near = run(new NearestCommand(), 0, concat(common, "--token", "w42", "-k", "3", "--auth-token", READ_TOKEN));
    assertThat(near[0].lines()).hasSize(3).allMatch(l -> l.matches("w\\d+\t[-0-9.E]+"));

    String noBearer = "Cannot authenticate: no bearer token (send header 'authorization: Bearer <token>')";
    String notValid = "Cannot authenticate: the bearer token is not valid for this server";
    String[] none = run(new LookupCommand(), 1, concat(common, "--ids", "7"));
    assertOneErrorLine(none, "embstore lookup: ", noBearer);
    String[] wrong = run(new LookupCommand(), 1, concat(common, "--ids", "7", "--auth-token", READ_TOKEN + "x"));
    assertOneErrorLine(wrong, "embstore lookup: ", notValid);
    String[] nearNone = run(new NearestCommand(), 1, concat(common, "--id", "42"));
    assertOneErrorLine(nearNone, "embstore nearest: ", noBearer);
    String[] nearWrong = run(new NearestCommand(), 1, concat(common, "--id", "42", "--auth-token", "nope"));
    assertOneErrorLine(nearWrong, "embstore nearest: ", notValid);
    assertThat(wrong[1] + nearWrong[1]).as("tokens are never echoed").doesNotContain(READ_TOKEN).doesNotContain("nope");
  }

  @Test
  void theReadTokenGivenToServeCannotWriteAndTheWriteTokenCan() throws Exception {
    // No command writes (train writes through its own servers), so a client stands in for one:
    // what is pinned here is that serve hands --read-token and --write-token to the right roles.
    String ep = serve("--table", table.toString(), "--read-token", READ_TOKEN, "--write-token", WRITE_TOKEN);
    long[] ids = {7, 8};
    float[] grads = new float[ids.length * C];
    java.util.Arrays.fill(grads, 1f);
    float[] before = new float[ids.length * C];
    try (EmbeddingClient reader = client(ep, READ_TOKEN)) {
      reader.lookup(ids, before);
      Throwable update = catchThrowable(() -> reader.update(ids, grads, 0.5f));
      assertThat(update).isInstanceOf(ShardException.class)
          .hasMessageContaining("Cannot update shard ").hasMessageContaining(": the token is read-only (updates and snapshots need the write token)");
      assertThat(((ShardException) update).code()).isEqualTo(FlightStatusCode.UNAUTHORIZED);
      Throwable snapshot = catchThrowable(() -> TableSnapshot.write(reader, tmp.resolve("snap")));
      assertThat(snapshot).isInstanceOf(java.io.IOException.class)
          .hasMessageContaining("Cannot snapshot: the token is read-only (updates and snapshots need the write token)");
      float[] after = new float[before.length];
      reader.lookup(ids, after);
      assertThat(after).as("rows after refused writes").isEqualTo(before);
    }
    try (EmbeddingClient writer = client(ep, WRITE_TOKEN)) {
      writer.update(ids, grads, 0.5f);
      float[] after = new float[before.length];
      writer.lookup(ids, after);
      for (int i = 0; i < after.length; i++) {
        assertThat(after[i]).as("value %d after an update with the write token", i).isNotEqualTo(before[i]);
      }
    }
  }

  private EmbeddingClient client(String endpoint, String token) throws java.io.IOException {
    return EmbeddingClient.builder().table(table).endpoints(List.of(endpoint)).allocator(allocator)
        .deadline(Duration.ofSeconds(20)).token(token).build();
  }

  /** Checks lookup's output: one line per id in request order, the row's C values parsing back exactly. */
  private void assertLookupLines(String out, long... ids) {
    List<String> lines = out.lines().toList();
    assertThat(lines).hasSize(ids.length);
    for (int i = 0; i < ids.length; i++) {
      String[] parts = lines.get(i).split("\t");
      assertThat(parts[0]).isEqualTo(Long.toString(ids[i]));
      String[] values = parts[1].split(" ");
      assertThat(values).hasSize(C);
      for (int c = 0; c < C; c++) {
        assertThat(Float.parseFloat(values[c])).as("id %d column %d", ids[i], c).isEqualTo(matrix[(int) ids[i] * C + c]);
      }
    }
  }

  /** A failure: nothing on stdout, one stderr line with the command's prefix naming the status and reason. */
  private static void assertOneErrorLine(String[] outErr, String prefix, String reason) {
    assertThat(outErr[0]).isEmpty();
    assertThat(outErr[1].lines()).hasSize(1);
    assertThat(outErr[1]).startsWith(prefix).contains("UNAUTHENTICATED").contains(reason).endsWith(System.lineSeparator());
  }

  private static String[] concat(String[] a, String... b) {
    String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, r, a.length, b.length);
    return r;
  }

  private double cosine(int a, int b) {
    double dot = 0;
    double na = 0;
    double nb = 0;
    for (int c = 0; c < C; c++) {
      double x = matrix[a * C + c];
      double y = matrix[b * C + c];
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    return dot / Math.sqrt(na * nb);
  }
}
