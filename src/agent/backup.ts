// The agent's backup: mariabackup as the node's own OS account with the node's my.cnf, zstd, the
// stream cut into parts and each encrypted with age to the recipients the backup host sent. Only
// ciphertext leaves the node; the backup host hashes, stores and commits.
//
// When the native sealer is built and the agent's stdout is a file descriptor (it is, under sshd),
// zstd's output goes into the sealer and the sealer writes the parts' frames straight into the SSH
// channel: the compressed stream never crosses Node on the node either. Else Node seals them.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { parseRecipient } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import { readPhysicalPosition, startMariabackup } from "../mariadb/backup-tools.ts";
import { zstdCompress } from "../pipeline/compress.ts";
import { allOrFirstError } from "../pipeline/failfast.ts";
import { type PartRecord, writeParts } from "../pipeline/parts.ts";
import { framesOnly, nativeSealer, sealParts } from "../pipeline/seal.ts";
import { FrameType, type FrameWriter } from "../protocol/frames.ts";
import type { BackupRequest, BackupResult } from "../protocol/messages.ts";
import type { Storage } from "../storage/types.ts";
import { privateTempDir } from "../util/optionfile.ts";
import { terminate } from "../util/proc.ts";

/** A Storage whose puts go out as frames, one part after the other. */
function frameSink(out: FrameWriter): Pick<Storage, "put"> {
  let index = 0;
  return {
    async put(_key, data) {
      const n = index++;
      await out.json(FrameType.partStart, { index: n });
      let size = 0;
      for await (const chunk of data as AsyncIterable<Buffer>) {
        size += chunk.length;
        await out.write(FrameType.data, chunk);
      }
      return { size };
    },
  };
}

/** Resolves once everything written to `out` so far has gone to its file descriptor. */
async function flushed(out: Writable): Promise<void> {
  while (out.writableLength > 0 && !out.destroyed) await new Promise((resolve) => setTimeout(resolve, 2));
}

export interface NodeOutput {
  frames: FrameWriter;
  /** The stream under `frames`, and its file descriptor when it has one (the agent's stdout). */
  stream?: Writable;
  fd?: number;
}

export async function backupOnNode(
  r: BackupRequest,
  output: NodeOutput,
  signal: AbortSignal,
  log?: (message: string) => void,
): Promise<BackupResult> {
  const out = output.frames;
  const recipients = r.recipients.map((text) => parseRecipient(text));
  if (recipients.length === 0)
    throw new StrongboxError("NO_RECIPIENTS", "the backup host sent no recipients");
  const work = await privateTempDir("strongbox-agent-");
  try {
    let ca: string | undefined;
    if (r.tlsCaPem) {
      ca = join(work.path, "ca.pem");
      await writeFile(ca, r.tlsCaPem, { mode: 0o600, flag: "wx" });
    }
    const tool = await startMariabackup({
      path: r.mariabackupPath,
      node: r.node,
      creds: r.creds,
      ...(ca ? { tls: { ca } } : {}),
      workDir: work.path,
      parallel: r.parallel,
      ...(r.incrementalLsn !== undefined ? { incrementalLsn: r.incrementalLsn } : {}),
      ...(r.account ? { account: r.account } : {}),
    });
    log?.(`agent: mariabackup started on ${r.node.name}`);
    const zstd = zstdCompress(r.compressionLevel, r.compressionThreads, tool.child.stdout!);
    tool.child.stdout!.destroy();
    const sealer = output.fd !== undefined && output.stream ? nativeSealer() : undefined;
    let parts: Promise<PartRecord[]>;
    if (sealer && output.stream && output.fd !== undefined) {
      // From here until the sealer exits, only the sealer writes to the channel.
      await flushed(output.stream);
      const sealing = sealParts(zstd.child.stdout!, {
        sealer,
        files: framesOnly,
        framesFd: output.fd,
        keyFor: (i) => `part-${i}`,
        partSize: r.partSize,
        recipients,
        signal,
      });
      zstd.child.stdout!.destroy();
      parts = sealing.parts;
    } else {
      const sink = frameSink(out);
      parts = writeParts(zstd.child.stdout!, {
        storage: sink,
        keyFor: (i) => `part-${i}`,
        partSize: r.partSize,
        recipients,
        maxInFlight: 1,
        signal,
        onPart: (p) => void out.json(FrameType.partEnd, { index: p.index, plainSize: p.plainSize }),
      });
    }
    // A failure stops mariabackup and zstd; the sealer then sees its input end and finishes the
    // frame it writes, so the error frame that follows starts on a frame boundary. Only the backup
    // host going away (the signal) kills the sealer.
    const stop = async () => {
      await Promise.all([terminate(tool.child, 3000), terminate(zstd.child, 3000)]);
    };
    const onAbort = () => void stop();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await allOrFirstError([tool.done, zstd.done, parts], stop, signal);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    const position = await readPhysicalPosition(tool.lsnDir, tool.stderr.text());
    return { rawBytes: await zstd.totalIn, position };
  } finally {
    await work.remove().catch(() => {});
  }
}
