// Error codes of binary logs and point-in-time recovery.
import { type ErrorSpec, ExitCode, FAIL } from "./spec.ts";

export const BINLOG_ERRORS = {
  title: "Binary logs and point-in-time recovery",
  codes: {
    BINLOG_NOT_ENABLED: {
      exit: FAIL,
      meaning: "the node does not write binary logs (or the account may not list them)",
      hint: "set log_bin, log_slave_updates and wsrep_gtid_mode; grant BINLOG MONITOR",
    },
    BINLOG_SCAN_FAILED: { exit: FAIL, meaning: "mariadb-binlog could not read a binary log", hint: "" },
    BINLOG_STREAM: {
      exit: FAIL,
      meaning: "the binlog stream from a node ended (node stopped, connection lost, server error)",
      hint: "archiving continues on another Synced node from the next GTID; check the node if it repeats",
    },
    BINLOG_STORAGE: {
      exit: FAIL,
      meaning: "the repository did not take a binlog segment; it is kept in memory and retried",
      hint: "bring the storage back; nothing is lost while binlog.spoolMax is not reached",
    },
    BINLOG_SPOOL_FULL: {
      exit: FAIL,
      meaning: "binlog.spoolMax bytes of sealed segments wait for the storage: receiving paused",
      hint: "bring the storage back; the nodes keep the binlogs meanwhile (binlog_expire_logs_seconds)",
    },
    BINLOG_SPOOL: {
      exit: FAIL,
      meaning: "the spool of received binlog events cannot be freed as it is read",
      hint: "put the spool on a file system with hole punching (tmpfs, ext4, xfs)",
    },
    BINLOG_CORRUPT: {
      exit: FAIL,
      meaning: "an archived binlog does not match its signed index entry",
      hint: "use an offsite copy",
    },
    BINLOG_GAP: {
      exit: FAIL,
      meaning: "the binlog archive has gaps: recovery to times inside them is impossible",
      hint: "take a new full backup now",
    },
    BINLOG_INDEX_RACE: {
      exit: FAIL,
      meaning: "another archiver wrote the same binlog index entry",
      hint: "run one archiver per repository",
    },
    BINLOG_INDEX_TAMPERED: {
      exit: FAIL,
      meaning: "binlog index entries fail their signature check",
      hint: "do not trust this archive; compare with an offsite copy",
    },
    BINLOG_NUMBERING_RESTARTED: {
      exit: FAIL,
      meaning: "the node's binlog numbers went back (log reset or a rebuilt node)",
      hint: "archive from another node, or move the old archive aside",
    },
    GTID_INVALID: {
      exit: FAIL,
      meaning: "a GTID is not domain-server-sequence",
      hint: "write it as 0-1-1234",
    },
    PITR_TARGET: {
      exit: ExitCode.usage,
      meaning: "the point-in-time target is missing, ambiguous, malformed or before the backup",
      hint: "give exactly one of --to-time (ISO 8601 with a zone) and --to-gtid",
    },
    PITR_NO_BACKUP: {
      exit: FAIL,
      meaning: "no physical backup with a GTID position precedes the target",
      hint: "recovery starts from a full or incremental backup taken before the target",
    },
    PITR_NO_BINLOGS: {
      exit: FAIL,
      meaning: "the repository has no archived binlogs",
      hint: "schedule strongbox binlog archive",
    },
    PITR_NO_START: {
      exit: FAIL,
      meaning: "the backup's GTID position is not in the archived binlogs",
      hint: "",
    },
    PITR_GAP: {
      exit: FAIL,
      meaning: "a transaction between the backup and the target is in no archived binlog",
      hint: "choose a target before the gap, or a backup after it",
    },
    PITR_NOT_COVERED: {
      exit: FAIL,
      meaning: "the binlog archive ends before the target",
      hint: "archive again, or choose an earlier target",
    },
    PITR_APPLY_FAILED: {
      exit: FAIL,
      meaning: "replaying a binlog into the restored server failed",
      hint: "",
    },
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
