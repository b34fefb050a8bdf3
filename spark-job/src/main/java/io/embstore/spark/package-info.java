/**
 * The Spark training job: skip-gram embeddings (word2vec's negative sampling, optionally its
 * hierarchical softmax) whose two matrices live as shards inside the executors and move only the
 * rows a mini-batch touches. Design, options and failure handling: {@code docs/training.md}.
 *
 * <ul>
 *   <li>Entry points: {@link io.embstore.spark.TrainJob} ({@code spark-submit --class}; the
 *       steps of a run in order; {@code TrainJob.runHere}: the job with its driver in this JVM,
 *       for {@code embstore train}, whose command lives in the deploy module), {@link
 *       io.embstore.spark.TrainOptions} (every option, one precedence order). This module keeps
 *       picocli for {@code TrainOptions} alone: {@code TrainJob.main} parses it under {@code
 *       spark-submit}, where no {@code embstore} command is on the class path (the shaded job jar
 *       carries picocli).
 *   <li>The driver's steps: {@code Resume} (where a run starts: a new output, or the checkpoint
 *       {@code --resume} continues, validated against the options), {@code RoundLoop} (rounds per
 *       Spark job, checkpoints, the summary; owns the hosting), {@code Recovery} (lost shard
 *       servers: every shard re-hosted from the last checkpoint); {@code TrainTask} trains one
 *       corpus partition in a task.
 *   <li>Executor-side state: {@code ExecutorHost}, the one per-JVM holder of each hosting's
 *       servers, routing clients, heap matrices and derived tables, with their life cycle in its
 *       javadoc; no other static state outlives a job.
 *   <li>Test faults: {@code TaskFaults}, the training task's one seam ({@code NONE} in
 *       production), and {@code InjectedFaults}, built only for the hidden options {@code
 *       --fail-at-task} and {@code --lose-shards-at-task}.
 *   <li>Data: {@code Corpus} (text, Parquet or ORC input; the vocabulary built with Spark; encoded,
 *       partitioned sentences), {@code SentenceOrder} (the seeded order a task reads its partition
 *       in), {@code HuffmanTree}, {@code AliasSampler} (negatives).
 *   <li>Where the rows live: {@code Hosting} with {@code ShardHosting} (shard servers of the
 *       shard-client module inside the executors, the product path) and {@code MemoryHosting}
 *       (heap arrays, local mode only: the benchmark's baseline); tasks reach them as {@code
 *       RowStore}s ({@code RemoteRowStore} over {@link io.embstore.shard.EmbeddingClient}, {@code
 *       InMemoryRowStore}).
 *   <li>The math: {@code SkipGram} (one task's mini-batches: plan, pull, train, push), {@code
 *       VectorKernels} (its SIMD inner loops), {@code LongIntMap} (a batch's id to slot map).
 *   <li>{@code Progress}: the progress lines and the final summary from Spark accumulators.
 *   <li>{@link io.embstore.spark.TableHosting}: one committed table's shards hosted in the
 *       executors the same way, for the Spark ML stages of {@code io.embstore.spark.ml}.
 * </ul>
 */
package io.embstore.spark;
