// agent: the node side of the backup host's SSH connection (started by sshd's forced command).
// stdin and stdout carry the agent protocol's frames only; what it logs goes to stderr, which sshd
// hands to the backup host.
import { serveAgent } from "../agent/serve.ts";
import { UsageError } from "../errors.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { VERSION } from "../version.ts";

export async function agent(
  _g: GlobalOptions,
  o: { restoreRoot?: string },
  _out: Output,
): Promise<CommandResult> {
  // Someone typing `strongbox agent` at a prompt: frames are not for people.
  if (process.stdin.isTTY)
    throw new UsageError(
      "strongbox agent speaks the agent protocol on stdin/stdout: sshd starts it through the forced command of the backup host's key (docs/deployment.md)",
    );
  // Files the agent makes (option files, its temp directory) are the account's alone.
  process.umask(0o077);
  const ok = await serveAgent({
    input: process.stdin,
    output: process.stdout,
    outputFd: 1,
    version: VERSION,
    restoreRoot: o.restoreRoot,
    log: (m) => process.stderr.write(`strongbox ${m}\n`),
  });
  // The backup host has the error in a frame; sshd's exit status says it too.
  return { exitCode: ok ? 0 : 2 };
}
