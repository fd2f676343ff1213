// Restores and restore-tests on the node: the backup host (or a recovery host holding the
// identity) checks and decrypts each backup and sends its compressed stream; here it is
// decompressed, unpacked (the same path and CRC checks as a local restore), prepared, and given its
// grastate.dat — or started in a scratch server and checked. Only below the agent's
// --restore-root: whoever holds the backup host's key must not be able to empty a live data
// directory with --force.
import { realpath, stat } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { type RestoreTestResult, restoreTest } from "../drill/restore-test.ts";
import { StrongboxError } from "../errors.ts";
import { type Frame, FrameType, type FrameWriter } from "../protocol/frames.ts";
import type { RestoreRequest, RestoreTestRequest } from "../protocol/messages.ts";
import { type RestoreResult, restorePhysical } from "../restore/restore.ts";
import { uploadedChain } from "./upload.ts";

function refused(why: string): StrongboxError {
  return new StrongboxError("AGENT_RESTORE_ROOT", why, {
    stage: "agent",
    hint: "give the agent's forced command --restore-root DIR and restore into a directory below it (docs/deployment.md)",
  });
}

/** The nearest existing ancestor of `path` (itself included), resolved through links. */
async function realAncestor(path: string): Promise<string> {
  for (let p = path; ; p = dirname(p)) {
    try {
      await stat(p);
      return await realpath(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT" || dirname(p) === p) throw e;
    }
  }
}

const inside = (root: string, path: string) => {
  const rel = relative(root, path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
};

/** `target` if it lies strictly below the restore root, also after following links. */
export async function allowedTarget(root: string | undefined, target: string): Promise<string> {
  if (!root) throw refused("this agent accepts no restores: it was started without --restore-root");
  if (!isAbsolute(target)) throw refused(`the target ${target} is not an absolute path`);
  const realRoot = await realpath(root).catch(() => {
    throw refused(`the agent's restore root ${root} does not exist`);
  });
  const wanted = resolve(target);
  if (!inside(resolve(root), wanted))
    throw refused(`the target ${wanted} is not below the agent's restore root ${root}`);
  // Links must not lead out: the target itself if it exists, else its nearest existing parent.
  let real: string;
  try {
    real = await realpath(wanted);
    if (!inside(realRoot, real))
      throw refused(`the target ${wanted} leads outside the restore root (to ${real})`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    real = await realAncestor(dirname(wanted));
    if (real !== realRoot && !inside(realRoot, real))
      throw refused(`the target ${wanted} leads outside the restore root (through ${real})`);
  }
  return wanted;
}

export async function restoreOnNode(
  r: RestoreRequest,
  frames: AsyncGenerator<Frame>,
  out: FrameWriter,
  o: { root: string | undefined; signal: AbortSignal },
): Promise<RestoreResult> {
  const targetDir = await allowedTarget(o.root, r.targetDir);
  if (r.chain.some((m) => m.type === "logical"))
    throw new StrongboxError(
      "AGENT_PROTOCOL",
      "a logical backup is loaded through the database, not restored by the agent",
    );
  return restorePhysical({
    source: uploadedChain(frames, r.chain),
    chain: r.chain,
    targetDir,
    force: r.force,
    prepare: r.prepare,
    mariabackupPath: r.mariabackupPath,
    signal: o.signal,
    log: (message) => void out.json(FrameType.log, { message }).catch(() => {}),
  });
}

export async function restoreTestOnNode(
  r: RestoreTestRequest,
  frames: AsyncGenerator<Frame>,
  out: FrameWriter,
  o: { root: string | undefined; signal: AbortSignal },
): Promise<RestoreTestResult> {
  if (!o.root) throw refused("this agent accepts no restore-tests: it was started without --restore-root");
  return restoreTest({
    source: uploadedChain(frames, r.chain),
    chain: r.chain,
    details: { inventory: r.inventory },
    scratchRoot: o.root,
    mariabackupPath: r.mariabackupPath,
    assertions: r.assertions,
    rowCountTolerance: r.rowCountTolerance,
    bufferPool: r.bufferPool,
    signal: o.signal,
    log: (message) => void out.json(FrameType.log, { message }).catch(() => {}),
  });
}
