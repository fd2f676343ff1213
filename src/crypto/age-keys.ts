// age keys and their text forms: X25519 identities (AGE-SECRET-KEY-1…) and recipients (age1…),
// parsed and generated.
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { StrongboxError } from "../errors.ts";
import { IDENTITY_HRP, RECIPIENT_HRP, rawPrivate, rawPublic, x25519PrivateKey } from "./age-format.ts";
import { bech32Decode, bech32Encode } from "./bech32.ts";

// ---------------------------------------------------------------------------------------------
// Keys and their text forms

/** Whom a file is encrypted to: an X25519 recipient (age1…), or a passphrase (scrypt). */
export type AgeRecipient =
  | { type: "x25519"; recipient: string }
  | { type: "scrypt"; passphrase: string; workFactor?: number };

/** What opens a file: an X25519 identity (AGE-SECRET-KEY-1…), or the passphrase. */
export type AgeIdentity = { type: "x25519"; identity: string } | { type: "scrypt"; passphrase: string };

export interface X25519Secret {
  privateKey: KeyObject;
  publicRaw: Buffer;
}

/** Makes a new identity (keep secret, mode 0600) and the recipient that encrypts to it. */
export function generateX25519Identity(): { identity: string; recipient: string } {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  return {
    identity: bech32Encode(IDENTITY_HRP, rawPrivate(privateKey)),
    recipient: bech32Encode(RECIPIENT_HRP, rawPublic(publicKey)),
  };
}

export function badIdentity(message: string, hint?: string): StrongboxError {
  return new StrongboxError("AGE_BAD_IDENTITY", message, {
    stage: "key",
    hint: hint ?? "an age identity is one line starting with AGE-SECRET-KEY-1, as written by age-keygen",
  });
}

// The secret never appears in an error: only what kind of thing it looks like.
export function decodeIdentity(identity: string, where = "the age identity"): X25519Secret {
  const text = identity.trim();
  if (text.startsWith("age1")) {
    throw badIdentity(`${where} is a public recipient (age1…), not a secret identity`);
  }
  if (text.startsWith("AGE-PLUGIN-"))
    throw badIdentity(`${where} is an age plugin identity; plugins are not supported`);
  if (text.startsWith("-----BEGIN") || text.startsWith("ssh-")) {
    throw badIdentity(`${where} looks like an SSH key; only native age X25519 identities are supported`);
  }
  const decoded = bech32Decode(text);
  if (!decoded || decoded.hrp !== IDENTITY_HRP || decoded.data.length !== 32) {
    throw badIdentity(`${where} is not a valid AGE-SECRET-KEY-1… identity (bad encoding or checksum)`);
  }
  try {
    const privateKey = x25519PrivateKey(decoded.data);
    return { privateKey, publicRaw: rawPublic(createPublicKey(privateKey)) };
  } catch (cause) {
    throw new StrongboxError("AGE_BAD_IDENTITY", `${where} could not be loaded as an X25519 key`, { cause });
  }
}

/** The age1… recipient (public key) of an AGE-SECRET-KEY-1… identity. */
export function recipientFromIdentity(identity: string): string {
  return bech32Encode(RECIPIENT_HRP, decodeIdentity(identity).publicRaw);
}

export function shown(value: string): string {
  const v = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  return JSON.stringify(v);
}

export function badRecipient(message: string, value?: string): StrongboxError {
  return new StrongboxError("AGE_BAD_RECIPIENT", message, {
    stage: "key",
    hint: "an age recipient looks like age1… (62 characters); `age-keygen -y IDENTITY_FILE` prints it",
    ...(value === undefined ? {} : { details: { recipient: value } }),
  });
}

export function decodeRecipient(text: string): Buffer {
  const value = text.trim();
  if (value.startsWith("AGE-SECRET-KEY-")) {
    // Do not echo it: someone pasted their secret key where the public one belongs.
    throw badRecipient(
      "invalid age recipient: this is a secret identity (AGE-SECRET-KEY-…), not a recipient",
    );
  }
  if (value.startsWith("ssh-")) {
    throw badRecipient(`invalid age recipient ${shown(value)}: SSH recipients are not supported`, value);
  }
  const decoded = bech32Decode(value);
  if (!decoded) {
    throw badRecipient(`invalid age recipient ${shown(value)}: not a valid bech32 age1… string`, value);
  }
  if (decoded.hrp !== RECIPIENT_HRP) {
    const what = decoded.hrp.startsWith("age1") ? "plugin recipients are not supported" : "expected age1…";
    throw badRecipient(`invalid age recipient ${shown(value)}: ${what}`, value);
  }
  if (decoded.data.length !== 32) {
    throw badRecipient(`invalid age recipient ${shown(value)}: key must be 32 bytes`, value);
  }
  return decoded.data;
}

/** Validates an X25519 recipient (age1…, lower case like age itself requires); returns it trimmed. */
export function parseRecipient(text: string): { type: "x25519"; recipient: string } {
  return { type: "x25519", recipient: bech32Encode(RECIPIENT_HRP, decodeRecipient(text)) };
}

/** Parses an age identity file: one AGE-SECRET-KEY-1… per line, `#` comments and blank lines. */
export function parseIdentities(fileText: string): AgeIdentity[] {
  const identities: AgeIdentity[] = [];
  const lines = fileText.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (line === "" || line.startsWith("#")) continue;
    decodeIdentity(line, `line ${i + 1} of the identity file`);
    identities.push({ type: "x25519", identity: line });
  }
  if (identities.length === 0) throw badIdentity("the identity file contains no identities");
  return identities;
}
