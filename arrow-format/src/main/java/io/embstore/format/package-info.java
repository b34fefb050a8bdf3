/**
 * The embstore table format: a V x C float32 matrix row-partitioned into P shards, stored as Arrow
 * IPC files plus a JSON manifest. {@link io.embstore.format.TableFormat} is the specification.
 *
 * <ul>
 *   <li>{@link io.embstore.format.Partitioner}: id to (shard, position), the one routing rule every
 *       module uses.
 *   <li>{@link io.embstore.format.TableManifest}: the manifest, its validation and JSON form.
 *   <li>{@link io.embstore.format.TableWriter} / {@link io.embstore.format.ShardWriter}: writing a
 *       table version, streaming, with an atomic manifest commit.
 *   <li>{@link io.embstore.format.Table} / {@link io.embstore.format.ShardReader}: opening,
 *       streaming reads, verification.
 *   <li>{@link io.embstore.format.Vocabulary}: the optional token list.
 *   <li>{@link io.embstore.format.Tokenizer}: text to ids ({@code gpt2}: GPT-2's byte-pair
 *       encoding), recorded by a table so that lookups by text need no flag.
 * </ul>
 *
 * <p>Sub-package {@code convert}: NumPy, word2vec, GloVe and safetensors import/export. The
 * commands over this API ({@code import}, {@code export}, {@code inspect}, {@code verify}, {@code
 * reshard}, {@code convert}) live in the deploy module ({@code io.embstore.cli}).
 */
package io.embstore.format;
