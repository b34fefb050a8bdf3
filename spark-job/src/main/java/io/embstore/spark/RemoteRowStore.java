package io.embstore.spark;

import io.embstore.shard.EmbeddingClient;
import java.io.IOException;
import java.util.Arrays;

/** A matrix served by shard servers: pulls are lookups, pushes are sparse updates. */
final class RemoteRowStore implements RowStore {
  private final EmbeddingClient client;
  private final boolean inProcess;

  RemoteRowStore(EmbeddingClient client) {
    this.client = client;
    this.inProcess = client.inProcessShards().length == client.manifest().numShards();
  }

  /** Every shard of the matrix is hosted by this JVM's servers: calls run on the caller's thread. */
  @Override
  public boolean inProcess() {
    return inProcess;
  }

  @Override
  public int dim() {
    return client.dim();
  }

  @Override
  public void pull(long[] ids, int n, float[] out) throws IOException {
    client.lookup(ids.length == n ? ids : Arrays.copyOf(ids, n), out);
  }

  // The trainer's arrays are larger than the batch: the client takes the count, nothing is copied.
  @Override
  public java.util.concurrent.CompletableFuture<Void> pullAsync(long[] ids, int n, float[] out) {
    return client.lookupAsync(ids, n, out);
  }

  @Override
  public java.util.concurrent.CompletableFuture<Void> pushAsync(long[] ids, int n, float[] grads, float lr) {
    return client.updateAsync(ids, n, grads, lr);
  }

  @Override
  public void push(long[] ids, int n, float[] grads, float lr) throws IOException {
    int len = n * client.dim();
    client.update(ids.length == n ? ids : Arrays.copyOf(ids, n), grads.length == len ? grads : Arrays.copyOf(grads, len), lr);
  }
}
