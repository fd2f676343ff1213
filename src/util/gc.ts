// Streaming a backup allocates a new Buffer for every read, and V8 collects that garbage only
// after about 64 MB of it has built up outside its heap. At a gigabyte per second the peak RSS
// then sits 60-100 MB above what the process needs (measured: `verify` of a 400 MB backup peaked
// at 154 MB; a restore at 190 MB, 131 MB when collecting every 8 MB). So the hot loops report the
// bytes they stream, and every COLLECT_EVERY bytes a full collection runs: a few milliseconds on
// our small heap.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

const COLLECT_EVERY = 8 << 20;
let pending = 0;
let collect: (() => void) | undefined;

function load(): () => void {
  // The documented way to reach gc() without starting node with --expose-gc.
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  return () => gc();
}

/** Counts `bytes` of streamed buffers that are now garbage; collects every COLLECT_EVERY bytes. */
export function streamed(bytes: number): void {
  pending += bytes;
  if (pending < COLLECT_EVERY) return;
  pending = 0;
  collect ??= load();
  collect();
}
