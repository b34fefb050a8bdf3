package io.embstore.bench.train;

import io.embstore.spark.TrainJob;
import io.embstore.spark.TrainOptions;
import java.util.Map;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Property;
import org.apache.spark.sql.SparkSession;

/**
 * The training step of {@link ScaleBench} in a JVM of its own (its memory is the job's alone, and
 * its class path may be another build's, for before/after runs): {@code TrainJob.run} on a local[2]
 * session with the given TrainJob options, polled like the in-process run. Prints, on stdout, one
 * {@code MEM path allocated peak} line per hosting allocator seen and one {@code RESULT key=value
 * ...} line. Uses only API that every build of the job has (TrainOptions.parse, TrainJob.run,
 * TrainJob.hostedMemory).
 */
public final class ScaleTrain {
  private ScaleTrain() {}

  public static void main(String[] args) throws Exception {
    SparkSession spark = ScaleBench.session("embstore scale train");
    // When the corpus (vocabulary, sampler, encoded sentences) is ready: TrainJob's "corpus: ..." line.
    long[] corpusReady = {0};
    long start = System.nanoTime();
    org.apache.logging.log4j.core.Logger jobLog =
        (org.apache.logging.log4j.core.Logger) org.apache.logging.log4j.LogManager.getLogger("io.embstore.spark.TrainJob");
    AbstractAppender appender = new AbstractAppender("scale-train", null, null, true, Property.EMPTY_ARRAY) {
      @Override
      public void append(LogEvent event) {
        if (corpusReady[0] == 0 && event.getMessage().getFormattedMessage().startsWith("corpus: ")) {
          corpusReady[0] = System.nanoTime();
        }
      }
    };
    appender.start();
    jobLog.addAppender(appender);
    ScaleBench.Probe probe = new ScaleBench.Probe();
    probe.start();
    TrainJob.Result r;
    try {
      r = TrainJob.run(spark, TrainOptions.parse(new org.apache.spark.SparkConf(false), args));
    } finally {
      probe.stop = true;
      probe.join();
      jobLog.removeAppender(appender);
    }
    long root = TrainJob.hostedMemory().entrySet().stream().filter(e -> e.getKey().lastIndexOf('/') == 0)
        .mapToLong(e -> e.getValue()[1]).max().orElse(0);
    for (Map.Entry<String, long[]> e : probe.seen.entrySet()) {
      System.out.println("MEM " + e.getKey() + " " + e.getValue()[0] + " " + e.getValue()[1]);
    }
    long[] rss = ScaleBench.rss();
    System.out.println("RESULT seconds=" + r.seconds() + " tokensPerEpoch=" + r.tokensPerEpoch()
        + " corpusSeconds=" + (corpusReady[0] == 0 ? -1 : (corpusReady[0] - start) / 1e9)
        + " heapPeak=" + probe.maxHeapUsed + " heapAfterGcPeak=" + probe.maxHeapAfterGc + " rssPeak=" + rss[1]
        + " rootPeak=" + root + " maxHeap=" + Runtime.getRuntime().maxMemory() + " summary=" + r.summary());
    System.out.flush();
    spark.stop();
  }
}
