package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The CLI's one-line error: every cause's message once, without stack traces quoted in them. */
class OneLineTest {
  @Test
  void causesAreJoinedOnceEach() {
    Exception e = new IllegalStateException("Cannot open table /t", new java.io.IOException("disk full"));
    assertThat(Cli.oneLine(e)).isEqualTo("Cannot open table /t: disk full");
    Exception same = new RuntimeException("disk full", new java.io.IOException("disk full"));
    assertThat(Cli.oneLine(same)).isEqualTo("disk full");
    assertThat(Cli.oneLine(new NullPointerException())).isEqualTo("NullPointerException");
    // A wrapper that quoted the first line of its cause's long message: the cause is not repeated.
    String hadoop = "Call From vm/127.0.0.1 to localhost:1 failed on connection exception: java.net.ConnectException:"
        + " Connection refused; For more details see:  http://wiki.apache.org/hadoop/ConnectionRefused";
    Exception quoted = new java.io.IOException("Cannot reach hdfs://127.0.0.1:1/t: " + hadoop.substring(0, hadoop.indexOf(';')),
        new java.net.ConnectException(hadoop));
    assertThat(Cli.oneLine(quoted)).isEqualTo("Cannot reach hdfs://127.0.0.1:1/t: " + hadoop.substring(0, hadoop.indexOf(';')));
  }

  @Test
  void aQuotedStackTraceIsCutWhereItStarts() {
    // The shape of a Spark job aborted by a failed task (SparkException's message).
    String spark = "Job aborted due to stage failure: Task 0 in stage 6.0 failed 1 times, most recent failure: Lost task 0.0"
        + " in stage 6.0 (TID 12) (localhost executor driver): java.lang.IllegalStateException: Cannot continue training:"
        + " injected failure\n\tat io.embstore.spark.TrainJob$Task.train(TrainJob.java:457)\n\tat java.base/java.lang.Thread.run"
        + "(Thread.java:840)\n\nDriver stacktrace:\n\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages";
    assertThat(Cli.oneLine(new RuntimeException(spark))).isEqualTo("Job aborted due to stage failure: Task 0 in stage 6.0"
        + " failed 1 times, most recent failure: Lost task 0.0 in stage 6.0 (TID 12) (localhost executor driver):"
        + " java.lang.IllegalStateException: Cannot continue training: injected failure");
    assertThat(Cli.oneLine(new RuntimeException("two\nlines"))).isEqualTo("two lines");
  }
}
