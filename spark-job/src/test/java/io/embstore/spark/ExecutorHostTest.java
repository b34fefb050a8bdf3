package io.embstore.spark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * {@link ExecutorHost}: a hosting key's state is built once per JVM, kept apart from every other
 * key's, and gone after {@link ExecutorHost#release} (what happens when a job's hosting closes), so
 * jobs that follow each other in one JVM do not see each other's state.
 */
class ExecutorHostTest {
  private static final Unigrams.Spec SPEC = Unigrams.Spec.ofSortedCounts(new long[] {5, 3, 1}, 0, null);

  @Test
  void derivedTablesAreLoadedOncePerHostingAndKeptApartFromOtherHostings() throws Exception {
    AtomicInteger loads = new AtomicInteger();
    ExecutorHost.TablesLoader loader = () -> {
      loads.incrementAndGet();
      return new TrainTask.Tables(SPEC, -1);
    };
    try {
      TrainTask.Tables a = ExecutorHost.tables("test-job-a", loader);
      assertThat(ExecutorHost.tables("test-job-a", loader)).isSameAs(a);
      assertThat(loads).hasValue(1);
      TrainTask.Tables b = ExecutorHost.tables("test-job-b", loader);
      assertThat(b).isNotSameAs(a);
      assertThat(loads).hasValue(2);
      assertThat(ExecutorHost.keys()).contains("test-job-a", "test-job-b");
    } finally {
      ExecutorHost.release("test-job-a");
      ExecutorHost.release("test-job-b");
    }
    assertThat(ExecutorHost.keys()).doesNotContain("test-job-a", "test-job-b");
  }

  @Test
  void aReleasedHostingsStateIsGoneAndANewJobUnderAnotherKeyStartsFresh() throws Exception {
    InMemoryRowStore in = InMemoryRowStore.sgd(4, 2);
    InMemoryRowStore out = InMemoryRowStore.sgd(4, 2);
    ExecutorHost.addStores("test-job-c", in, out);
    TrainTask.Tables first = ExecutorHost.tables("test-job-c", () -> new TrainTask.Tables(SPEC, -1));
    assertThat(ExecutorHost.store("test-job-c", 0)).isSameAs(in);
    assertThat(ExecutorHost.store("test-job-c", 1)).isSameAs(out);

    ExecutorHost.release("test-job-c");
    assertThat(ExecutorHost.keys()).doesNotContain("test-job-c");
    assertThatThrownBy(() -> ExecutorHost.store("test-job-c", 0))
        .isInstanceOf(IllegalStateException.class)
        .hasMessage("Cannot open the in-memory matrices of run test-job-c: not in this JVM (memory hosting works in local mode only)");
    try {
      assertThat(ExecutorHost.tables("test-job-c", () -> new TrainTask.Tables(SPEC, -1))).isNotSameAs(first);
    } finally {
      ExecutorHost.release("test-job-c");
    }
    // Releasing a key this JVM never held (a release task on an executor that hosts nothing) is a no-op.
    ExecutorHost.release("test-job-never");
    assertThat(ExecutorHost.keys()).doesNotContain("test-job-c", "test-job-never");
  }
}
