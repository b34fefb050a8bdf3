package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.TableWriter;
import io.embstore.format.TestMatrices;
import io.embstore.format.Tokenizer;
import io.embstore.format.Vocabulary;
import io.embstore.shard.ShardServer;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.IntStream;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.util.AutoCloseables;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code lookup --text} and {@code nearest --text} tokenize as the table records: GPT-2's ids for a
 * table imported with {@code --tokenizer gpt2}, whitespace-separated vocabulary tokens otherwise;
 * rows and neighbours as by id, from two shard servers.
 */
@Timeout(300)
class TextQueryTest {
  @TempDir Path tmp;
  BufferAllocator allocator;
  final List<ShardServer> servers = new ArrayList<>();

  @BeforeEach
  void open() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void close() throws Exception {
    AutoCloseables.close(servers);
    allocator.close();
  }

  private Path table(String name, float[] m, int rows, int dim, Vocabulary vocab, String tokenizer) throws Exception {
    Path dir = tmp.resolve(name);
    try (TableWriter w = TableWriter.create(dir, rows, dim, 4, "modulo", allocator)) {
      ByteBuffer buf = ByteBuffer.allocateDirect(m.length * 4).order(ByteOrder.LITTLE_ENDIAN);
      buf.asFloatBuffer().put(m);
      w.vocabulary(vocab).createdBy("test").appendInIdOrder(buf, rows);
      if (tokenizer != null) {
        w.property(Tokenizer.PROPERTY, tokenizer);
      }
      w.commit();
    }
    return dir;
  }

  /** Two servers, shards 0 and 2 on one, 1 and 3 on the other; the endpoints, comma-separated. */
  private String serve(Path table) throws Exception {
    List<String> endpoints = new ArrayList<>();
    for (int[] shards : new int[][] {{0, 2}, {1, 3}}) {
      ShardServer s = ShardServer.builder().table(table).shards(shards).host("127.0.0.1").port(0).allocator(allocator).start();
      servers.add(s);
      endpoints.add(s.endpoint());
    }
    return String.join(",", endpoints);
  }

  private static String[] run(Object cmd, int expectedExit, String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Cli.run(cmd, new PrintWriter(out, true), new PrintWriter(err, true), args);
    assertThat(code).as("stderr: %s", err).isEqualTo(expectedExit);
    return new String[] {out.toString(), err.toString()};
  }

  private static String row(float[] m, int dim, long id) {
    StringBuilder sb = new StringBuilder();
    for (int c = 0; c < dim; c++) {
      sb.append(c > 0 ? " " : "").append(m[(int) id * dim + c]);
    }
    return sb.toString();
  }

  @Test
  void gpt2TableLooksUpEachBytePairTokenOfTheText() throws Exception {
    int rows = 50_257;
    int dim = 8;
    float[] m = TestMatrices.random(rows, dim, 3);
    Path table = table("gpt2", m, rows, dim, Tokenizer.of("gpt2").vocabulary(), "gpt2");
    String endpoints = serve(table);

    String[] r = run(new LookupCommand(), 0, "--table", table.toString(), "--endpoints", endpoints, "--text", "Hello world");
    assertThat(r[0].lines().toList()).containsExactly(
        "15496\tHello\t" + row(m, dim, 15496),
        "995\t\u0120world\t" + row(m, dim, 995));

    String[] near = run(new NearestCommand(), 0, "--table", table.toString(), "--endpoints", endpoints, "--text", " world", "-k", "3");
    String[] byId = run(new NearestCommand(), 0, "--table", table.toString(), "--endpoints", endpoints, "--id", "995", "-k", "3");
    Vocabulary v = Tokenizer.of("gpt2").vocabulary();
    assertThat(near[0].lines().toList()).containsExactlyElementsOf(
        byId[0].lines().map(l -> v.token(Long.parseLong(l.split("\t")[0])) + "\t" + l.split("\t")[1]).toList());

    String[] empty = run(new LookupCommand(), 1, "--table", table.toString(), "--endpoints", endpoints, "--text", "");
    assertThat(empty[1]).isEqualTo("embstore lookup: Cannot tokenize '': no tokens" + System.lineSeparator());
  }

  @Test
  void tableWithoutTokenizerTakesWhitespaceSeparatedVocabularyTokens() throws Exception {
    int rows = 300;
    int dim = 5;
    float[] m = TestMatrices.random(rows, dim, 9);
    List<String> tokens = IntStream.range(0, rows).mapToObj(i -> "w" + i).toList();
    Path table = table("words", m, rows, dim, Vocabulary.of(tokens, null), null);
    String endpoints = serve(table);

    String[] r = run(new LookupCommand(), 0, "--table", table.toString(), "--endpoints", endpoints, "--text", " w7  w299 w7");
    assertThat(r[0].lines().toList()).containsExactly(
        "7\tw7\t" + row(m, dim, 7), "299\tw299\t" + row(m, dim, 299), "7\tw7\t" + row(m, dim, 7));

    // Several tokens: the neighbours of their mean row (the tokens themselves may be among them).
    float[] mean = new float[dim];
    for (int c = 0; c < dim; c++) {
      mean[c] = (m[dim + c] + m[2 * dim + c]) / 2;
    }
    List<String> expected = IntStream.range(0, rows).boxed()
        .sorted(Comparator.comparingDouble((Integer i) -> -cosine(m, dim, i, mean))).limit(4).map(i -> "w" + i).toList();
    String[] near = run(new NearestCommand(), 0, "--table", table.toString(), "--endpoints", endpoints, "--text", "w1 w2", "-k", "4");
    assertThat(near[0].lines().map(l -> l.split("\t")[0]).toList()).containsExactlyElementsOf(expected);

    String[] unknown = run(new LookupCommand(), 1, "--table", table.toString(), "--endpoints", endpoints, "--text", "w1 king");
    assertThat(unknown[1]).isEqualTo(
        "embstore lookup: Cannot tokenize 'w1 king': word 'king' is not in the vocabulary of 300 tokens" + System.lineSeparator());
  }

  private static double cosine(float[] m, int dim, int id, float[] q) {
    double dot = 0;
    double a = 0;
    double b = 0;
    for (int c = 0; c < dim; c++) {
      dot += m[id * dim + c] * (double) q[c];
      a += m[id * dim + c] * (double) m[id * dim + c];
      b += q[c] * (double) q[c];
    }
    return dot / Math.sqrt(a * b);
  }
}
