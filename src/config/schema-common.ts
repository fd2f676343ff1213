// The schema's building blocks shared by its sections: sizes, durations, paths, SSH client fields.
import * as z from "zod";

// zod compiles a fast path for each object schema (new Function) at its first parse: worth it for
// many parses, but a command parses its configuration once. Measured: ~4 ms less per start.
// Here, so that it is set before any section of the schema is built.
z.config({ jitless: true });

export const sizeString = z
  .union([
    z.number().int().positive(),
    z.string().regex(/^\s*\d+(\.\d+)?\s*(B|K|KB|KiB|M|MB|MiB|G|GB|GiB|T|TB|TiB)?\s*$/i),
  ])
  .describe('a size: bytes, or a string such as "64MiB" or "1GB"');

export const duration = z
  .string()
  .regex(/^\s*\d+\s*(s|m|h|d|w)\s*$/, 'a duration such as "30s", "15m", "26h", "7d", "2w"')
  .describe('a duration such as "30m", "26h", "7d"');

export const filePath = z
  .string()
  .min(1)
  .describe("a file path; relative paths are relative to this config file");

/** How an SSH client authenticates and checks the server: for SFTP storage and for node agents. */
export const sshClientFields = {
  privateKey: filePath
    .optional()
    .describe(
      "OpenSSH private key for key authentication (mode 0600); without it, the keys of the ssh-agent",
    ),
  sshAgent: z
    .union([z.boolean(), filePath])
    .optional()
    .describe(
      "offer an ssh-agent's keys: true for $SSH_AUTH_SOCK, or the agent's socket path; the default without privateKey is $SSH_AUTH_SOCK",
    ),
  passphraseFile: filePath.optional().describe("file holding the private key's passphrase (mode 0600)"),
  hostKey: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
    .optional()
    .describe(
      'the server\'s host key, "ssh-ed25519 AAAA…", or its fingerprint "SHA256:…" (a list during a key rotation); this or knownHostsFile is required',
    ),
  knownHostsFile: filePath
    .optional()
    .describe("OpenSSH known_hosts file with the server's key (hashed entries and @revoked are honoured)"),
  connectTimeout: duration.default("20s").describe("give up on the SSH handshake after this long"),
};

/** A host key must come from somewhere: it is never accepted blindly. */
export function requireHostKey(
  s: { hostKey?: unknown; knownHostsFile?: unknown; privateKey?: unknown; sshAgent?: unknown },
  ctx: z.RefinementCtx,
): void {
  if (s.hostKey === undefined && s.knownHostsFile === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["hostKey"],
      message: "set hostKey or knownHostsFile: the server's host key is never accepted blindly",
    });
  }
  // A key must come from somewhere too: the file, or an ssh-agent (not turned off).
  if (s.privateKey === undefined && s.sshAgent === false) {
    ctx.addIssue({
      code: "custom",
      path: ["privateKey"],
      message: "sshAgent: false leaves no key: set privateKey, or let the ssh-agent's keys be used",
    });
  }
}
