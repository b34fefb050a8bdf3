// Reads one embstore shard file with the JavaScript Arrow implementation and prints
// {"metadata": {...}, "ids": [...], "embeddings": [[...], ...]} as JSON on stdout.
// Usage: node read-shard.mjs SHARD_FILE
import { readFileSync } from 'node:fs';
import { tableFromIPC } from 'apache-arrow';

const table = tableFromIPC(readFileSync(process.argv[2]));
const ids = [];
const embeddings = [];
for (const batch of table.batches) {
  const id = batch.getChild('id');
  const emb = batch.getChild('embedding');
  const dim = emb.type.listSize;
  for (let i = 0; i < batch.numRows; i++) {
    ids.push(Number(id.get(i)));
    // A FixedSizeList row is a Vector of float32; copy it into a plain array for JSON.
    embeddings.push(Array.from(emb.get(i).toArray()));
    if (embeddings[embeddings.length - 1].length !== dim) {
      throw new Error(`row ${i} has ${embeddings[embeddings.length - 1].length} values, expected ${dim}`);
    }
  }
}
const metadata = Object.fromEntries(table.schema.metadata);
process.stdout.write(JSON.stringify({ metadata, ids, embeddings }));
