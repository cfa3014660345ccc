import type { RequestScope } from '../lib/request-scope';
import { loadProxyContext, type ProxyContext } from './proxy-context';

/**
 * How long an isolate may answer from a context it read. This is the staleness bound for every
 * write made elsewhere (another isolate, SQL by hand): a revoked token, a budget change, a move
 * in the tree or a new URL is seen by every isolate at most this long after it committed. Writes
 * made through this isolate's query modules take effect at once (`forgetContexts`).
 */
export const CONTEXT_TTL_MS = 5_000;

/** Entries per isolate; the least recently used goes first. A chain is at most 2 × 33 rows. */
export const CONTEXT_CACHE_MAX_ENTRIES = 1_000;

type ContextKey = { targetId: string; headerCaller: string | null; workspaceTokenHash: string | null; orgTokenHash: string | null };
type Entry = { context: ProxyContext; expiresAt: number };

const entries = new Map<string, Entry>();
// Bumped by every invalidation: a load that was in flight across one is not stored, since it may
// have read the row before the write committed.
let generation = 0;
let clockSkewMs = 0;
let maxEntries = CONTEXT_CACHE_MAX_ENTRIES;
let loads = 0;
const now = () => Date.now() + clockSkewMs;

/**
 * The proxy's pre-dispatch context, from this isolate's cache when a live entry exists. The key
 * is every input of the query, so an entry answers only the exact question it was read for (a
 * different bearer hash is a different entry). Only complete answers are kept: an unknown target,
 * an unknown token or an unknown caller is read again next time, so a token minted or a workspace
 * created right after a miss works at once.
 */
export async function cachedProxyContext(scope: RequestScope, key: ContextKey): Promise<ProxyContext> {
  const id = keyOf(key);
  const hit = entries.get(id);
  if (hit && hit.expiresAt > now()) {
    // Re-insertion keeps the Map in least-recently-used order.
    entries.delete(id);
    entries.set(id, hit);
    return hit.context;
  }
  entries.delete(id);
  const startedAt = generation;
  loads++;
  const context = await loadProxyContext(scope, key);
  if (startedAt === generation && isComplete(key, context)) store(id, context);
  return context;
}

/**
 * Drops every entry that mentions one of these workspaces (as target, as the owner of the bearer's
 * token, or anywhere in an ancestor chain, which is what a move or removal changes) or one of these
 * tokens. Callers are the query modules that write what the context holds, AFTER their write has
 * committed: a load running meanwhile is then either discarded (generation) or reads the new row.
 */
export function forgetContexts(what: { workspaceIds?: readonly string[]; tokenIds?: readonly string[] }): void {
  generation++;
  const workspaces = new Set(what.workspaceIds ?? []);
  const tokens = new Set(what.tokenIds ?? []);
  for (const [id, { context }] of entries) {
    if (mentions(context, workspaces, tokens)) entries.delete(id);
  }
}

/** An entry's last_used_at as this isolate just wrote it, so the one-a-minute touch stays one a minute. */
export function noteTokenTouched(context: ProxyContext): void {
  if (context.workspaceToken) context.workspaceToken.last_used_at = new Date(now()).toISOString();
}

function mentions(context: ProxyContext, workspaces: Set<string>, tokens: Set<string>): boolean {
  const { target, workspaceToken, orgToken, chains } = context;
  if (target && workspaces.has(target.id)) return true;
  if (workspaceToken && (workspaces.has(workspaceToken.workspace_id) || tokens.has(workspaceToken.id))) return true;
  if (orgToken && tokens.has(orgToken.id)) return true;
  return chains.some((row) => workspaces.has(row.id));
}

function isComplete(key: ContextKey, context: ProxyContext): boolean {
  if (!context.target) return false;
  if (key.workspaceTokenHash && !context.workspaceToken) return false;
  if (key.orgTokenHash && !context.orgToken) return false;
  if (key.headerCaller && !context.chains.some((row) => row.origin === key.headerCaller)) return false;
  return true;
}

function store(id: string, context: ProxyContext): void {
  entries.set(id, { context, expiresAt: now() + CONTEXT_TTL_MS });
  if (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
}

function keyOf(key: ContextKey): string {
  return [key.targetId, key.headerCaller ?? '', key.workspaceTokenHash ?? '', key.orgTokenHash ?? ''].join('|');
}

/**
 * Test hooks: the test Worker is one isolate, so tests see this module's state. `advanceClock`
 * stands in for waiting out the TTL; `forgetAll` is what a test's direct SQL write does, since
 * it stands for a write this isolate made (tests of other isolates' writes bypass it).
 */
export const contextCacheForTests = {
  loads: () => loads,
  size: () => entries.size,
  advanceClock: (ms: number) => {
    clockSkewMs += ms;
  },
  forgetAll: () => {
    generation++;
    entries.clear();
  },
  /** The size bound, lowered so a test can reach it; undefined restores the real one. */
  limitEntries: (n: number | undefined) => {
    maxEntries = n ?? CONTEXT_CACHE_MAX_ENTRIES;
  },
};
