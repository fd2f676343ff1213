// Files that hold or point at secrets must be readable by their owner only.
import { statSync } from "node:fs";
import { StrongboxError } from "../errors.ts";

/**
 * Refuses a file that group or others can read or write: it may hold or point at secrets. The
 * configuration file has its own code, so that it exits with the configuration's status (78).
 */
export function assertPrivateFile(
  path: string,
  what: string,
  code: "FILE_TOO_OPEN" | "CONFIG_TOO_OPEN" = "FILE_TOO_OPEN",
): void {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (e) {
    throw new StrongboxError(
      "FILE_MISSING",
      `${what} ${path} cannot be read: ${(e as NodeJS.ErrnoException).code}`,
      {
        cause: e,
      },
    );
  }
  if ((mode & 0o077) !== 0) {
    throw new StrongboxError(
      code,
      `${what} ${path} is accessible by group or others (mode ${(mode & 0o777).toString(8)})`,
      { hint: `chmod 600 ${path}` },
    );
  }
}
