/**
 * Shard servers and the routing client: the matrix's shards in off-heap Arrow memory, served over
 * Arrow Flight, and the client that sends every lookup, sparse update and search to the shard owning
 * each id. The wire protocol is {@code docs/protocol.md}.
 *
 * <p>Where each behaviour lives:
 *
 * <ul>
 *   <li>The wire: {@code Protocol} (op and action names, Arrow schemas of requests and replies),
 *       {@code Messages} (every JSON message both ways: the exchange command, the learning rate in
 *       an update's app metadata, the bodies and results of {@code health}, {@code describe},
 *       {@code stats}, {@code snapshot}), {@code Vectors} (sizing request and reply vectors), {@link
 *       io.embstore.shard.Optimizer} (the update arithmetic of SGD, Adagrad, row-wise Adagrad and
 *       lazy Adam, one final class each, also used by the training job's in-memory store).
 *   <li>The server: {@link io.embstore.shard.ShardServer} (builder, loading or initialising
 *       shards, limits, auth, TLS, {@code describe}, {@code stats}, snapshots, close), {@code
 *       ShardProducer} (the Flight handlers: decode a request, call the shard, encode the reply),
 *       {@code LookupService} and {@code UpdateService} (the plain gRPC methods of fast lookups and
 *       updates; their byte layouts in {@code LookupMethod} and {@code UpdateMethod}; their
 *       open streams and stop in {@code MethodService}),
 *       {@code HostedShard} (one shard's rows and optimizer state in memory, stripe locks,
 *       gathers, in-place updates, the scan of a search, chunked snapshot copies), {@code ShardLog}
 *       (a shard's write-ahead log: group commit, replay, snapshot cuts, truncation), {@code TopK},
 *       {@link io.embstore.shard.RowInitializer}, {@code TokenAuthenticator}, {@code RecentRates};
 *       {@link io.embstore.shard.ServerLauncher} (a server as the work of its JVM: ready line,
 *       serving until SIGTERM; {@code embstore serve} and the server processes of tests and
 *       benchmarks).
 *   <li>The client: {@link io.embstore.shard.EmbeddingClient} (the facade: builder, lookup,
 *       update, nearest, tokens), {@code RequestPlan} (dedup and routing of one call), {@code
 *       FanOut} (run the parts of a call, the one retry, error aggregation), {@code
 *       ShardTransport} with its two implementations {@code FlightTransport} (pooled pipelined
 *       streams per shard, {@code StreamPool}: the fast lookup and update methods' streams on {@code
 *       MethodStreams}, {@code LookupStreams} and {@code UpdateStreams} (answered by the server's
 *       {@code LookupService} and {@code UpdateService}), Flight update exchanges on {@code
 *       ExchangePool} when asked for or the server has no fast update method; micro-batched async
 *       lookups) and {@code
 *       InProcessTransport} (a {@code ShardServer} of the client's JVM, handed to the builder),
 *       {@code ShardEndpoint} (URI, channel, TLS, token), {@link io.embstore.shard.TableSnapshot}
 *       (a new table version written by the servers), {@link io.embstore.shard.ShardHealth} (the
 *       {@code health} action alone), {@link io.embstore.shard.ShardException} (a failed call
 *       naming shard and endpoint), {@link io.embstore.shard.Neighbor}.
 * </ul>
 *
 * <p>The client reaches the server's code only through {@code InProcessTransport}. The {@code
 * serve}, {@code lookup}, {@code nearest} and {@code health} commands live in the deploy module
 * ({@code io.embstore.cli}). Consistency, failures and limits: {@code docs/reliability.md}; figures: {@code bench/README.md}.
 */
package io.embstore.shard;
