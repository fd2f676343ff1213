// The real CLI with the admin commands (user, audit) registered, for tests, until src/cli/main.ts
// registers them itself; then tests can run bin/strongbox instead.
import { CommanderError } from "commander";
import { registerAdmin } from "../../src/cli/admin.ts";
import { buildProgram } from "../../src/cli/main.ts";
import { StrongboxError } from "../../src/errors.ts";

process.umask(0o077);
const argv = process.argv.slice(2);
const program = buildProgram();
if (!program.commands.some((c) => c.name() === "audit")) registerAdmin(program);
try {
  await program.parseAsync(argv, { from: "user" });
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? 0 : 64;
  else if (e instanceof StrongboxError) {
    if (argv.includes("--json")) {
      process.stdout.write(
        `${JSON.stringify({ error: { code: e.code, message: e.oneLine(), details: e.details } })}\n`,
      );
    }
    process.stderr.write(`strongbox: error: ${e.oneLine()}\n`);
    process.exitCode = e.exitCode;
  } else {
    process.stderr.write(`strongbox: internal error: ${(e as Error).stack}\n`);
    process.exitCode = 70;
  }
}
