/** Bounded concurrency over a list, for pipelines that must not open unbounded requests. */

/**
 * Runs `fn` over `items`, at most `limit` at a time; results in input order.
 * The first failure stops starting new work; the promise settles only once
 * the work already in flight has settled too, then rejects with that first
 * failure. So a caller that cleans up on failure (removes a directory, closes
 * handles) never races work still writing.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (e) {
        failure ??= { error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return out;
}

/** mapLimit without results. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  await mapLimit(items, limit, fn);
}
