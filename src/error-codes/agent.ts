// Error codes of the node agents and of where a physical backup may run.
import { type ErrorSpec, FAIL } from "./spec.ts";

export const AGENT_ERRORS = {
  title: "Node agents",
  codes: {
    AGENT_UNREACHABLE: {
      exit: FAIL,
      meaning: "the node's SSH server cannot be reached, or the connection dropped during the handshake",
      hint: "is sshd running on the node and reachable from the backup host?",
    },
    AGENT_HOST_KEY: {
      exit: FAIL,
      meaning: "the node's SSH host key is not the pinned one: possibly someone in the middle",
      hint: "compare fingerprints on the node itself before updating cluster.nodes[].agent.hostKey",
    },
    AGENT_RESTORE_ROOT: {
      exit: FAIL,
      meaning:
        "the agent refuses to restore there: it was started without --restore-root, or the target is not inside it",
      hint: "give the agent's forced command --restore-root DIR and restore into a directory below it (docs/deployment.md)",
    },
    AGENT_AUTH: {
      exit: FAIL,
      meaning: "the node's SSH server refused the backup host's key",
      hint: "add the key to the agent account's authorized_keys with the forced command (docs/deployment.md)",
    },
    AGENT_CONFIG: {
      exit: FAIL,
      meaning: "cluster.nodes[].agent cannot work (unreadable key, no host key given)",
      hint: "",
    },
    AGENT_MISSING: {
      exit: FAIL,
      meaning:
        "the node answered, but no strongbox agent runs there (not installed, or a wrong forced command)",
      hint: "install strongbox on the node and check the authorized_keys command",
    },
    AGENT_VERSION: {
      exit: FAIL,
      meaning: "the node's agent speaks another protocol version than this backup host",
      hint: "install the same strongbox version on the backup host and the nodes",
    },
    AGENT_PROTOCOL: {
      exit: FAIL,
      meaning: "the agent sent something its protocol does not allow (a bug, or not our agent)",
      hint: "",
    },
    AGENT_LOST: {
      exit: FAIL,
      meaning:
        "the agent or its SSH connection went away in the middle of an operation; nothing was committed",
      hint: "check the node; the backup is retried on the next healthy node",
    },
    AGENT_PASSPHRASE: {
      exit: FAIL,
      meaning: "a node agent would need the repository passphrase to encrypt; nodes never hold secrets",
      hint: "use age recipients (keys.recipients) with agents",
    },
    NODE_NOT_LOCAL: {
      exit: FAIL,
      meaning:
        "a physical backup of a node without an agent must run on that node's host, and this is not it",
      hint: "configure cluster.nodes[].agent, or run strongbox on the node",
    },
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
