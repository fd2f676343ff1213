// Loading a logical backup into a running server through the mariadb client (credentials in an
// unnamed 0600 option file on fd 3, never argv).
import type { Credentials, NodeEndpoint, TlsOptions } from "../galera/connection.ts";
import { startSqlClient } from "../mariadb/client.ts";
import type { Manifest } from "../repository/manifest.ts";
import { decodeBackup } from "./extract.ts";
import type { PlaintextSource } from "./read.ts";

export async function loadLogical(o: {
  source: PlaintextSource;
  manifest: Manifest;
  node: NodeEndpoint;
  creds: Credentials;
  tls?: TlsOptions | undefined;
  signal?: AbortSignal | undefined;
}): Promise<{ rawBytes: number; seconds: number }> {
  const t0 = performance.now();
  const client = await startSqlClient({ node: o.node, creds: o.creds, tls: o.tls });
  let r: Awaited<ReturnType<typeof decodeBackup>>;
  try {
    r = await decodeBackup(o.source, o.manifest, {
      sink: "consumer",
      consumer: client.stdin,
      signal: o.signal,
    });
  } catch (e) {
    // EPIPE here means the client died first: its own message says why.
    client.kill();
    await client.done;
    throw e;
  }
  await client.done;
  return { rawBytes: r.rawBytes, seconds: (performance.now() - t0) / 1000 };
}
