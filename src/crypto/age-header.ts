// The age header: the file key wrapped to each recipient (X25519, or scrypt for a passphrase) and
// unwrapped with an identity, and the header's text encoding with its HMAC. scrypt is the only
// slow step, so wrapping and unwrapping are generators run synchronously or on the thread pool.
import {
  createHmac,
  generateKeyPairSync,
  randomBytes,
  scrypt,
  scryptSync,
  timingSafeEqual,
} from "node:crypto";
import { StrongboxError } from "../errors.ts";
import {
  AGE_INTRO,
  AGE_MAX_HEADER_SIZE,
  aeadOpen,
  aeadSeal,
  BODY_COLUMNS,
  b64Decode,
  b64Encode,
  FILE_KEY_SIZE,
  headerInvalid,
  hkdf,
  type ParsedHeader,
  RECIPIENT_HRP,
  rawPublic,
  SCRYPT_DEFAULT_WORK_FACTOR,
  SCRYPT_LABEL,
  SCRYPT_MAX_WORK_FACTOR,
  SCRYPT_SALT_SIZE,
  type Stanza,
  TAG_SIZE,
  X25519_LABEL,
  x25519,
} from "./age-format.ts";
import {
  type AgeIdentity,
  type AgeRecipient,
  badIdentity,
  badRecipient,
  decodeIdentity,
  decodeRecipient,
  shown,
  type X25519Secret,
} from "./age-keys.ts";
import { bech32Encode } from "./bech32.ts";

// ---------------------------------------------------------------------------------------------
// scrypt: derivation is the only slow step, so wrap/unwrap are written once as generators that
// yield scrypt requests, and run either synchronously (rewrapHeader) or on the thread pool.

export interface ScryptRequest {
  passphrase: Buffer;
  salt: Buffer;
  logN: number;
}
export type KdfSteps<T> = Generator<ScryptRequest, T, Buffer>;

export function scryptOptions(logN: number) {
  const N = 2 ** logN;
  return { N, r: 8, p: 1, maxmem: 256 * N * 8 + 32 * 1024 * 1024 };
}

export function scryptSalt(salt: Buffer): Buffer {
  return Buffer.concat([Buffer.from(SCRYPT_LABEL), salt]);
}

// Typically memory: 2^22 needs 4 GiB.
export function scryptFailed(logN: number, cause: unknown): StrongboxError {
  return new StrongboxError("AGE_SCRYPT_FAILED", `scrypt key derivation with work factor ${logN} failed`, {
    stage: "decrypt",
    hint: "the passphrase work factor may need more memory than is available",
    cause,
  });
}

export function runSync<T>(steps: KdfSteps<T>): T {
  let step = steps.next();
  while (!step.done) {
    const { passphrase, salt, logN } = step.value;
    let key: Buffer;
    try {
      key = scryptSync(passphrase, scryptSalt(salt), 32, scryptOptions(logN));
    } catch (cause) {
      throw scryptFailed(logN, cause);
    }
    step = steps.next(key);
  }
  return step.value;
}

export async function runAsync<T>(steps: KdfSteps<T>): Promise<T> {
  let step = steps.next();
  while (!step.done) {
    const { passphrase, salt, logN } = step.value;
    const key = await new Promise<Buffer>((resolve, reject) => {
      scrypt(passphrase, scryptSalt(salt), 32, scryptOptions(logN), (err, derived) =>
        err ? reject(scryptFailed(logN, err)) : resolve(derived),
      );
    });
    step = steps.next(key);
  }
  return step.value;
}

// ---------------------------------------------------------------------------------------------
// Recipients → stanzas

export type WrapPlan =
  | { kind: "x25519"; recipients: Buffer[] }
  | { kind: "scrypt"; passphrase: Buffer; logN: number };

