// Error codes of the sandbox (demo cluster).
import { type ErrorSpec, FAIL } from "./spec.ts";

export const SANDBOX_ERRORS = {
  title: "The sandbox (demo cluster)",
  codes: {
    SANDBOX_PACKAGES_MISSING: {
      exit: FAIL,
      meaning: "the Debian packages the sandbox needs are not installed",
      hint: "apt-get install the packages named",
    },
    SANDBOX_NOT_FOUND: {
      exit: FAIL,
      meaning: "no sandbox in that directory",
      hint: "start one with strongbox sandbox up --dir DIR",
    },
    SANDBOX_EXISTS: {
      exit: FAIL,
      meaning: "a stopped sandbox exists in that directory",
      hint: "start its nodes, or remove it with sandbox down --purge",
    },
    SANDBOX_DIR_IN_USE: {
      exit: FAIL,
      meaning: "the directory holds a strongbox.yaml that is not a sandbox's; sandbox up would overwrite it",
      hint: "choose another --dir",
    },
    SANDBOX_RUNNING: {
      exit: FAIL,
      meaning: "a sandbox is already running in that directory",
      hint: "stop it with strongbox sandbox down, or choose another --dir",
    },
    SANDBOX_BAD_NODES: { exit: FAIL, meaning: "the sandbox node count is outside 1 to 9", hint: "" },
    SANDBOX_BAD_NODE: { exit: FAIL, meaning: "the sandbox has no node of that number", hint: "" },
    SANDBOX_NO_PORTS: {
      exit: FAIL,
      meaning: "no free range of loopback ports for the sandbox",
      hint: "free ports or pass --base-port",
    },
    SANDBOX_PORT_TAKEN: { exit: FAIL, meaning: "ports the sandbox needs are in use", hint: "" },
    SANDBOX_NODE_DOWN: { exit: FAIL, meaning: "the sandbox node is not running", hint: "" },
    SANDBOX_NODE_UP: { exit: FAIL, meaning: "the sandbox node is already running", hint: "" },
    SANDBOX_NODE_TLS: {
      exit: FAIL,
      meaning:
        "a node's Galera TLS cannot work with its peers (TLS on one side only, a CA that did not sign the peer, an expired or wrong-name certificate): it would never join, and Galera does not fall back to plain text",
      hint: "fix the setting named, as in docs/galera-tls.md",
    },
    SANDBOX_NODE_FAILED: {
      exit: FAIL,
      meaning: "a sandbox node exited while starting",
      hint: "the message has the end of its error log",
    },
    SANDBOX_NODE_TIMEOUT: {
      exit: FAIL,
      meaning: "a sandbox node did not reach Synced in time",
      hint: "the message has the end of its error log",
    },
    SANDBOX_START_FAILED: { exit: FAIL, meaning: "a sandbox mariadbd did not start", hint: "" },
    SANDBOX_STOP_FAILED: {
      exit: FAIL,
      meaning: "a sandbox mariadbd did not stop",
      hint: "kill it by its pid",
    },
    SANDBOX_HOSTS_ROOT: {
      exit: FAIL,
      meaning:
        "a multi-host sandbox command was run without root: it makes OS accounts and runs each node's processes as them",
      hint: "run it as root (for sandbox up: or without --hosts, for a sandbox on one host)",
    },
    SANDBOX_HOSTS_UNREACHABLE: {
      exit: FAIL,
      meaning:
        "a path the multi-host sandbox's accounts need (strongbox, Node, the sandbox directory) is not reachable by them",
      hint: "put it where every account can read it, or let others search the directories above it",
    },
    SANDBOX_HOSTS_ACCOUNT: {
      exit: FAIL,
      meaning:
        "an OS account of the multi-host sandbox exists already (when making it) or is gone (when using it)",
      hint: "remove the old account or sandbox (sandbox down --purge), then start a new sandbox",
    },
    DATASET_EXISTS: {
      exit: FAIL,
      meaning: "the sandbox dataset's schemas exist already",
      hint: "drop them first, or load with replace",
    },
    DATASET_MISSING: {
      exit: FAIL,
      meaning: "the sandbox dataset is not loaded",
      hint: "load it with strongbox sandbox load",
    },
    DATASET_SCHEMA_FAILED: { exit: FAIL, meaning: "creating the sandbox dataset's tables failed", hint: "" },
    DATASET_LOAD_FAILED: { exit: FAIL, meaning: "loading the sandbox dataset failed", hint: "" },
    WRITE_LOAD_FAILED: { exit: FAIL, meaning: "a statement of the sandbox write load failed", hint: "" },
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
