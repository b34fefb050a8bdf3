/**
 * Benchmarks and whole-system comparisons. Each harness is a {@code main} class run with {@code
 * bench/run <Class> [args]}; it prints its figures next to a baseline measured in the same run and
 * the ratio between them. Results and the method are in {@code bench/README.md}. JMH
 * micro-benchmarks of package-private code live in their module's own test sources (for example
 * shard-client's {@code io.embstore.shard.ShardWorkBench}) and run with {@code bench/run jmh
 * <module> [JMH args]}.
 */
package io.embstore.bench;
