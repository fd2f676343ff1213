// zstd compression in a child process: multi-threaded and off our event loop. Node's built-in zstd
// is single-threaded (and crashes with nbWorkers > 0), about half as fast on this kind of machine.
import { type ChildProcess, spawn } from "node:child_process";
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

export function zstdCompress(level: number, threads: number): Codec {
  const child = spawn("zstd", [`-${level}`, `-T${threads}`, "-q", "-c", "--no-progress"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  return { child, done: supervise(child, "zstd") };
}

export function zstdDecompress(): Codec {
  const child = spawn("zstd", ["-d", "-q", "-c", "--no-progress"], { stdio: ["pipe", "pipe", "pipe"] });
  return { child, done: supervise(child, "zstd -d") };
}
