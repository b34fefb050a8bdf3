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
  public long[] encodeKnown(String text) {
    long[] ids = encode(text);
    for (int i = 0; i < ids.length; i++) {
      if (ids[i] == UNKNOWN) {
        throw new IllegalArgumentException(
            "Cannot tokenize '" + text + "': word '" + Tokenizer.splitWords(text)[i] + "' is not in the vocabulary of " + vocabulary.size() + " tokens");
      }
    }
    return Tokenizer.super.encodeKnown(text);
  }

  @Override
  public String token(long id) {
    return vocabulary.token(id);
  }
}
