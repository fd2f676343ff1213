// The real CLI (src/cli/main.ts) in a child process of the tests, from the sources.
import { main } from "../../src/cli/main.ts";

process.exitCode = await main(process.argv.slice(2));
