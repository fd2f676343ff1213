// A TCP proxy on a loopback port in front of a real server, to take the server away in the middle
// of a transfer: after `cutAfter` bytes from the client it drops every connection and stops
// listening (connections are refused, as when the server is down); `resume()` listens again.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface CutProxy {
  readonly port: number;
  /** Client bytes forwarded so far. */
  readonly forwarded: number;
  /** Resolves once the cut happened. */
  readonly cut: Promise<void>;
  resume(): Promise<void>;
  close(): Promise<void>;
}

export async function startCutProxy(
  target: { host: string; port: number },
  cutAfter: number,
): Promise<CutProxy> {
  const sockets = new Set<Socket>();
  let forwarded = 0;
  let cutDone = false;
  let signalCut: () => void = () => {};
  const cut = new Promise<void>((resolve) => {
    signalCut = resolve;
  });
  let server: Server;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((client) => {
        const upstream = connect(target.port, target.host);
        sockets.add(client).add(upstream);
        for (const s of [client, upstream]) {
          s.on("error", () => {});
          s.on("close", () => sockets.delete(s));
        }
        client.on("data", (chunk: Buffer) => {
          forwarded += chunk.length;
          if (!cutDone && forwarded >= cutAfter) {
            cutDone = true;
            server.close();
            for (const s of sockets) s.destroy();
            signalCut();
            return;
          }
          upstream.write(chunk);
        });
        upstream.pipe(client);
        client.on("close", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
      });
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        const address = server.address();
        if (typeof address === "object" && address) port = address.port;
        resolve();
      });
    });
  await listen();
  return {
    get port() {
      return port;
    },
    get forwarded() {
      return forwarded;
    },
    cut,
    resume: listen,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
