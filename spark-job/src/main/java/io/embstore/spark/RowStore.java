package io.embstore.spark;

import java.io.IOException;

/**
 * Where the rows of one matrix live during training: the trainer pulls the rows a mini-batch needs
 * and pushes one aggregated sparse update per touched row. The Spark job uses shard servers through
 * the routing client ({@link RemoteRowStore}); tests and single-JVM runs use {@link InMemoryRowStore}.
 * Ids in a call are distinct (the trainer deduplicates).
 */
interface RowStore extends AutoCloseable {
  /** C. */
  int dim();

  /** Row i of {@code out} (at {@code i*C}) receives the row of {@code ids[i]}, for i &lt; {@code n}. */
  void pull(long[] ids, int n, float[] out) throws IOException;

  /**
   * Applies the gradient rows {@code grads[i*C..]} of {@code ids[i]} (i &lt; {@code n}) with the
   * store's optimizer and learning rate {@code lr} (SGD: {@code w -= lr * g}).
   */
  void push(long[] ids, int n, float[] grads, float lr) throws IOException;

  /**
   * True when every call completes on the caller's thread before it returns (rows reached in
   * process: nothing travels, so there is nothing for a prefetch to overlap). The default, false,
   * makes no such promise.
   */
  default boolean inProcess() {
    return false;
  }

  /** {@link #pull} that may run in the background; the default runs it now. */
  default java.util.concurrent.CompletableFuture<Void> pullAsync(long[] ids, int n, float[] out) {
    try {
      pull(ids, n, out);
      return java.util.concurrent.CompletableFuture.completedFuture(null);
    } catch (IOException | RuntimeException e) {
      return java.util.concurrent.CompletableFuture.failedFuture(e);
    }
  }

  /** {@link #push} that may run in the background; the default runs it now. */
  default java.util.concurrent.CompletableFuture<Void> pushAsync(long[] ids, int n, float[] grads, float lr) {
    try {
      push(ids, n, grads, lr);
      return java.util.concurrent.CompletableFuture.completedFuture(null);
    } catch (IOException | RuntimeException e) {
      return java.util.concurrent.CompletableFuture.failedFuture(e);
    }
  }

  /** Waits for {@code a} and {@code b}, rethrowing the first failure as an IOException. */
  static void await(java.util.concurrent.CompletableFuture<Void> a, java.util.concurrent.CompletableFuture<Void> b)
      throws IOException {
    try {
      java.util.concurrent.CompletableFuture.allOf(a, b).join();
    } catch (java.util.concurrent.CompletionException e) {
      Throwable c = e.getCause();
      if (c instanceof IOException) {
        throw (IOException) c;
      }
      if (c instanceof RuntimeException) {
        throw (RuntimeException) c;
      }
      throw new IOException(c);
    }
  }

  @Override
  default void close() throws IOException {}
}
