package io.embstore.shard;

/** One result of a nearest-neighbour search: an id and its cosine similarity to the query. */
public record Neighbor(long id, float similarity) {}
