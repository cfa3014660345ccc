import type { ActivityRecord } from './record';

type PendingRow = Pick<ActivityRecord, 'workspaceId' | 'activityType'> & Partial<ActivityRecord> & { id: string };

/**
 * One exchange's rows, as accepted: ids minted on append so a retried flush writes each once.
 * What the rows have in common (both bodies of the exchange, above all) travels once, in `shared`.
 */
export type PendingActivity = { records: PendingRow[]; shared?: Omit<ActivityRecord, 'workspaceId' | 'activityType' | 'id'>; outboundFrom?: string };

/**
 * A PendingActivity as it travels to the writer and sits in its storage: JSON text, made once by
 * the Worker. Structured-cloning the objects instead (for the call, and again for storage) was
 * the largest part of the write-behind's CPU in the bench. Storage written by an older version
 * holds the objects themselves; the flush reads both.
 */
export type WireEntry = string;

export const decode = (entry: WireEntry | PendingActivity): PendingActivity => (typeof entry === 'string' ? (JSON.parse(entry) as PendingActivity) : entry);
export const rowsOf = (entry: PendingActivity): ActivityRecord[] => (entry.shared ? entry.records.map((r) => ({ ...entry.shared, ...r })) : entry.records);

// ---- how the writer keeps entries in its storage -------------------------------------------------

/**
 * Characters per storage value. A SQLite-backed object refuses values over 2 MB (SQLITE_TOOBIG),
 * and an exchange with a 1 MiB request and a 1 MiB answer is larger: its entry is stored in parts
 * of at most 1 MiB (a string is stored as UTF-16 at worst), all written by the same `put` as its
 * manifest, so an entry is in storage whole or not at all.
 */
export const PART_CHARS = 512 * 1024;
/** storage.put, get and delete take at most 128 keys at once. */
export const STORAGE_MAX_KEYS = 128;
export const PENDING_PREFIX = 'pending:';
/** Entries the datastore refuses, set aside (with their parts, which keep their keys) so the feed goes on. */
export const SET_ASIDE_PREFIX = 'refused:';

/** Stands for an entry stored in parts under `part:<its key>:<n>`. */
export type Manifest = { parts: number; chars: number };
export type Stored = WireEntry | PendingActivity | Manifest;

export const isManifest = (value: Stored): value is Manifest => typeof value === 'object' && 'parts' in value;
export const partKey = (key: string, n: number) => `part:${key}:${String(n).padStart(3, '0')}`;
export const partCount = (entry: WireEntry) => Math.ceil(entry.length / PART_CHARS);
export const partKeys = (key: string, parts: number) => (parts > 1 ? Array.from({ length: parts }, (_, n) => partKey(key, n)) : []);

/** What one entry writes: its key's value, and its parts when it is too large for one value. */
export function storedForm(key: string, entry: WireEntry): Record<string, Stored> {
  const parts = partCount(entry);
  if (parts <= 1) return { [key]: entry };
  const stored: Record<string, Stored> = { [key]: { parts, chars: entry.length } satisfies Manifest };
  for (let n = 0; n < parts; n++) stored[partKey(key, n)] = entry.slice(n * PART_CHARS, (n + 1) * PART_CHARS);
  return stored;
}

/** Keys in chunks storage accepts at once. */
export function inChunks<T>(items: T[], size = STORAGE_MAX_KEYS): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}
