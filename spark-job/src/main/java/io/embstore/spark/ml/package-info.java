/**
 * embstore in Spark ML pipelines (design, parameters and the hosting's life cycle: {@code
 * docs/training.md}, "Spark ML").
 *
 * <ul>
 *   <li>{@link io.embstore.spark.ml.SkipGram}: an {@code Estimator} with MLlib {@code Word2Vec}'s
 *       parameters (and embstore's); {@code fit} runs the training job.
 *   <li>{@link io.embstore.spark.ml.EmbeddingModel}: its model, what {@code Word2VecModel} offers
 *       (mean vectors, synonyms, vectors), saved as a pointer to its table or a copy.
 *   <li>{@link io.embstore.spark.ml.EmbeddingLookup}: a {@code Transformer} from ids, tokens or text
 *       to rows, against running shard servers or a table hosted in the executors.
 *   <li>Inside: {@code LookupPartition} (one partition's batched lookups on internal rows), {@code
 *       RowSource} (where a task finds rows, tokens and the tokenizer), {@code Hostings} (the
 *       driver's shared table hostings and their release), {@code Internal} (the one use of Spark's
 *       internal row API), {@code ModelStore} (saving and loading a model), {@code VectorRows}.
 * </ul>
 */
package io.embstore.spark.ml;
