/**
 * A Catalog whose getDatabase() answers from memory for a while. Database
 * registrations (kind, segment size) do not change once written, and every
 * ingest step and every push asks for them; caching positive answers saves a
 * round trip per step. Unknown ids are always asked again.
 */
import type { DatabaseRecord } from "../core/schemas.js";
import type { Catalog } from "./catalog.js";

export function withDatabaseCache(catalog: Catalog, ttlMs = 60_000): Catalog {
  const cache = new Map<string, { record: DatabaseRecord; until: number }>();
  return new Proxy(catalog, {
    get(target, prop, receiver) {
      if (prop === "getDatabase") {
        return async (id: string): Promise<DatabaseRecord | undefined> => {
          const hit = cache.get(id);
          if (hit && hit.until > Date.now()) return hit.record;
          const record = await target.getDatabase(id);
          if (record) cache.set(id, { record, until: Date.now() + ttlMs });
          return record;
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
