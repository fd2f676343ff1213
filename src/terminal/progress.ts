// Progress on a terminal: bytes, rate, and an ETA once the total is known.
import { formatBytes } from "../util/size.ts";

export class Progress {
  /** Whether anything is drawn (a terminal): callers skip the work that only feeds the display. */
  readonly enabled: boolean;
  private readonly started = Date.now();
  private lastDraw = 0;
  private drawn = false;
  total: number | undefined;

  private readonly write: (text: string) => void;

  constructor(enabled: boolean, write: (text: string) => void) {
    this.enabled = enabled;
    this.write = write;
  }

  update(bytes: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastDraw < 500) return;
    this.lastDraw = now;
    const secs = (now - this.started) / 1000;
    const rate = bytes / Math.max(secs, 0.001);
    let line = `  ${formatBytes(bytes)} at ${formatBytes(rate)}/s`;
    if (this.total && this.total > bytes) line += `, ~${Math.ceil((this.total - bytes) / rate)} s left`;
    this.write(`\r${line.padEnd(60)}`);
    this.drawn = true;
  }

  note(message: string, show: boolean): void {
    if (!show) return;
    if (this.drawn) this.write("\n");
    this.drawn = false;
    this.write(`${message}\n`);
  }

  done(): void {
    if (this.drawn) this.write("\n");
    this.drawn = false;
  }
}
