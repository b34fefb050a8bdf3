package io.embstore.spark.ml;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.embstore.format.Table;
import io.embstore.format.TableManifest;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.nio.file.Paths;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.FileUtil;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.ml.util.DefaultParamsWriter;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.ml.util.MLWriter;

/**
 * How an {@link EmbeddingModel} is saved: Spark ML's metadata (class, uid, params) and {@code
 * data/table.json}, which names the table: {@code {"table": DIR, "copied": false, "tableVersion":
 * N, "rows": V, "dim": C}} for a pointer, or {@code "table": "table", "copied": true} for a copy
 * of the table's files in the model directory ({@code copyTable}). Loading checks that the table
 * is still at the saved version (a pointer to a table that has moved on names other rows).
 */
final class ModelStore {
  private static final ObjectMapper JSON = new ObjectMapper();
  static final String DATA = "data/table.json";
  static final String COPY = "table";

  private ModelStore() {}

  static final class Writer extends MLWriter {
    private final EmbeddingModel model;

    Writer(EmbeddingModel model) {
      this.model = model;
    }

    @Override
    public void saveImpl(String path) {
      try {
        DefaultParamsWriter.saveMetadata(model, path, sparkSession());
        Configuration conf = sc().hadoopConfiguration();
        org.apache.hadoop.fs.Path dir = new org.apache.hadoop.fs.Path(path);
        FileSystem fs = dir.getFileSystem(conf);
        TableManifest m = model.manifest();
        ObjectNode data = JSON.createObjectNode();
        if (model.getCopyTable()) {
          Path table = model.table();
          FileUtil.copy(FileSystem.getLocal(conf), new org.apache.hadoop.fs.Path(table.toUri()), fs, new org.apache.hadoop.fs.Path(dir, COPY), false, conf);
          data.put("table", COPY).put("copied", true);
        } else {
          data.put("table", model.table().toString()).put("copied", false);
        }
        data.put("tableVersion", m.tableVersion()).put("rows", m.rows()).put("dim", m.dim());
        try (OutputStream out = fs.create(new org.apache.hadoop.fs.Path(dir, DATA), false)) {
          out.write(JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(data));
        }
      } catch (IOException e) {
        throw new UncheckedIOException("Cannot save EmbeddingModel " + model.uid() + " to " + path + ": " + e.getMessage(), e);
      }
    }
  }

  static final class Reader extends MLReader<EmbeddingModel> {
    @Override
    public EmbeddingModel load(String path) {
      DefaultParamsReader.Metadata metadata = DefaultParamsReader.loadMetadata(path, sparkSession(), EmbeddingModel.class.getName());
      EmbeddingModel model = new EmbeddingModel(metadata.uid());
      metadata.getAndSetParams(model, scala.Option.empty());
      try {
        org.apache.hadoop.fs.Path dir = new org.apache.hadoop.fs.Path(path);
        FileSystem fs = dir.getFileSystem(sc().hadoopConfiguration());
        JsonNode data;
        try (InputStream in = fs.open(new org.apache.hadoop.fs.Path(dir, DATA))) {
          data = JSON.readTree(in);
        }
        Path table;
        if (data.path("copied").asBoolean()) {
          org.apache.hadoop.fs.Path copy = fs.makeQualified(new org.apache.hadoop.fs.Path(dir, COPY));
          if (!"file".equals(copy.toUri().getScheme())) {
            throw new IllegalArgumentException("Cannot load EmbeddingModel from " + path + ": its table copy at " + copy + " is not on a local file system");
          }
          table = Paths.get(copy.toUri());
        } else {
          table = Paths.get(data.path("table").asText());
        }
        TableManifest m = Table.open(table).manifest();
        long saved = data.path("tableVersion").asLong();
        if (m.tableVersion() != saved) {
          throw new IllegalArgumentException("Cannot load EmbeddingModel from " + path + ": the table " + table + " is at version "
              + m.tableVersion() + ", the model was saved with version " + saved + " (save the model again, or with copyTable)");
        }
        model.setTablePath(table.toString());
        return model;
      } catch (IOException e) {
        throw new UncheckedIOException("Cannot load EmbeddingModel from " + path + ": " + e.getMessage(), e);
      }
    }
  }
}
