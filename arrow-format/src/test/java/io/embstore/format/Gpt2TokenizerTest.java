package io.embstore.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashSet;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * GPT-2's ids and token strings: known strings encode to the ids GPT-2 gives them (those of the
 * issue and of GPT-2's own encoder, cross-checked in full against its {@code encoder.json} by
 * {@code Gpt2EncoderJsTest}), and the vocabulary is GPT-2's byte-level strings.
 */
class Gpt2TokenizerTest {
  private final Tokenizer gpt2 = Tokenizer.of("gpt2");

  @Test
  void knownStringsGetGpt2Ids() {
    assertThat(gpt2.encode("Hello world")).containsExactly(15496, 995);
    assertThat(gpt2.encode("The quick brown fox")).containsExactly(464, 2068, 7586, 21831);
    assertThat(gpt2.encode("")).isEmpty();
    // The special token's characters are ordinary text.
    assertThat(gpt2.encode("<|endoftext|>")).containsExactly(27, 91, 437, 1659, 5239, 91, 29);
  }

  @Test
  void vocabularyHoldsGpt2sByteLevelTokenStrings() {
    Vocabulary v = gpt2.vocabulary();
    assertThat(v.size()).isEqualTo(50_257);
    assertThat(gpt2.vocabularySize()).isEqualTo(50_257);
    assertThat(v.token(15496)).isEqualTo("Hello");
    assertThat(v.token(995)).isEqualTo("\u0120world");
    assertThat(v.token(0)).isEqualTo("!");
    assertThat(v.token(198)).isEqualTo("\u010a");
    assertThat(v.token(220)).isEqualTo("\u0120");
    assertThat(v.token(50256)).isEqualTo("<|endoftext|>");
    assertThat(v.id("\u0120world")).isEqualTo(995);
    assertThat(new HashSet<>(v.tokens())).hasSize(50_257);
    assertThat(gpt2.token(995)).isEqualTo("\u0120world");
    assertThat(gpt2.vocabulary()).isSameAs(v);
  }

  @Test
  void everyByteHasItsOwnCharacter() {
    HashSet<Character> seen = new HashSet<>();
    for (int b = 0; b < 256; b++) {
      seen.add(Gpt2Tokenizer.byteToChar(b));
    }
    assertThat(seen).hasSize(256);
    assertThat(Gpt2Tokenizer.byteToChar(' ')).isEqualTo('\u0120');
    assertThat(Gpt2Tokenizer.byteToChar('A')).isEqualTo('A');
    assertThat(Gpt2Tokenizer.byteToChar(0)).isEqualTo('\u0100');
    assertThat(Gpt2Tokenizer.byteToChar(0xad)).isEqualTo('\u0143');
  }

  @Test
  void tableRecordsItsTokenizer() {
    TableManifest gpt2Table = manifest(50_257).toBuilder().property(Tokenizer.PROPERTY, "gpt2").build();
    assertThat(Tokenizer.forTable(gpt2Table, null).name()).isEqualTo("gpt2");
    TableManifest wrongSize = manifest(10).toBuilder().property(Tokenizer.PROPERTY, "gpt2").build();
    assertThatThrownBy(() -> Tokenizer.forTable(wrongSize, null))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot use tokenizer gpt2 for a table of 10 rows (gpt2 has 50257 ids)");
    assertThatThrownBy(() -> Tokenizer.forTable(manifest(10), null))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot tokenize text for this table: it records no tokenizer and has no vocabulary");
    assertThatThrownBy(() -> Tokenizer.of("bert"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot use tokenizer 'bert' (known: gpt2)");
  }

  @Test
  void tableWithoutTokenizerSplitsWordsOfItsVocabulary() {
    Vocabulary v = Vocabulary.of(List.of("king", "queen", "man"), null);
    Tokenizer words = Tokenizer.forTable(manifest(3), v);
    assertThat(words.encode("  queen\tking  prince ")).containsExactly(1, 0, Tokenizer.UNKNOWN);
    assertThat(words.encode(" ")).isEmpty();
    assertThat(words.token(2)).isEqualTo("man");
    assertThat(Tokenizer.splitWords(" a  b\nc ")).containsExactly("a", "b", "c");
    assertThat(words.encodeKnown("man king")).containsExactly(2, 0);
    assertThatThrownBy(() -> words.encodeKnown("king prince"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot tokenize 'king prince': word 'prince' is not in the vocabulary of 3 tokens");
    assertThatThrownBy(() -> words.encodeKnown("  "))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot tokenize '  ': no tokens");
    assertThatThrownBy(() -> gpt2.encodeKnown(""))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("Cannot tokenize '': no tokens");
  }

  private static TableManifest manifest(long rows) {
    Partitioner p = Partitioner.modulo(rows, 1);
    return TableManifest.builder().rows(rows).dim(4).partitioner(Partitioner.MODULO).tableVersion(1)
        .addShard(new TableManifest.ShardEntry(0, "shard-00000-v000001.arrow", p.shardRows(0), p.minId(0), p.maxId(0), 0, 0))
        .build();
  }
}
