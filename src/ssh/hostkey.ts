// Verifies an SSH server's host key against pinned keys or a known_hosts file. There is no "trust on
// first use": an unknown or changed key is refused with the fingerprint the server presented, so the
// operator can compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { ErrorCode } from "../error-codes.ts";
import { StrongboxError } from "../errors.ts";

export interface HostKeyPin {
  /** Key type such as "ssh-ed25519"; unknown for a bare fingerprint. */
  type?: string;
  /** The public key blob (SSH wire format); unknown for a bare fingerprint. */
  blob?: Buffer;
  /** "SHA256:<base64 without padding>", as `ssh-keygen -l` prints it. */
  fingerprint: string;
}

export type HostKeyCheck = { ok: true } | { ok: false; reason: string };

/** The fingerprint format of `ssh-keygen -l` and of OpenSSH's "host key changed" warning. */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The key type written at the start of a public key blob (an SSH "string"). */
export function keyTypeOf(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const length = blob.readUInt32BE(0);
  if (length > 64 || blob.length < 4 + length) return undefined;
  return blob.subarray(4, 4 + length).toString("latin1");
}

function badPin(pin: string, why: string, code: ErrorCode): Error {
  return new StrongboxError(code, `invalid host key ${JSON.stringify(pin)}: ${why}`, {
    hint: 'use the server\'s public key line ("ssh-ed25519 AAAA…") or its fingerprint ("SHA256:…")',
  });
}

/** Parses "ssh-ed25519 AAAA… [comment]" or "SHA256:…"; a bad pin is an error with `code`. */
export function parseHostKeyPin(text: string, code: ErrorCode): HostKeyPin {
  const trimmed = text.trim();
  if (/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(trimmed)) {
    return { fingerprint: trimmed.replace(/=$/, "") };
  }
  if (/^(MD5:)?([0-9a-f]{2}:){15}[0-9a-f]{2}$/i.test(trimmed)) {
    throw badPin(trimmed, "MD5 fingerprints are too weak; give the SHA256 fingerprint", code);
  }
  const [type, base64] = trimmed.split(/\s+/);
  if (!type || !base64) throw badPin(trimmed, "expected a key type and a base64 key", code);
  const blob = Buffer.from(base64, "base64");
  if (blob.length === 0 || keyTypeOf(blob) !== type) {
    throw badPin(trimmed, `the base64 data is not a ${type} key`, code);
  }
  return { type, blob, fingerprint: fingerprintOf(blob) };
}

function wildcardToRegExp(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`, "i");
}

/** Whether a known_hosts host field (plain or hashed, with negations) names `name`. */
function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith("|1|")) {
    const [, , salt, hash] = field.split("|");
    if (!salt || !hash) return false;
    const expected = Buffer.from(hash, "base64");
    const actual = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest();
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
  let matched = false;
  for (const pattern of field.split(",")) {
    const negated = pattern.startsWith("!");
    if (wildcardToRegExp(negated ? pattern.slice(1) : pattern).test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** The entries of a known_hosts file for one host and port: accepted keys and revoked keys. */
export function parseKnownHosts(
  text: string,
  host: string,
  port: number,
): { pins: HostKeyPin[]; revoked: HostKeyPin[] } {
  const name = port === 22 ? host : `[${host}]:${port}`;
  const pins: HostKeyPin[] = [];
  const revoked: HostKeyPin[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0]?.startsWith("@") ? fields.shift() : undefined;
    // Host certificates are not supported: a CA line never vouches for a key here.
    if (marker === "@cert-authority") continue;
    const [hosts, type, base64] = fields;
    if (!hosts || !type || !base64 || !hostFieldMatches(hosts, name)) continue;
    let pin: HostKeyPin;
    try {
      pin = parseHostKeyPin(`${type} ${base64}`, "CONFIG_INVALID");
    } catch {
      continue; // a line for a key type we cannot parse: OpenSSH ignores it as well
    }
    (marker === "@revoked" ? revoked : pins).push(pin);
  }
  return { pins, revoked };
}

/** Host key algorithms to offer for pinned key types, so the server shows the key we know. */
export function hostKeyAlgorithms(pins: readonly HostKeyPin[]): string[] | undefined {
  if (pins.length === 0 || pins.some((p) => p.type === undefined)) return undefined;
  const algorithms = new Set<string>();
  for (const pin of pins) {
    if (pin.type === "ssh-rsa") {
      for (const a of ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]) algorithms.add(a);
    } else {
      algorithms.add(pin.type!);
    }
  }
  return [...algorithms];
}

/** Checks a presented key blob against the pins; a revoked key is refused even if also pinned. */
export function checkHostKey(
  blob: Buffer,
  pins: readonly HostKeyPin[],
  revoked: readonly HostKeyPin[] = [],
): HostKeyCheck {
  const fingerprint = fingerprintOf(blob);
  if (revoked.some((r) => r.fingerprint === fingerprint)) {
    return { ok: false, reason: "the key is marked @revoked in known_hosts" };
  }
  if (pins.length === 0) return { ok: false, reason: "no key is known for this host" };
  if (pins.some((p) => (p.blob ? p.blob.equals(blob) : p.fingerprint === fingerprint))) return { ok: true };
  return {
    ok: false,
    reason: `it matches none of the ${pins.length} known key(s) (${pins.map((p) => p.fingerprint).join(", ")})`,
  };
}
