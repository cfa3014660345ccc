import { sql } from 'drizzle-orm';
import { forwardA2A } from '../a2a/proxy';
import { loadProxyContext } from '../a2a/proxy-context';
import type { Bindings } from '../env';
import { RequestScope, type Db } from '../lib/request-scope';
import { workspaceStatus } from '../workspaces/queries';

/**
 * After a restart the agent is told what changed across it (Go restart_context.go, issue #19
 * layer 1): when it restarted, when its previous session was last heard from, and the names (never
 * the values) of the secrets it now has. Snapshotted before the restart, sent once the agent is
 * online again, as one platform message through the proxy pipeline (activity rows like any other).
 */
export type RestartContext = { restartAt: string; prevSessionAt: string | null; envKeys: string[] };

/** How long the agent gets to answer the message; it is sent at most once (no busy re-queue). */
const DELIVERY_DEADLINE_MS = 30_000;

export async function snapshotRestartContext(db: Db, workspaceId: string, lastHeartbeatAt: string | null): Promise<RestartContext> {
  const keys = await db.execute<{ key: string }>(sql`
    SELECT key FROM secrets WHERE workspace_id = ${workspaceId}::uuid
    UNION SELECT key FROM global_secrets
    ORDER BY key`);
  return {
    restartAt: new Date().toISOString(),
    prevSessionAt: lastHeartbeatAt ? new Date(lastHeartbeatAt).toISOString() : null,
    envKeys: keys.rows.map((r) => r.key),
  };
}

/** Go's exact layout (buildRestartContextMessage), so agents prompted for it keep parsing it. */
export function restartContextText(c: RestartContext): string {
  const restartAt = new Date(c.restartAt);
  const lines = ['=== WORKSPACE RESTART CONTEXT ===', `Restart at: ${rfc3339(restartAt)}`];
  if (!c.prevSessionAt) lines.push('Previous session ended: (no prior session on record)');
  else lines.push(`Previous session ended: ${rfc3339(new Date(c.prevSessionAt))} (${humanDuration(restartAt.getTime() - new Date(c.prevSessionAt).getTime())} ago)`);
  lines.push(`Env vars now available: ${c.envKeys.length === 0 ? '(none)' : c.envKeys.join(', ')}`);
  lines.push('=== END RESTART CONTEXT ===');
  return `${lines.join('\n')}\n`;
}

export function restartContextMessage(c: RestartContext) {
  const id = crypto.randomUUID();
  return {
    jsonrpc: '2.0',
    id,
    method: 'message/send',
    params: {
      message: {
        messageId: id,
        role: 'user',
        parts: [{ kind: 'text', text: restartContextText(c) }],
        metadata: { source: 'platform', kind: 'restart_context', layer: 1, restart_context: true },
      },
    },
  };
}

/**
 * One attempt: `waiting` while the agent is not online yet, `done` once the message went out (or
 * failed: it is never retried) or the workspace is gone or stopped.
 */
export async function deliverRestartContext(env: Bindings, workspaceId: string, context: RestartContext): Promise<'waiting' | 'done'> {
  const scope = new RequestScope(env);
  try {
    const status = await workspaceStatus(scope.db, workspaceId);
    if (status === 'provisioning' || status === 'offline') return 'waiting';
    if (status !== 'online' && status !== 'degraded') return 'done';
    const proxy = await loadProxyContext(scope, { targetId: workspaceId, headerCaller: null, workspaceTokenHash: null, orgTokenHash: null });
    await forwardA2A(scope, { target: proxy.target, chains: proxy.chains, callerId: null, body: restartContextMessage(context), deadlineMs: DELIVERY_DEADLINE_MS, atMostOnce: true });
    return 'done';
  } catch (err) {
    console.warn('restart context not delivered', workspaceId, err instanceof Error ? err.message : 'error');
    return 'done';
  } finally {
    await scope.close();
  }
}

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function humanDuration(ms: number): string {
  if (ms <= 0) return '0s';
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
