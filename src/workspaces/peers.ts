import { and, asc, eq, isNull, ne, or, sql, type SQL } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import { tokenEverIssued } from '../auth/token-store';
import { containsText } from '../db/contains-text';
import { workspaces, type WorkspaceStatus } from '../db/schema';
import { storedJson } from '../db/stored-json';
import type { Db } from '../lib/request-scope';
import { liveWorkspace, mayCommunicate } from './queries';

/** Bounds a peers answer: a flat org with thousands of roots must not become one huge response. */
export const MAX_PEERS = 500;

/** Last write wins: one conditional UPDATE, so a card never lands on a removed workspace. */
export async function storeAgentCard(db: Db, workspaceId: string, card: Record<string, unknown>): Promise<boolean> {
  const rows = await db
    .update(workspaces)
    .set({ agentCard: card, updatedAt: sql`now()` })
    .where(and(eq(workspaces.id, workspaceId), liveWorkspace()))
    .returning({ id: workspaces.id });
  return rows.length > 0;
}

export type DiscoveredRow = { id: string; name: string; status: WorkspaceStatus };

/**
 * The target as `callerId` may see it, or undefined when it is unknown, removed or out of the
 * caller's reach: the three look the same. `null` caller: an operator, who may see any workspace.
 */
export async function discoverPeer(db: Db, callerId: string | null, targetId: string): Promise<DiscoveredRow | undefined> {
  if (callerId !== null && !(await mayCommunicate(db, callerId, targetId))) return undefined;
  const [row] = await db
    .select({ id: workspaces.id, name: workspaces.name, status: workspaces.status })
    .from(workspaces)
    .where(and(eq(workspaces.id, targetId), liveWorkspace(), callerId !== null ? tokenEverIssued(workspaces.id) : undefined));
  return row;
}

export type PeerRow = {
  id: string;
  name: string;
  role: string | null;
  tier: number;
  status: WorkspaceStatus;
  parent_id: string | null;
  active_tasks: number;
  agent_card: unknown;
};

/**
 * The live workspaces adjacent to `workspaceId` that the hierarchy rule lets it address: its
 * siblings (every other root, for a root), then its children, then its parent. One statement;
 * `q` is a case-insensitive substring of the name or role.
 */
export async function listPeers(db: Db, workspaceId: string, q: string | undefined): Promise<PeerRow[]> {
  const me = alias(workspaces, 'me');
  const sibling = or(eq(workspaces.parentId, me.parentId), and(isNull(me.parentId), isNull(workspaces.parentId)));
  const filters: SQL[] = [liveWorkspace(), tokenEverIssued(workspaces.id), ne(workspaces.id, me.id), or(sibling, eq(workspaces.parentId, me.id), eq(workspaces.id, me.parentId))!];
  if (q) filters.push(or(containsText(workspaces.name, q), containsText(workspaces.role, q))!);
  return db
    .select({
      id: workspaces.id,
      name: workspaces.name,
      role: sql<string | null>`nullif(${workspaces.role}, '')`,
      tier: workspaces.tier,
      status: workspaces.status,
      parent_id: workspaces.parentId,
      active_tasks: workspaces.activeTasks,
      agent_card: storedJson(workspaces.agentCard),
    })
    .from(workspaces)
    .innerJoin(me, and(eq(me.id, workspaceId), liveWorkspace(me)))
    .where(and(...filters))
    .orderBy(sql`CASE WHEN ${workspaces.id} = ${me.parentId} THEN 2 WHEN ${workspaces.parentId} = ${me.id} THEN 1 ELSE 0 END`, asc(workspaces.name), asc(workspaces.id))
    .limit(MAX_PEERS);
}


/** A2A card fields that name the agent's endpoint (v0.2/v0.3 `url`, `additionalInterfaces`; v1 `supportedInterfaces`). */
const INTERFACE_LISTS = ['additionalInterfaces', 'supportedInterfaces'] as const;

/**
 * A card as peers see it: the agent wrote its own (private) address into it, so every endpoint
 * field becomes the proxy URL. Anything that is not a JSON object is not a card: null.
 */
export function publicAgentCard(card: unknown, proxyUrl: string): Record<string, unknown> | null {
  if (!isObject(card)) return null;
  const out: Record<string, unknown> = { ...card };
  if ('url' in out) out.url = proxyUrl;
  for (const key of INTERFACE_LISTS) {
    const list = out[key];
    if (Array.isArray(list)) out[key] = list.map((entry) => (isObject(entry) && 'url' in entry ? { ...entry, url: proxyUrl } : entry));
  }
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
