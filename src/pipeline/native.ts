// Where the native helpers (native/*.c, built by scripts/build.ts) are, and whether to use them.
import { accessSync, constants } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The path of native/build/NAME, or undefined to do the work in Node instead: when it is not built
 * (no C compiler or OpenSSL headers at install) or turned off with STRONGBOX_SEALER=node.
 */
export function nativeBinary(name: "strongbox-seal" | "strongbox-open"): string | undefined {
  if (process.env.STRONGBOX_SEALER === "node") return undefined;
  // This module is two directories below the checkout in src/ and in dist/ alike (the build
  // guards that), so one relative path finds it from both.
  const path = fileURLToPath(new URL(`../../native/build/${name}`, import.meta.url));
  try {
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    return undefined;
  }
}
