// How commands talk to people and scripts: human text on a terminal, JSON with --json.
export interface OutputOptions {
  json: boolean;
}

let emitted = false;

/** True once a command has written its result (so an error after it adds no second JSON document). */
export function resultEmitted(): boolean {
  return emitted;
}

export function emit(options: OutputOptions, data: unknown, human: () => string): void {
  emitted = true;
  if (options.json) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else {
    const text = human();
    if (text) process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  }
}

/** Progress and notes go to stderr so stdout stays parseable. */
export function note(message: string): void {
  process.stderr.write(`${message}\n`);
}

export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
