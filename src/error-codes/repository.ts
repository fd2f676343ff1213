// Error codes of the repository.
import { type ErrorSpec, FAIL } from "./spec.ts";

export const REPOSITORY_ERRORS = {
  title: "The repository",
  codes: {
    REPO_UNKNOWN: {
      exit: FAIL,
      meaning: "no repository of that name in the configuration",
      hint: "use one of the configured repositories",
    },
    REPO_MISSING: {
      exit: FAIL,
      meaning:
        "the repository's directory does not exist: an unmounted disk or a wrong path, never an empty repository",
      hint: "mount it or fix the path; only strongbox init creates a repository",
    },
    REPO_NOT_INITIALISED: {
      exit: FAIL,
      meaning: "the storage holds no repository yet",
      hint: "run strongbox init",
    },
    REPO_EXISTS: { exit: FAIL, meaning: "init: a repository already exists there", hint: "" },
    REPO_FORMAT: {
      exit: FAIL,
      meaning: "the repository has a format this version does not read",
      hint: "upgrade strongbox",
    },
    REPO_CORRUPT: {
      exit: FAIL,
      meaning: "the repository's own record is not valid",
      hint: "compare with an offsite copy",
    },
    REPO_TAMPERED: {
      exit: FAIL,
      meaning: "the repository's record is not signed by the configured signing key: someone changed it",
      hint: "do not trust it; compare with an offsite copy",
    },
    REPO_APPEND_ONLY: {
      exit: FAIL,
      meaning: "the repository is append-only: nothing may be deleted or replaced through this configuration",
      hint: "prune from a separate configuration with delete rights",
    },
    BACKUP_PINNED: {
      exit: FAIL,
      meaning: "forget: the backup, or one that depends on it, is pinned",
      hint: "strongbox backup unpin ID first",
    },
    BACKUP_HAS_DEPENDENTS: {
      exit: FAIL,
      meaning: "forget: incremental backups depend on this one",
      hint: "add --with-dependents to forget them too",
    },
    REPO_LOCKED: {
      exit: FAIL,
      meaning: "another writer holds the repository's lock; the message names it",
      hint: "wait for it; a lock of a dead writer expires (backup.lockTtl)",
    },
    REPO_LOCK_LOST: {
      exit: FAIL,
      meaning: "the repository's lock could not be kept alive; the run stopped before committing",
      hint: "check the storage's reachability and run again",
    },
    REPO_LOCK_RELEASED: {
      exit: FAIL,
      meaning: "the lock was released while work still needed it (a bug)",
      hint: "report it",
    },
    BACKUP_ROLLED_BACK: {
      exit: FAIL,
      meaning:
        "a manifest is not the version the evidence log records: an older copy was put back (from before a key rotation?)",
      hint: "do not trust it; copy the backup back from an offsite repository",
    },
    BACKUP_NOT_IN_EVIDENCE: {
      exit: FAIL,
      meaning: "a manifest the evidence log does not record: forged, or a pruned backup put back",
      hint: "do not trust it; it is left in place for investigation",
    },
    BACKUP_MISSING: {
      exit: FAIL,
      meaning: "the evidence log records a committed backup whose manifest is gone",
      hint: "copy it back from an offsite repository; investigate who deleted it",
    },
    EVIDENCE_TAMPERED: {
      exit: FAIL,
      meaning:
        "the evidence log has no entry signed by a trusted key, or entries that fail their checks, or was rolled back",
      hint: "compare with an offsite copy; investigate before writing to the repository",
    },
    EVIDENCE_RACE: {
      exit: FAIL,
      meaning: "the next evidence entry exists already: another writer, or objects dropped into evidence/",
      hint: "run strongbox verify; one writer per repository",
    },
    NO_BACKUPS: {
      exit: FAIL,
      meaning: "the repository has no backups to act on",
      hint: "run strongbox backup",
    },
    NO_RETENTION: {
      exit: FAIL,
      meaning: "prune: the repository has no retention policy, so it would delete everything",
      hint: "set repositories[].retention",
    },
    BACKUP_NOT_FOUND: {
      exit: FAIL,
      meaning: "no backup with that id in the repository",
      hint: "list them with strongbox list",
    },
    BACKUP_COMMITTED: {
      exit: FAIL,
      meaning: "an uncommitted-leftover removal was asked for a committed backup",
      hint: "use prune to remove backups",
    },
    CHAIN_BROKEN: {
      exit: FAIL,
      meaning: "a backup's parent (or chain root) is missing, so it cannot be restored or copied",
      hint: "copy the parent back from an offsite copy, or restore an older full",
    },
    MANIFEST_CORRUPT: {
      exit: FAIL,
      meaning: "a backup's manifest is not valid JSON or misses fields",
      hint: "compare with an offsite copy",
    },
    MANIFEST_UNSIGNED: {
      exit: FAIL,
      meaning: "a backup's manifest has no signature",
      hint: "do not trust this backup; compare with an offsite copy",
    },
    MANIFEST_TAMPERED: {
      exit: FAIL,
      meaning: "a backup's manifest fails its signature check: it was modified or signed by another key",
      hint: "do not trust this backup; compare with an offsite copy",
    },
    PART_MISSING: {
      exit: FAIL,
      meaning: "a part of a backup is missing from the repository",
      hint: "restore from an offsite copy",
    },
    PART_CORRUPT: {
      exit: FAIL,
      meaning: "a part does not match the size or SHA-256 its signed manifest records",
      hint: "restore from an offsite copy",
    },
    SPOOL_FAILED: {
      exit: FAIL,
      meaning:
        "a part or binlog could not be held in the temp directory for its hash check before use (full, read-only, or not writable)",
      hint: "point TMPDIR at a writable filesystem with room for two parts",
    },
    PART_READ: {
      exit: FAIL,
      meaning: "a part could not be read from the storage",
      hint: "check the storage and retry",
    },
    COPY_CORRUPT: {
      exit: FAIL,
      meaning:
        "copy: a part arrived at the destination different from the source; nothing was committed there",
      hint: "check the destination storage",
    },
    VERIFY_FAILED: {
      exit: FAIL,
      meaning: "verify found a problem (a part, a manifest, the binlog archive); the message names the first",
      hint: "restore from or re-copy an offsite copy",
    },
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
