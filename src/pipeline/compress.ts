// zstd compression in a child process: multi-threaded and off our event loop. Node's built-in zstd
// is single-threaded (and crashes with nbWorkers > 0), about half as fast on this kind of machine.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { StrongboxError } from "../errors.ts";
import { TailBuffer } from "../util/proc.ts";

export interface Codec {
  child: ChildProcess;
  /** Resolves when the child has exited successfully; rejects with its stderr tail otherwise. */
  done: Promise<void>;
}

function supervise(child: ChildProcess, label: string): Promise<void> {
  const tail = new TailBuffer();
  child.stderr?.on("data", (c: Buffer) => tail.push(c));
  return new Promise((resolve, reject) => {
    child.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        new StrongboxError(
          "CHILD_NOT_FOUND",
          `${label}: ${e.code === "ENOENT" ? "command not found" : e.message}`,
          {
            hint: "install the zstd package (apt-get install -y zstd)",
            stage: label,
            cause: e,
          },
        ),
      ),
    );
    child.once("close", (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new StrongboxError(
            "CHILD_FAILED",
            `${label} ${code === null ? `killed by ${signal}` : `exited with code ${code}`}: ${tail.lastLines() || "(no output)"}`,
            {
              stage: label,
            },
          ),
        );
    });
  });
}

export interface Compressor extends Codec {
  /** Bytes zstd has read so far (Linux /proc; for progress), or undefined when unknown. */
  bytesRead(): number | undefined;
  /** Exact bytes zstd read, from its closing report; resolves after `done`. */
  totalIn: Promise<number>;
}

/**
 * zstd as a child. With `input`, zstd reads straight from that stream's file descriptor (another
 * child's stdout): the raw stream never passes through this process. Its exact size comes from
 * zstd's own closing report (-vv prints "N B => M B").
 */
export function zstdCompress(level: number, threads: number, input?: Readable): Compressor {
  const child = spawn("zstd", [`-${level}`, `-T${threads}`, "-vv", "-c", "--no-progress"], {
    stdio: [input ?? "pipe", "pipe", "pipe"],
  });
  let report = "";
  child.stderr?.on("data", (c: Buffer) => {
    report = (report + c.toString("latin1")).slice(-4096);
  });
  const done = supervise(child, "zstd");
  const totalIn = done.then(() => {
    const m = /\((\d+) B => (\d+) B/.exec(report);
    if (!m) throw new StrongboxError("ZSTD_REPORT", "zstd did not report how many bytes it read");
    return Number(m[1]);
  });
  totalIn.catch(() => {});
  const bytesRead = () => {
    try {
      const io = readFileSync(`/proc/${child.pid}/io`, "latin1");
      return Number(/^rchar: (\d+)/m.exec(io)?.[1]);
    } catch {
      return undefined;
    }
  };
  return { child, done, totalIn, bytesRead };
}

/**
 * zstd -d as a child; with `outputFd` it writes there (the FIFO the unpack worker reads), else to a
 * pipe; with `inputFd` it reads from there (the native opener's FIFO), else from a pipe.
 */
export function zstdDecompress(outputFd?: number, inputFd?: number): Codec {
  const child = spawn("zstd", ["-d", "-q", "-c", "--no-progress"], {
    stdio: [inputFd ?? "pipe", outputFd ?? "pipe", "pipe"],
  });
  return { child, done: supervise(child, "zstd -d") };
}
