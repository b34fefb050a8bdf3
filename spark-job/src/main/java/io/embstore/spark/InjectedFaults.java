package io.embstore.spark;

/**
 * The faults of the hidden test options, by run ordinal {@code epoch * partitions + partition} of a
 * training task (constructed by {@link TaskFaults#of} only when one of them is set):
 *
 * <ul>
 *   <li>{@code --fail-at-task N}: the first attempt of task N throws after its first mini-batch (a
 *       retry succeeds; {@code TaskRetryTest}, and a failed job to resume from).
 *   <li>{@code --lose-shards-at-task N}: task N releases its JVM's entry of the hosting (stopping
 *       the shard servers there, as when an executor dies with them) and throws; once per job: the
 *       hosting that a recovery starts is not lost again ({@link #afterRecovery}).
 * </ul>
 */
final class InjectedFaults implements TaskFaults {
  private static final long serialVersionUID = 1L;
  private final long failAt;
  private final long loseShardsAt;
  private final int numPartitions;

  InjectedFaults(long failAt, long loseShardsAt, int numPartitions) {
    this.failAt = failAt;
    this.loseShardsAt = loseShardsAt;
    this.numPartitions = numPartitions;
  }

  @Override
  public void afterBatch(int epoch, int partition, int attempt, Hosting.Opener opener) {
    long ordinal = (long) epoch * numPartitions + partition;
    if (ordinal == loseShardsAt && opener instanceof ShardHosting.RemoteOpener) {
      ExecutorHost.release(opener.key());
      throw new IllegalStateException("Cannot continue training: injected loss of the shard servers of this JVM in epoch "
          + (epoch + 1) + ", partition " + partition + " (--lose-shards-at-task)");
    }
    if (ordinal == failAt && attempt == 0) {
      throw new IllegalStateException(
          "Cannot continue training: injected failure in epoch " + (epoch + 1) + ", partition " + partition + " (--fail-at-task)");
    }
  }

  @Override
  public TaskFaults afterRecovery() {
    return loseShardsAt < 0 ? this : new InjectedFaults(failAt, -1, numPartitions);
  }

  @Override
  public String toString() {
    return "InjectedFaults[fail at " + failAt + ", lose shards at " + loseShardsAt + " of " + numPartitions + " partitions]";
  }
}
