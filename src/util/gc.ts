// Streaming a backup allocates a new Buffer for every read, and V8 frees that memory only when a
// collection finds the Buffer objects dead. They are tiny on V8's heap, so a scavenge (which runs
// as the heap fills, not as outside memory grows) comes too rarely, and 60-100 MB of freed-to-be
// buffers pile up (measured: `verify` of a 400 MB backup peaked at 154 MB, a restore at 190 MB).
// So the hot loops report the bytes they stream, and every COLLECT_EVERY bytes a young-generation
// collection runs: it frees the buffers of the last few megabytes, which are all young, and costs
// well under a millisecond. A full collection here (until the 1 MB semi-space made buffers die
// young) marked the whole heap every time: on a 384 MB backup, `verify` used 1.2-1.3 s of user CPU
// with it and 0.6 s now, a restore 3.0-3.4 s and 2.7 s, at the same peak RSS (76 MB; 124 → 128 MB).
//
// Every 4 MB, not 8: a young collection costs well under a millisecond, and the restore path
// makes about four buffers (read, spool, decrypt, SSH packet) for each byte it counts here. With
// 8 MB a `restore --onto` of a 389 MB backup peaked at 124-150 MB on the backup host (15
// repetitions), with 4 MB at 115-146 MB, and a backup through an agent at 104-121 MB instead of
// 114-131 MB, at the same CPU (docs/benchmarks.md). A full collection every 64 MB instead was
// tried and dropped: it cost a backup 0.5-1 s of CPU.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

const COLLECT_EVERY = 4 << 20;
let pending = 0;
let collect: (() => void) | undefined;

function load(): () => void {
  // The documented way to reach gc() without starting node with --expose-gc.
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as (options: { type: "minor" }) => void;
  return () => gc({ type: "minor" });
}

/** Counts `bytes` of streamed buffers that are now garbage; collects every COLLECT_EVERY bytes. */
export function streamed(bytes: number): void {
  pending += bytes;
  if (pending < COLLECT_EVERY) return;
  pending = 0;
  collect ??= load();
  collect();
}
