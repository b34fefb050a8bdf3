package io.embstore.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.embstore.format.Matrices;
import io.embstore.format.TestMatrices;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Every malformed safetensors header and every tensor that cannot become a table: {@code import}
 * exits 1 with one line naming the value and the limit and leaves no output directory; {@code
 * --list} rejects the same headers.
 */
class SafetensorsRejectsBadInputTest {
  @TempDir Path tmp;

  private Path out() {
    return tmp.resolve("table");
  }

  /** Imports {@code file} (extra options appended), expects failure and returns the one error line. */
  private String rejected(Path file, String... extra) {
    List<String> args = new ArrayList<>(List.of("--from", "safetensors", "--input", file.toString(), "--shards", "2", "--output", out().toString()));
    args.addAll(Arrays.asList(extra));
    CliRun r = CliRun.importing(args.toArray(new String[0]));
    assertThat(r.exit()).as(r.err()).isEqualTo(Cli.EXIT_FAILURE);
    List<String> lines = r.err().lines().filter(l -> !l.startsWith("embstore import: progress ")).toList();
    assertThat(lines).hasSize(1);
    assertThat(lines.get(0)).startsWith("embstore import: Cannot import " + file + ": ");
    assertThat(out()).doesNotExist();
    return lines.get(0);
  }

  /** {@code --list} of a malformed file fails with the same reason. */
  private String listRejected(Path file) {
    CliRun r = CliRun.importing("--from", "safetensors", "--input", file.toString(), "--list");
    assertThat(r.exit()).as(r.err()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(r.err().lines().toList()).hasSize(1);
    assertThat(r.out()).isEmpty();
    return r.err().strip();
  }

  private Path file(String json, int dataBytes) throws IOException {
    return Matrices.safetensors(tmp.resolve("m.safetensors"), json, new byte[dataBytes]);
  }

  private static String f32(String name, String shape, long begin, long end) {
    return "\"" + name + "\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[" + begin + "," + end + "]}";
  }

  @Test
  void fileShorterThanTheLengthField() throws IOException {
    Path f = Files.write(tmp.resolve("m.safetensors"), new byte[] {1, 2, 3});
    assertThat(rejected(f)).endsWith("not a safetensors file (3 bytes, the header length alone takes 8)");
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "0| header length 0 bytes (must be in [2, 100000000]; not a safetensors file?)",
        "100000001| header length 100000001 bytes (must be in [2, 100000000]; not a safetensors file?)",
        "-1| header length 18446744073709551615 bytes (must be in [2, 100000000]; not a safetensors file?)"
      })
  void headerLengthOutsideTheLimits(long declared, String message) throws IOException {
    Path f = Matrices.safetensors(tmp.resolve("m.safetensors"), declared, "{}      ".getBytes(StandardCharsets.US_ASCII), new byte[0]);
    assertThat(rejected(f)).endsWith(message.strip());
    assertThat(listRejected(f)).endsWith(message.strip());
  }

  @Test
  void headerLengthBeyondTheFile() throws IOException {
    Path f = Matrices.safetensors(tmp.resolve("m.safetensors"), 64, "{}      ".getBytes(StandardCharsets.US_ASCII), new byte[0]);
    assertThat(rejected(f)).endsWith("header length 64 bytes, but the file has only 8 bytes after the length field");
  }

  @Test
  void headerThatIsNotAJsonObject() throws IOException {
    assertThat(rejected(file("[1, 2]", 0))).endsWith("the header does not start with '{' (not a safetensors file?)");
    assertThat(rejected(file("{\"a\": ", 0))).contains("the header is not valid JSON (");
    assertThat(rejected(file("{} {}", 0))).contains("the header is not valid JSON (");
  }

  @Test
  void headerThatIsNotUtf8() throws IOException {
    byte[] h = "{\"\u00e9\":1}   ".getBytes(StandardCharsets.ISO_8859_1);
    Path f = Matrices.safetensors(tmp.resolve("m.safetensors"), h.length, h, new byte[0]);
    assertThat(rejected(f)).endsWith("the header is not valid UTF-8 (at header byte 2)");
  }

  @Test
  void duplicateTensorName() throws IOException {
    Path f = file("{" + f32("a", "[1,2]", 0, 8) + "," + f32("a", "[1,2]", 8, 16) + "}", 16);
    assertThat(rejected(f, "--tensor", "a")).contains("the header is not valid JSON (Duplicate field 'a')");
  }

