package io.embstore.spark;

import java.io.Serializable;

/**
 * The training task's one seam for injected faults: after each mini-batch it has pushed, a task
 * calls {@link #afterBatch}. Production runs {@link #NONE}, which does nothing; the hidden test
 * options {@code --fail-at-task} and {@code --lose-shards-at-task} make {@link #of} construct an
 * {@link InjectedFaults} instead, which the tests (local mode and the standalone-cluster ITs) use to
 * fail a task or to stop the shard servers of its JVM at a chosen point.
 */
interface TaskFaults extends Serializable {
  /** No faults: what every run without the hidden test options uses. */
  TaskFaults NONE = new None();

  /**
   * After a mini-batch of partition {@code partition} of epoch {@code epoch} (0-based), in attempt
   * {@code attempt} of the task, whose stores came from {@code opener}. Throws to fail the task.
   */
  void afterBatch(int epoch, int partition, int attempt, Hosting.Opener opener);

  /** The faults of the tasks after the driver re-hosted the shards (a recovery). */
  default TaskFaults afterRecovery() {
    return this;
  }

  /** {@link #NONE}, or the faults the hidden test options ask for. */
  static TaskFaults of(TrainOptions o, int numPartitions) {
    if (o.failAtTask < 0 && o.loseShardsAtTask < 0) {
      return NONE;
    }
    return new InjectedFaults(o.failAtTask, o.loseShardsAtTask, numPartitions);
  }

  /** The no-op; a class of its own so that it deserializes to the one instance. */
  final class None implements TaskFaults {
    private static final long serialVersionUID = 1L;

    private None() {}

    @Override
    public void afterBatch(int epoch, int partition, int attempt, Hosting.Opener opener) {}

    private Object readResolve() {
      return NONE;
    }

    @Override
    public String toString() {
      return "TaskFaults.NONE";
    }
  }
}
