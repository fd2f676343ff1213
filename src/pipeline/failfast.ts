// Runs the tasks of a multi-process pipeline together: the first failure stops all of them and is
// the one reported (later failures are its consequences, e.g. EPIPE after we stopped a child).
export async function allOrFirstError<T extends readonly unknown[]>(
  tasks: { [K in keyof T]: Promise<T[K]> },
  stop: () => Promise<void>,
  signal?: AbortSignal,
): Promise<T> {
  let first: { error: unknown } | undefined;
  const guarded = (tasks as readonly Promise<unknown>[]).map((t) =>
    t.catch(async (e: unknown) => {
      first ??= { error: e };
      await stop();
      throw e;
    }),
  );
  const results = await Promise.allSettled(guarded);
  if (first) throw signal?.aborted ? (signal.reason ?? first.error) : first.error;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