  @Test
  void unknownDtype() throws IOException {
    Path f = file("{\"w\":{\"dtype\":\"F17\",\"shape\":[1,2],\"data_offsets\":[0,8]}}", 8);
    assertThat(rejected(f)).contains("tensor 'w' has unknown dtype 'F17' (known: BOOL, U8, I8,");
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "{\"w\":[1]}| tensor 'w' is not an object with dtype, shape and data_offsets",
        "{\"w\":{\"shape\":[1,2],\"data_offsets\":[0,8]}}| tensor 'w' has no dtype string",
        "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}| tensor 'w' has no shape array of integers",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,2]}}| tensor 'w' has no data_offsets array of 2 integers",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0]}}| tensor 'w' has no data_offsets array of 2 integers (got [0])",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,-2],\"data_offsets\":[0,8]}}| tensor 'w' has shape [1,-2] (-2 is not a non-negative 64-bit integer)",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,2.5],\"data_offsets\":[0,8]}}| tensor 'w' has shape [1,2.5] (2.5 is not a non-negative 64-bit integer)",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,18446744073709551616]}}| (18446744073709551616 is not a non-negative 64-bit integer)",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[8,0]}}| tensor 'w' has data_offsets [8, 0] (end before begin)",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}| tensor 'w' has shape [4611686018427387904, 4] (too many elements)",
        "{\"__metadata__\":{\"a\":1},\"w\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}| __metadata__ value of 'a' is not a string"
      })
  void malformedTensorEntry(String json, String message) throws IOException {
    assertThat(rejected(file(json, 8))).endsWith(message.strip());
  }

  @Test
  void shapeThatDoesNotMatchTheOffsets() throws IOException {
    Path f = file("{" + f32("w", "[2,3]", 0, 20) + "}", 20);
    assertThat(rejected(f)).endsWith("tensor 'w': shape [2, 3] of F32 is 24 bytes, data_offsets [0, 20] hold 20");
  }

  @Test
  void overlappingTensors() throws IOException {
    Path f = file("{" + f32("a", "[2,3]", 0, 24) + "," + f32("b", "[2,3]", 16, 40) + "}", 40);
    assertThat(rejected(f, "--tensor", "a")).endsWith("tensors 'a' [0, 24) and 'b' [16, 40) overlap");
  }

  @Test
  void bytesThatBelongToNoTensor() throws IOException {
    Path f = file("{" + f32("a", "[2,3]", 0, 24) + "," + f32("b", "[2,3]", 32, 56) + "}", 56);
    assertThat(rejected(f, "--tensor", "a")).endsWith("data bytes [24, 32) belong to no tensor (before 'b'; the tensors must cover the data without gaps)");
  }

  @Test
  void offsetsBeyondTheFile() throws IOException {
    Path f = file("{" + f32("w", "[4,3]", 0, 48) + "}", 40);
    assertThat(rejected(f)).endsWith("tensor 'w' ends at data offset 48, beyond the file's 40 data bytes (truncated file?)");
    assertThat(listRejected(f)).endsWith("tensor 'w' ends at data offset 48, beyond the file's 40 data bytes (truncated file?)");
  }

  @Test
  void bytesAfterTheLastTensor() throws IOException {
    Path f = file("{" + f32("w", "[2,3]", 0, 24) + "}", 28);
    assertThat(rejected(f)).endsWith("4 bytes after the last tensor's data (the header describes 24 of 28 data bytes)");
  }

  @Test
  void truncatedCompressedFile() throws IOException {
    Path plain = file("{" + f32("w", "[100,3]", 0, 1200) + "}", 1200);
    byte[] all = Files.readAllBytes(plain);
    Path gz = tmp.resolve("m.safetensors.gz");
    try (OutputStream o = new GZIPOutputStream(Files.newOutputStream(gz))) {
      o.write(all, 0, all.length - 100);
    }
    assertThat(rejected(gz)).endsWith("truncated: tensor 'w' needs 1200 bytes from data offset 0, the file has 1100");
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "[6]| 24| tensor 'w' has shape [6] (rank 1; expected a 2-D matrix [V, C])",
        "[1,2,3]| 24| tensor 'w' has shape [1, 2, 3] (rank 3; expected a 2-D matrix [V, C])",
        "[0,3]| 0| tensor 'w' has shape [0, 3] with 0 rows (at least 1)",
        "[1,0]| 0| tensor 'w' has shape [1, 0] with dimension 0 (must be in [1, 65536])",
        "[1,65537]| 262148| tensor 'w' has shape [1, 65537] with dimension 65537 (must be in [1, 65536])"
      })
  void tensorThatIsNotAMatrix(String shape, int bytes, String message) throws IOException {
    assertThat(rejected(file("{" + f32("w", shape, 0, bytes) + "}", bytes))).endsWith(message.strip());
  }

  @ParameterizedTest
  @CsvSource({"I64, 8", "F64, 8", "U8, 1", "F8_E4M3, 1"})
  void dtypeThatIsNotAFloatOfSixteenOrThirtyTwoBits(String dtype, int size) throws IOException {
    Path f = file("{\"w\":{\"dtype\":\"" + dtype + "\",\"shape\":[2,2],\"data_offsets\":[0," + 4 * size + "]}}", 4 * size);
    assertThat(rejected(f)).endsWith("tensor 'w' has dtype " + dtype + " (embstore imports F32, and F16 and BF16 widened exactly to float32)");
  }

  @Test
  void tensorThatIsNotThere() throws IOException {
    Path f = file("{" + f32("wte.weight", "[2,3]", 0, 24) + "," + f32("wpe.weight", "[1,3]", 24, 36) + "}", 36);
    assertThat(rejected(f, "--tensor", "wte")).endsWith("no tensor 'wte' (tensors: wpe.weight, wte.weight; see --list)");
    assertThat(rejected(f)).endsWith("--tensor is required (the file has 2 tensors: wpe.weight, wte.weight; see --list)");
  }

  @Test
  void nonFiniteValuesAreRejectedWithTheirRowAndColumn() throws IOException {
    float[] m = TestMatrices.random(4, 3, 1);
    m[7] = Float.NaN;
    Path f = Matrices.safetensors(tmp.resolve("m.safetensors"), "{" + f32("w", "[4,3]", 0, 48) + "}", Matrices.le(m));
    assertThat(rejected(f)).endsWith("row 2, column 1 is NaN (non-finite values are rejected; pass --allow-non-finite to keep them)");
  }

  @Test
  void tokenizerWhoseSizeIsNotTheMatrixRows() throws IOException {
    Path f = Matrices.safetensors(tmp.resolve("m.safetensors"), "{" + f32("w", "[4,3]", 0, 48) + "}", Matrices.le(TestMatrices.random(4, 3, 1)));
    assertThat(rejected(f, "--tokenizer", "gpt2"))
        .endsWith("the matrix has 4 rows, --tokenizer gpt2 has 50257 token ids (V must be 50257)");
    CliRun r = CliRun.importing("--from", "safetensors", "--input", f.toString(), "--shards", "2", "--output", out().toString(), "--tokenizer", "bert");
    assertThat(r.exit()).isEqualTo(Cli.EXIT_FAILURE);
    assertThat(r.err().strip()).isEqualTo("embstore import: Cannot use tokenizer 'bert' (known: gpt2)");
    assertThat(out()).doesNotExist();
  }

  @Test
  void optionsThatDoNotApplyToTheFormat() throws IOException {
    Path npy = Matrices.npy(tmp.resolve("m.npy"), TestMatrices.random(2, 3, 1), 2, 3);
    CliRun tensor = CliRun.importing("--from", "npy", "--input", npy.toString(), "--shards", "1", "--output", out().toString(), "--tensor", "w");
    assertThat(tensor.err().strip()).isEqualTo("embstore import: Cannot import " + npy + ": --tensor applies to safetensors only");
    CliRun list = CliRun.importing("--from", "npy", "--input", npy.toString(), "--list");
    assertThat(list.err().strip()).isEqualTo("embstore import: Cannot list " + npy + ": --list applies to safetensors only");
    Path w2v = Matrices.text(tmp.resolve("m.txt"), "2 3", Matrices.tokens(2), TestMatrices.random(2, 3, 1), 3);
    CliRun tokenizer = CliRun.importing("--from", "word2vec", "--input", w2v.toString(), "--shards", "1", "--output", out().toString(), "--tokenizer", "gpt2");
    assertThat(tokenizer.err().strip())
        .isEqualTo("embstore import: Cannot import " + w2v + ": --tokenizer applies to npy and safetensors only (word2vec files carry their tokens)");
    for (CliRun r : List.of(tensor, list, tokenizer)) {
      assertThat(r.exit()).isEqualTo(Cli.EXIT_FAILURE);
    }
    CliRun missing = CliRun.importing("--from", "npy", "--input", npy.toString(), "--output", out().toString());
    assertThat(missing.exit()).isEqualTo(Cli.EXIT_USAGE);
    assertThat(missing.err()).startsWith("embstore import: Missing required option: '--shards=P'");
    assertThat(out()).doesNotExist();
  }
}
