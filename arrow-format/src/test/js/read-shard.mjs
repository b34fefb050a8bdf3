// Reads one embstore shard file with the JavaScript Arrow implementation and prints
// {"metadata": {...}, "valueType": "...", "ids": [...], "embeddings": [[...], ...]} as JSON on stdout.
// Rows of every value type come out as numbers: float32 and float16 (Arrow's HalfFloat) as Arrow
// decodes them, bfloat16 (uint16 items tagged embstore.dtype=bfloat16) widened here: bits << 16;
// int8 (a FixedSizeBinary(C + 8) column tagged embstore.dtype=int8: C uint8 codes, float32 scale,
// float32 bias) decoded here as code * scale + bias in float32 (docs/format.md, "int8 rows").
// Usage: node read-shard.mjs SHARD_FILE
import { readFileSync } from 'node:fs';
import { tableFromIPC, Type, Precision } from 'apache-arrow';

const table = tableFromIPC(readFileSync(process.argv[2]));
const field = table.schema.fields.find((f) => f.name === 'embedding');
const int8 = field.metadata.get('embstore.dtype') === 'int8' && field.type.typeId === Type.FixedSizeBinary;
const item = int8 ? null : field.type.children[0].type;
let valueType;
if (int8) {
  valueType = 'int8';
} else if (field.metadata.get('embstore.dtype') === 'bfloat16' && item.typeId === Type.Int && item.bitWidth === 16 && !item.isSigned) {
  valueType = 'bfloat16';
} else if (item.typeId === Type.Float && item.precision === Precision.HALF) {
  valueType = 'float16';
} else if (item.typeId === Type.Float && item.precision === Precision.SINGLE) {
  valueType = 'float32';
} else {
  throw new Error(`embedding items of type ${item} are no embstore value type`);
}
function rowValues(row) {
  if (valueType === 'int8') {
    // row: a Uint8Array of C + 8 bytes. In doubles then rounded to float32: the same bits as
    // float32 arithmetic (a double holds the exact product, and one rounding of the sum suffices).
    const view = new DataView(row.buffer, row.byteOffset, row.byteLength);
    const dim = row.length - 8;
    const scale = view.getFloat32(dim, true);
    const bias = view.getFloat32(dim + 4, true);
    return Array.from(row.subarray(0, dim), (code) => Math.fround(Math.fround(code * scale) + bias));
  }
  if (valueType === 'bfloat16') {
    const bits = new Uint32Array(row.length);
    for (let k = 0; k < row.length; k++) bits[k] = row.get(k) << 16;
    return Array.from(new Float32Array(bits.buffer));
  }
  // float16: get(k) decodes the half float; float32 values as they are.
  return Array.from({ length: row.length }, (_, k) => row.get(k));
}
const ids = [];
const embeddings = [];
for (const batch of table.batches) {
  const id = batch.getChild('id');
  const emb = batch.getChild('embedding');
  const dim = valueType === 'int8' ? emb.type.byteWidth - 8 : emb.type.listSize;
  for (let i = 0; i < batch.numRows; i++) {
    ids.push(Number(id.get(i)));
    // A FixedSizeList row is a Vector of the item type; copy it into a plain array for JSON.
    embeddings.push(rowValues(emb.get(i)));
    if (embeddings[embeddings.length - 1].length !== dim) {
      throw new Error(`row ${i} has ${embeddings[embeddings.length - 1].length} values, expected ${dim}`);
    }
  }
}
const metadata = Object.fromEntries(table.schema.metadata);
process.stdout.write(JSON.stringify({ metadata, valueType, ids, embeddings }));
