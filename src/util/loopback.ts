// Addresses only this machine can reach: a server bound to one needs no token.
const LOOPBACK_BINDS = new Set(["127.0.0.1", "::1", "localhost"]);

/** True for an address only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackBind(host: string): boolean {
  return LOOPBACK_BINDS.has(host) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
