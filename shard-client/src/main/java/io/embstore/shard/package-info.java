/**
 * Shard servers and the routing client: the matrix's shards in off-heap Arrow memory, served over
 * Arrow Flight, and the client that sends every lookup and sparse update to the shard owning each
 * id. The wire protocol is {@code docs/protocol.md}; its constants live in {@link
 * io.embstore.shard.Protocol}.
 *
 * <ul>
 *   <li>Server side: {@link io.embstore.shard.ShardServer} (loads or initialises shards, limits,
 *       auth, TLS, {@code stats}, snapshots), {@link io.embstore.shard.HostedShard} (one shard's
 *       rows and optimizer state, gathers and in-place updates), {@code ShardProducer} (the Flight
 *       handlers: lookup, update, nearest exchanges and the actions), {@link
 *       io.embstore.shard.OptimizerSpec} (SGD, Adagrad, row-wise Adagrad, lazy Adam), {@link
 *       io.embstore.shard.RowInitializer}, {@code TokenAuthenticator}, {@code RecentRates}.
 *   <li>Client side: {@link io.embstore.shard.EmbeddingClient} (routing with the table's {@link
 *       io.embstore.format.Partitioner}, id deduplication, batching, async calls, deadlines,
 *       {@code nearest}, snapshots; optionally the shards of servers in its own JVM in process,
 *       without Flight: {@code Builder.inProcessShards}), {@code ExchangePool} (long-lived pipelined exchange streams),
 *       {@link io.embstore.shard.ShardHealth} (the {@code health} action alone), {@link
 *       io.embstore.shard.ShardException} (a failed call naming shard and endpoint).
 * </ul>
 *
 * <p>Sub-package {@code cli}: the {@code serve}, {@code lookup} and {@code nearest} commands.
 * Consistency, failures and limits: {@code docs/reliability.md}; figures: {@code bench/README.md}.
 */
package io.embstore.shard;
