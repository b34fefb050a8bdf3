package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.util.List;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;

/**
 * The training task's fault seam: runs without the hidden test options get the no-op {@link
 * TaskFaults#NONE} (also after the trip to the executors); {@code --fail-at-task} and {@code
 * --lose-shards-at-task} get an {@link InjectedFaults} that fires where they say, and only there.
 */
class TaskFaultsTest {
  private static TrainOptions options(String... more) {
    List<String> args = new java.util.ArrayList<>(List.of("--input", "in.txt", "--output", "out"));
    args.addAll(List.of(more));
    return TrainOptions.parse(new SparkConf(false), args.toArray(String[]::new));
  }

  @SuppressWarnings("unchecked")
  private static <T> T roundTrip(T o) throws Exception {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
      out.writeObject(o);
    }
    try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
      return (T) in.readObject();
    }
  }

  @Test
  void productionRunsGetTheNoOpWhichStaysTheNoOpOnTheExecutors() throws Exception {
    TaskFaults faults = TaskFaults.of(options("--epochs", "3"), 4);
    assertThat(faults).isSameAs(TaskFaults.NONE);
    assertThat(faults.afterRecovery()).isSameAs(TaskFaults.NONE);
    assertThat((TaskFaults) roundTrip(faults)).isSameAs(TaskFaults.NONE);
    Hosting.Opener opener = new ShardHosting.RemoteOpener("test-faults-none", new byte[0], new byte[0], List.of(), List.of(), true, "s");
    for (int epoch = 0; epoch < 3; epoch++) {
      for (int p = 0; p < 4; p++) {
        int e = epoch;
        int q = p;
        assertThatCode(() -> faults.afterBatch(e, q, 0, opener)).doesNotThrowAnyException();
      }
    }
  }

  @Test
  void failAtTaskFailsTheFirstAttemptOfThatTaskOnly() throws Exception {
    TaskFaults faults = roundTrip(TaskFaults.of(options("--fail-at-task", "5"), 4));
    assertThat(faults).isInstanceOf(InjectedFaults.class);
    Hosting.Opener opener = new ShardHosting.RemoteOpener("test-faults-fail", new byte[0], new byte[0], List.of(), List.of(), true, "s");
    // ordinal 5 of 4 partitions per epoch: epoch 2 (index 1), partition 1
    assertThatThrownBy(() -> faults.afterBatch(1, 1, 0, opener))
        .isInstanceOf(IllegalStateException.class)
        .hasMessage("Cannot continue training: injected failure in epoch 2, partition 1 (--fail-at-task)");
    assertThatCode(() -> faults.afterBatch(1, 1, 1, opener)).as("the retry").doesNotThrowAnyException();
    assertThatCode(() -> faults.afterBatch(1, 0, 0, opener)).doesNotThrowAnyException();
    assertThatCode(() -> faults.afterBatch(0, 1, 0, opener)).doesNotThrowAnyException();
    assertThatThrownBy(() -> faults.afterRecovery().afterBatch(1, 1, 0, opener)).hasMessageContaining("(--fail-at-task)");
  }

  @Test
  void loseShardsAtTaskReleasesItsJvmsHostingOnceAndNotAfterTheRecovery() throws Exception {
    TaskFaults faults = TaskFaults.of(options("--lose-shards-at-task", "2"), 4);
    assertThat(faults).isInstanceOf(InjectedFaults.class);
    String key = "test-faults-lose";
    ExecutorHost.tables(key, () -> new TrainTask.Tables(Unigrams.Spec.ofSortedCounts(new long[] {2, 1}, 0, null), -1));
    Hosting.Opener opener = new ShardHosting.RemoteOpener(key, new byte[0], new byte[0], List.of(), List.of(), true, "s");
    assertThatCode(() -> faults.afterBatch(0, 1, 0, opener)).doesNotThrowAnyException();
    assertThat(ExecutorHost.keys()).contains(key);
    assertThatThrownBy(() -> faults.afterBatch(0, 2, 0, opener))
        .isInstanceOf(IllegalStateException.class)
        .hasMessage("Cannot continue training: injected loss of the shard servers of this JVM in epoch 1, partition 2"
            + " (--lose-shards-at-task)");
    assertThat(ExecutorHost.keys()).doesNotContain(key);
    assertThatCode(() -> faults.afterRecovery().afterBatch(0, 2, 0, opener)).doesNotThrowAnyException();
  }
}
