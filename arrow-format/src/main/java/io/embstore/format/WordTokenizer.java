package io.embstore.format;

/** Whitespace-separated words, each looked up in a vocabulary as it is (no case folding). */
final class WordTokenizer implements Tokenizer {
  static final String NAME = "words";
  private final Vocabulary vocabulary;

  WordTokenizer(Vocabulary vocabulary) {
    this.vocabulary = vocabulary;
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public long vocabularySize() {
    return vocabulary.size();
  }

  @Override
  public Vocabulary vocabulary() {
    return null;
  }

  @Override
  public long[] encode(String text) {
    String[] words = Tokenizer.splitWords(text);
    long[] ids = new long[words.length];
    for (int i = 0; i < words.length; i++) {
      ids[i] = vocabulary.id(words[i]);
    }
    return ids;
  }

  @Override
  public String token(long id) {
    return vocabulary.token(id);
  }
}