export function planRecipients(recipients: readonly AgeRecipient[]): WrapPlan {
  if (recipients.length === 0) throw badRecipient("no recipients given: cannot encrypt to nobody");
  const scrypts = recipients.filter((r) => r.type === "scrypt");
  if (scrypts.length > 0) {
    const first = scrypts[0];
    if (recipients.length !== 1 || !first) {
      throw badRecipient("a passphrase (scrypt) recipient must be the only recipient of a file");
    }
    const logN = first.workFactor ?? SCRYPT_DEFAULT_WORK_FACTOR;
    if (!Number.isInteger(logN) || logN < 1 || logN > SCRYPT_MAX_WORK_FACTOR) {
      throw badRecipient(
        `scrypt work factor must be an integer from 1 to ${SCRYPT_MAX_WORK_FACTOR}, got ${logN}`,
      );
    }
    if (typeof first.passphrase !== "string" || first.passphrase.length === 0) {
      throw badRecipient("the passphrase for a scrypt recipient is empty");
    }
    return { kind: "scrypt", passphrase: Buffer.from(first.passphrase, "utf8"), logN };
  }
  return {
    kind: "x25519",
    recipients: recipients.map((r) => {
      if (r.type !== "x25519") throw badRecipient(`unknown recipient type ${shown(String(r.type))}`);
      return decodeRecipient(r.recipient);
    }),
  };
}

export function wrapX25519(fileKey: Buffer, recipientRaw: Buffer): Stanza {
  const ephemeral = generateKeyPairSync("x25519");
  const share = rawPublic(ephemeral.publicKey);
  const secret = x25519(ephemeral.privateKey, recipientRaw);
  if (!secret)
    throw badRecipient(`invalid age recipient ${bech32Encode(RECIPIENT_HRP, recipientRaw)}: low-order key`);
  const wrapKey = hkdf(secret, Buffer.concat([share, recipientRaw]), X25519_LABEL);
  return { type: "X25519", args: [b64Encode(share)], body: aeadSeal(wrapKey, fileKey) };
}

export function* wrapSteps(fileKey: Buffer, plan: WrapPlan): KdfSteps<Stanza[]> {
  if (plan.kind === "x25519") return plan.recipients.map((r) => wrapX25519(fileKey, r));
  const salt = randomBytes(SCRYPT_SALT_SIZE);
  const key = yield { passphrase: plan.passphrase, salt, logN: plan.logN };
  return [{ type: "scrypt", args: [b64Encode(salt), String(plan.logN)], body: aeadSeal(key, fileKey) }];
}

// ---------------------------------------------------------------------------------------------
// Header encoding and parsing

export function headerMac(fileKey: Buffer, macInput: Buffer): Buffer {
  return createHmac("sha256", hkdf(fileKey, Buffer.alloc(0), "header"))
    .update(macInput)
    .digest();
}

export function encodeHeader(fileKey: Buffer, stanzas: Stanza[]): Buffer {
  let text = AGE_INTRO;
  for (const s of stanzas) {
    text += `-> ${[s.type, ...s.args].join(" ")}\n`;
    const body = b64Encode(s.body);
    for (let i = 0; i < body.length; i += BODY_COLUMNS) text += `${body.slice(i, i + BODY_COLUMNS)}\n`;
    // The body always ends with a line shorter than 64 columns, possibly empty.
    if (body.length % BODY_COLUMNS === 0) text += "\n";
  }
  text += "---";
  const macInput = Buffer.from(text, "latin1");
  return Buffer.concat([macInput, Buffer.from(` ${b64Encode(headerMac(fileKey, macInput))}\n`, "latin1")]);
}

export const ARG_CHARS = /^[\x21-\x7e]+$/;

/**
 * Parses a header from the start of `data`. Returns undefined when more bytes are needed, throws
 * AGE_HEADER_INVALID as soon as the bytes cannot be the start of a valid header.
 */
