// The stall watchdog: a child whose output stops moving is not making progress, however long its
// time limit is. It polls a progress counter; when the counter has not changed for `timeoutMs`,
// `stalled` rejects with the error made by `onStall` (and the caller stops the pipeline).

export interface StallWatch {
  /** Rejects on a stall; resolves once stop() is called. */
  stalled: Promise<void>;
  /** Tells the watchdog that progress was made (for counters pushed rather than polled). */
  touch(): void;
  stop(): void;
}

export function watchStall(
  o: { timeoutMs: number; progress?: () => number | undefined; onStall: (idleMs: number) => Error },
  now: () => number = Date.now,
): StallWatch {
  let last: number | undefined;
  let lastChange = now();
  let settle: { resolve: () => void; reject: (e: Error) => void } | undefined;
  const stalled = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // Check often enough that a stall is caught within a quarter of the limit past it.
  const timer = setInterval(
    () => {
      const value = o.progress?.();
      if (value !== undefined && value !== last) {
        last = value;
        lastChange = now();
        return;
      }
      const idle = now() - lastChange;
      if (idle >= o.timeoutMs) {
        clearInterval(timer);
        settle?.reject(o.onStall(idle));
        settle = undefined;
      }
    },
    Math.max(50, Math.min(1000, Math.floor(o.timeoutMs / 4))),
  );
  timer.unref();
  return {
    stalled,
    touch: () => {
      lastChange = now();
    },
    stop: () => {
      clearInterval(timer);
      settle?.resolve();
      settle = undefined;
    },
  };
}
