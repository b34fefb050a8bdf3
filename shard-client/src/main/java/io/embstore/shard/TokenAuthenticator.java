package io.embstore.shard;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import org.apache.arrow.flight.CallHeaders;
import org.apache.arrow.flight.auth2.CallHeaderAuthenticator;

/**
 * Static bearer tokens: a read token (lookups, nearest, control actions) and a write token
 * (everything, including updates and snapshots). Tokens are compared in constant time and never
 * logged or echoed in error messages.
 */
final class TokenAuthenticator implements CallHeaderAuthenticator {
  static final String READ = "read";
  static final String WRITE = "write";

  private final byte[] readToken;
  private final byte[] writeToken;

  TokenAuthenticator(String readToken, String writeToken) {
    this.readToken = readToken == null ? null : readToken.getBytes(StandardCharsets.UTF_8);
    this.writeToken = writeToken == null ? null : writeToken.getBytes(StandardCharsets.UTF_8);
  }

  @Override
  public AuthResult authenticate(CallHeaders incoming) {
    String header = incoming.get("authorization");
    if (header == null) {
      header = incoming.get("Authorization");
    }
    if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
      throw ShardErrors.unauthenticated("Cannot authenticate: no bearer token (send header 'authorization: Bearer <token>')");
    }
    byte[] token = header.substring(7).trim().getBytes(StandardCharsets.UTF_8);
    if (writeToken != null && MessageDigest.isEqual(token, writeToken)) {
      return () -> WRITE;
    }
    if (readToken != null && MessageDigest.isEqual(token, readToken)) {
      return () -> READ;
    }
    throw ShardErrors.unauthenticated("Cannot authenticate: the bearer token is not valid for this server");
  }
}