export function scanHeader(data: Buffer): { header: ParsedHeader; headerLength: number } | undefined {
  const text = data.toString("latin1", 0, Math.min(data.length, AGE_MAX_HEADER_SIZE));
  const introEnd = text.indexOf("\n");
  const intro = introEnd < 0 ? text : text.slice(0, introEnd + 1);
  if (!(introEnd < 0 ? AGE_INTRO.startsWith(intro) : intro === AGE_INTRO)) {
    if (text.startsWith("-----BEGIN AGE ENCRYPTED FILE-----")) {
      throw headerInvalid(
        "the file is ASCII-armored; armored files are not supported (use `age -d` to decode it)",
      );
    }
    if (text.startsWith("age-encryption.org/") && introEnd >= 0) {
      throw headerInvalid(`unsupported version line ${shown(intro.trimEnd())}`);
    }
    throw headerInvalid("the file does not start with age-encryption.org/v1");
  }
  if (introEnd < 0) return undefined;

  const stanzas: Stanza[] = [];
  let current: { type: string; args: string[]; body: Buffer[] } | undefined;
  let pos = introEnd + 1;
  for (;;) {
    const nl = text.indexOf("\n", pos);
    if (nl < 0) {
      if (text.length >= AGE_MAX_HEADER_SIZE)
        throw headerInvalid(`header is larger than ${AGE_MAX_HEADER_SIZE} bytes`);
      return undefined;
    }
    const line = text.slice(pos, nl);
    const lineNo = stanzas.length;
    if (current) {
      const bytes = line.length <= BODY_COLUMNS ? b64Decode(line) : undefined;
      if (!bytes) {
        const why =
          line.startsWith("-") || line.length === 0
            ? "stanza body ended without a short final line"
            : "malformed stanza body line";
        throw headerInvalid(`${why} in stanza ${lineNo + 1}`);
      }
      current.body.push(bytes);
      if (line.length < BODY_COLUMNS) {
        stanzas.push({ type: current.type, args: current.args, body: Buffer.concat(current.body) });
        current = undefined;
      }
    } else if (line.startsWith("---")) {
      const mac = line.startsWith("--- ") ? b64Decode(line.slice(4)) : undefined;
      if (mac?.length !== 32) throw headerInvalid("malformed MAC line");
      if (stanzas.length === 0) throw headerInvalid("no recipient stanzas");
      return {
        header: { stanzas, mac, macInput: Buffer.from(data.subarray(0, pos + 3)) },
        headerLength: nl + 1,
      };
    } else if (line.startsWith("->")) {
      const parts = line.split(" ");
      if (parts[0] !== "->" || parts.length < 2 || !parts.slice(1).every((a) => ARG_CHARS.test(a))) {
        throw headerInvalid(`malformed stanza line ${lineNo + 1}`);
      }
      current = { type: parts[1] ?? "", args: parts.slice(2), body: [] };
    } else {
      throw headerInvalid("unexpected line (expected a stanza or the MAC line)");
    }
    pos = nl + 1;
  }
}

/** Where the payload of an age file starts, or undefined if `prefix` does not hold the whole header yet. */
export function headerLength(prefix: Buffer): number | undefined {
  return scanHeader(prefix)?.headerLength;
}

export function truncatedHeader(length: number): StrongboxError {
  return new StrongboxError(
    "AGE_TRUNCATED",
    length === 0
      ? "age input is empty"
      : `age file is truncated: it ends inside the header after ${length} bytes`,
    { stage: "decrypt", hint: "the file was cut short (interrupted upload or copy); use another copy" },
  );
}

/** Parses the header at the start of a file (or a header on its own). */
export function readHeader(source: Buffer): { header: ParsedHeader; headerLength: number } {
  const scanned = scanHeader(source);
  if (!scanned) throw truncatedHeader(source.length);
  return scanned;
}

// ---------------------------------------------------------------------------------------------
// Identities → file key

export type ResolvedIdentity =
  | { kind: "x25519"; secret: X25519Secret }
  | { kind: "scrypt"; passphrase: Buffer };

export function resolveIdentities(identities: readonly AgeIdentity[]): ResolvedIdentity[] {
  if (identities.length === 0) throw badIdentity("no identities given: cannot decrypt without a key");
  return identities.map((id, i): ResolvedIdentity => {
    if (id.type === "x25519") {
      return { kind: "x25519", secret: decodeIdentity(id.identity, `identity ${i + 1}`) };
    }
    if (id.type === "scrypt") return { kind: "scrypt", passphrase: Buffer.from(id.passphrase, "utf8") };
    throw badIdentity(`identity ${i + 1} has an unknown type`);
  });
}

