// How commands talk to people and scripts: a command's result is one JSON document with --json, else
// human text on stdout; notes and progress go to stderr so stdout stays parseable. Commands get an
// Output and never write to the process themselves; tests pass a MemoryOutput.
import type { CommandResult } from "./options.ts";
import { Progress } from "./progress.ts";

export interface Output {
  readonly json: boolean;
  /** The command's result: its JSON with --json, else the human rendering (made only then). */
  result(data: unknown, human: () => string): void;
  /** A line on stderr, also with --json (warnings, what was cleaned up). */
  note(message: string): void;
  /** A line on stderr for people only: nothing with --json (step-by-step narration). */
  log(message: string): void;
  /** A progress display, drawn only on a terminal and never with --json. */
  progress(): Progress;
  /** True once a result was written (so an error after it adds no second JSON document). */
  readonly emitted: boolean;
}

interface Sink {
  write(text: string): unknown;
  isTTY?: boolean;
}

export class StreamOutput implements Output {
  readonly json: boolean;
  private wrote = false;
  private readonly stdout: Sink;
  private readonly stderr: Sink;

  constructor(json: boolean, stdout: Sink, stderr: Sink) {
    this.json = json;
    this.stdout = stdout;
    this.stderr = stderr;
  }

  get emitted(): boolean {
    return this.wrote;
  }

  result(data: unknown, human: () => string): void {
    this.wrote = true;
    if (this.json) this.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
    else {
      const text = human();
      if (text) this.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
    }
  }

  note(message: string): void {
    this.stderr.write(`${message}\n`);
  }

  log(message: string): void {
    if (!this.json) this.note(message);
  }

  progress(): Progress {
    return new Progress(!this.json && this.stderr.isTTY === true, (t) => this.stderr.write(t));
  }
}

/**
 * The process's own stdout and stderr. A reader that goes away (`strongbox list | head -1`) is not
 * an error of the command: writes to a closed pipe are dropped instead of crashing the process
 * with an unhandled EPIPE and a stack trace.
 */
export function terminalOutput(json: boolean): Output {
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.listenerCount("error") > 0) continue;
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
    });
  }
  return new StreamOutput(json, process.stdout, process.stderr);
}

/** Collects what a command writes, for tests: results as data, stdout and stderr as text. */
export class MemoryOutput extends StreamOutput {
  readonly results: unknown[] = [];
  stdoutText = "";
  stderrText = "";

  constructor(json = false) {
    const out: Sink = { write: (t: string) => (this.stdoutText += t) };
    const err: Sink = { write: (t: string) => (this.stderrText += t) };
    super(json, out, err);
  }

  override result(data: unknown, human: () => string): void {
    this.results.push(data);
    super.result(data, human);
  }
}

/** Reports a command's result and returns it with its exit status: the last step of most commands. */
export function reply<T>(out: Output, data: T, human: () => string, exitCode = 0): CommandResult<T> {
  out.result(data, human);
  return { exitCode, result: data };
}
