// Error codes of keys and encryption.
import { type ErrorSpec, ExitCode, FAIL } from "./spec.ts";

export const KEY_ERRORS = {
  title: "Keys and encryption",
  codes: {
    NO_RECIPIENTS: {
      exit: FAIL,
      meaning:
        "no age recipient (public key) and no passphrase is configured: backups could not be encrypted",
      hint: "add keys.recipients (age1…) or keys.recipientsFile",
    },
    RECIPIENTS_FILE: {
      exit: FAIL,
      meaning: "the recipients file cannot be read",
      hint: "check keys.recipientsFile",
    },
    RECIPIENT_EXISTS: { exit: FAIL, meaning: "key rotation: the recipient to add is already one", hint: "" },
    RECIPIENT_UNKNOWN: {
      exit: FAIL,
      meaning: "key rotation: the recipient to remove is not one",
      hint: "the recipients are keys.recipients and the lines of keys.recipientsFile",
    },
    RECIPIENT_LAST: {
      exit: FAIL,
      meaning: "key rotation would remove the last recipient, so nobody could decrypt new backups",
      hint: "add the new recipient first",
    },
    KEYS_PASSPHRASE: {
      exit: FAIL,
      meaning: "a recipient operation on a repository that uses a passphrase",
      hint: "switch to recipients (keys.recipients) first",
    },
    PASSPHRASE_WEAK: {
      exit: FAIL,
      meaning: "the passphrase is shorter than 12 characters",
      hint: "use a long random passphrase",
    },
    IDENTITY_NEEDED: {
      exit: ExitCode.usage,
      meaning: "decryption needs an age identity (private key) and none was given or configured",
      hint: "pass --identity FILE; the identity is kept off the backup host",
    },
    IDENTITY_MISSING: {
      exit: FAIL,
      meaning: "the identity file given or configured does not exist",
      hint: "pass --identity FILE; the identity is kept off the backup host",
    },
    WRONG_KEY: {
      exit: FAIL,
      meaning: "the identity given is not one of the backup's recipients",
      hint: "pass the identity of one of the recipients the error names",
    },
    KEY_WRITE: {
      exit: FAIL,
      meaning: "a key file could not be written (it exists, or the directory is not writable)",
      hint: "",
    },
    ROTATE_BAD_KEY: {
      exit: FAIL,
      meaning: "key rotation met an object that is not a part of the backup being rotated",
      hint: "run strongbox verify; the repository may have been altered",
    },
    ROTATE_CORRUPT: {
      exit: FAIL,
      meaning:
        "key rotation read an object whose bytes do not match the size and SHA-256 its signed manifest or binlog index entry records; nothing was replaced",
      hint: "run strongbox verify; restore the object from an offsite copy",
    },
    AGE_BAD_IDENTITY: {
      exit: FAIL,
      meaning: "an identity file does not hold a valid age identity (AGE-SECRET-KEY-1…)",
      hint: "generate one with age-keygen",
    },
    AGE_BAD_RECIPIENT: {
      exit: FAIL,
      meaning: "a recipient is not a valid age recipient (age1…)",
      hint: "copy the public key line age-keygen printed",
    },
    AGE_HEADER_INVALID: {
      exit: FAIL,
      meaning: "an encrypted object's age header is malformed: the data is corrupted or not ours",
      hint: "restore from an offsite copy",
    },
    AGE_HEADER_MAC: {
      exit: FAIL,
      meaning: "an encrypted object's header fails its MAC: it was modified",
      hint: "restore from an offsite copy",
    },
    AGE_NO_IDENTITY_MATCH: {
      exit: FAIL,
      meaning: "none of the identities given opens this encrypted object",
      hint: "pass the identity of one of its recipients",
    },
    AGE_PAYLOAD_AUTH: {
      exit: FAIL,
      meaning: "an encrypted chunk fails authentication: the data was modified or damaged",
      hint: "restore from an offsite copy",
    },
    AGE_SCRYPT_FAILED: {
      exit: FAIL,
      meaning: "the passphrase key derivation (scrypt) failed, usually for lack of memory",
      hint: "free memory, or lower the work factor for new backups",
    },
    AGE_TOO_LARGE: {
      exit: FAIL,
      meaning: "an object exceeds what one age stream can hold (2^48 chunks)",
      hint: "",
    },
    AGE_TRAILING_DATA: {
      exit: FAIL,
      meaning: "an encrypted object has data after its last chunk: it was altered",
      hint: "restore from an offsite copy",
    },
    AGE_TRUNCATED: {
      exit: FAIL,
      meaning: "an encrypted object ends early: it is truncated",
      hint: "restore from an offsite copy",
    },
    SIGNING_KEY_MISSING: {
      exit: FAIL,
      meaning: "the manifest signing key file does not exist",
      hint: "strongbox init creates it; or point keys.signingKey at it",
    },
    SIGNING_KEY_INVALID: {
      exit: FAIL,
      meaning: "the signing key file is not an Ed25519 private key",
      hint: "",
    },
    SIGN_BAD_PRIVATE_KEY: {
      exit: FAIL,
      meaning: "the signing key is not a valid PEM (PKCS#8) Ed25519 private key",
      hint: "",
    },
    SIGN_BAD_PUBLIC_KEY: {
      exit: FAIL,
      meaning: "a signing public key is not valid",
      hint: "give it as written by strongbox init",
    },
    SIGN_CANONICAL_JSON: {
      exit: FAIL,
      meaning: "a record to sign holds a value canonical JSON cannot express (a bug)",
      hint: "report it",
    },
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