export function unwrapX25519(stanza: Stanza, secret: X25519Secret): Buffer | undefined {
  const share = stanza.args.length === 1 ? b64Decode(stanza.args[0] ?? "") : undefined;
  if (share?.length !== 32) throw headerInvalid("malformed X25519 stanza");
  if (stanza.body.length !== FILE_KEY_SIZE + TAG_SIZE)
    throw headerInvalid("X25519 stanza wraps a key of the wrong size");
  const shared = x25519(secret.privateKey, share);
  if (!shared) throw headerInvalid("X25519 stanza has a low-order share (all-zero shared secret)");
  const wrapKey = hkdf(shared, Buffer.concat([share, secret.publicRaw]), X25519_LABEL);
  return aeadOpen(wrapKey, stanza.body);
}

export function parseScryptStanza(stanza: Stanza): { salt: Buffer; logN: number } {
  const [saltText, logNText] = stanza.args;
  const salt = stanza.args.length === 2 ? b64Decode(saltText ?? "") : undefined;
  if (!salt || salt.length !== SCRYPT_SALT_SIZE || !/^[1-9][0-9]*$/.test(logNText ?? "")) {
    throw headerInvalid("malformed scrypt stanza");
  }
  const logN = Number(logNText);
  if (logN > SCRYPT_MAX_WORK_FACTOR) {
    throw headerInvalid(
      `scrypt work factor ${logNText} is larger than the maximum ${SCRYPT_MAX_WORK_FACTOR}`,
    );
  }
  if (stanza.body.length !== FILE_KEY_SIZE + TAG_SIZE)
    throw headerInvalid("scrypt stanza wraps a key of the wrong size");
  return { salt, logN };
}

export function noMatch(header: ParsedHeader, identities: ResolvedIdentity[]): StrongboxError {
  const counts = new Map<string, number>();
  for (const s of header.stanzas) counts.set(s.type, (counts.get(s.type) ?? 0) + 1);
  const given = identities.filter((i) => i.kind === "x25519").length;
  const passphrases = identities.length - given;
  const details = { stanzas: Object.fromEntries(counts), identities: given, passphrases };
  let message: string;
  if (counts.has("scrypt")) {
    message =
      passphrases > 0
        ? "the file is encrypted with a passphrase (scrypt) and the given passphrase is wrong"
        : "the file is encrypted with a passphrase (scrypt), but no passphrase was given";
  } else {
    const parts = [...counts].map(([type, n]) => `${n} ${type} recipient(s)`);
    const who =
      given === 0
        ? "no X25519 identity was given"
        : given === 1
          ? "none matches the given identity"
          : `none matches the ${given} given identities`;
    message = `the file is encrypted to ${parts.join(" and ")}; ${who}`;
  }
  return new StrongboxError("AGE_NO_IDENTITY_MATCH", message, {
    stage: "decrypt",
    hint: "use the identity whose public key (`age-keygen -y FILE`) was a recipient when the file was written",
    details,
  });
}

export function* unwrapSteps(header: ParsedHeader, identities: ResolvedIdentity[]): KdfSteps<Buffer> {
  const stanzas = header.stanzas;
  if (stanzas.some((s) => s.type === "scrypt") && stanzas.length !== 1) {
    throw headerInvalid("a scrypt stanza must be the only stanza in the header");
  }
  let fileKey: Buffer | undefined;
  search: for (const id of identities) {
    if (id.kind === "x25519") {
      for (const s of stanzas) {
        if (s.type !== "X25519") continue;
        fileKey = unwrapX25519(s, id.secret);
        if (fileKey) break search;
      }
    } else {
      const only = stanzas[0];
      if (stanzas.length !== 1 || !only || only.type !== "scrypt") continue;
      const { salt, logN } = parseScryptStanza(only);
      const key = yield { passphrase: id.passphrase, salt, logN };
      fileKey = aeadOpen(key, only.body);
      if (fileKey) break;
    }
  }
  if (!fileKey) throw noMatch(header, identities);
  const expected = headerMac(fileKey, header.macInput);
  if (!timingSafeEqual(expected, header.mac)) {
    throw new StrongboxError(
      "AGE_HEADER_MAC",
      "age header MAC does not match: the header was modified or corrupted",
      {
        stage: "decrypt",
        hint: "the file was tampered with or damaged; use another copy",
      },
    );
  }
  return fileKey;
}
