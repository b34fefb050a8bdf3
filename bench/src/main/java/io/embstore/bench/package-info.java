/**
 * Benchmarks and whole-system comparisons. Each harness is a {@code main} class run with {@code
 * bench/run <Class> [args]}; it prints its figures next to a baseline measured in the same run and
 * the ratio between them. Results and the method are in {@code bench/README.md}. One JMH
 * micro-benchmark, {@code io.embstore.shard.ShardWorkBench}, sits in the shard server's package to
 * reach its package-private shard; run it with {@code bench/run org.openjdk.jmh.Main ShardWorkBench}.
 */
package io.embstore.bench;
