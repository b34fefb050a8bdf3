package io.embstore.bench.lookup;

import io.embstore.bench.common.ChildProcess;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import io.embstore.shard.ShardServer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.apache.arrow.memory.RootAllocator;

/**
 * A server process of the lookup benchmark, so that the servers do not share a heap, GC or JIT with
 * the client. Modes: {@code raw ROW_BYTES} (the loopback ceiling), {@code grpc ROW_BYTES} (the gRPC ceiling, {@link
 * GrpcCeiling}) and {@code shard TABLE_DIR SHARD}
 * (a {@link ShardServer} hosting one shard, row-wise Adagrad). Once ready it prints {@code
 * endpoint URI}; then it answers stdin commands: {@code mem} prints {@code mem ALLOCATED PEAK RSS
 * HWM} (allocator bytes now and at peak, process RSS now and at peak); {@code quit} or end of input
 * stops it.
 */
public final class ServerMain {
  private ServerMain() {}

  public static void main(String[] args) throws Exception {
    try (RootAllocator root = new RootAllocator();
        AutoCloseable server = start(args, root)) {
      BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
      String line;
      while ((line = in.readLine()) != null && !line.equals("quit")) {
        if (line.equals("mem")) {
          long[] rss = ChildProcess.rss(ProcessHandle.current().pid());
          System.out.println(
              "mem " + root.getAllocatedMemory() + " " + root.getPeakMemoryAllocation() + " " + rss[0] + " " + rss[1]);
        } else {
          System.out.println("error unknown command: " + line);
        }
        System.out.flush();
      }
    }
  }

  private static AutoCloseable start(String[] args, RootAllocator root) throws Exception {
    switch (args[0]) {
      case "raw" -> {
        RawSocketServer s = new RawSocketServer(Integer.parseInt(args[1]), RawSocketServer.MAX_BATCH);
        System.out.println("endpoint tcp://127.0.0.1:" + s.port());
        System.out.flush();
        return s;
      }
      case "grpc" -> {
        GrpcCeiling.GrpcServer s = new GrpcCeiling.GrpcServer(Integer.parseInt(args[1]), RawSocketServer.MAX_BATCH);
        System.out.println("endpoint grpc+tcp://127.0.0.1:" + s.port());
        System.out.flush();
        return s;
      }
      case "shard" -> {
        ShardServer s = EmbstoreSystem.serverBuilder(Path.of(args[1]), Integer.parseInt(args[2])).allocator(root).start();
        System.out.println("endpoint " + s.endpoint());
        System.out.flush();
        return s;
      }
      default -> throw new IllegalArgumentException("Cannot start server: mode '" + args[0] + "' (known: raw, grpc, shard)");
    }
  }
}
