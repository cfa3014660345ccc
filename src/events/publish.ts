import { coordinatorOf } from '../coordinator';
import { structureEvents } from '../db/schema';
import type { RequestScope } from '../lib/request-scope';

/** Lifecycle events are also written to structure_events; chatty ones are broadcast only. */
const RECORDED = new Set([
  'WORKSPACE_PROVISIONING',
  'WORKSPACE_ONLINE',
  'WORKSPACE_OFFLINE',
  'WORKSPACE_DEGRADED',
  'WORKSPACE_PROVISION_FAILED',
  'WORKSPACE_REMOVED',
  'WORKSPACE_PAUSED',
  'WORKSPACE_HIBERNATED',
  'WORKSPACE_AWAITING_AGENT',
  'AGENT_CARD_UPDATED',
  'DELEGATION_COMPLETE',
]);

export type EventMessage = { event: string; workspace_id: string; timestamp: string; payload: Record<string, unknown> };

/**
 * Publishes off the response path. Payloads must carry fixed texts only: subscribers are
 * browsers. A recorded event whose insert fails is not broadcast (the log is the source of truth).
 */
export function publishEvent(scope: RequestScope, event: string, workspaceId: string, payload: Record<string, unknown> = {}): void {
  scope.defer(`publish ${event}`, async () => {
    if (RECORDED.has(event)) {
      await scope.db.insert(structureEvents).values({ eventType: event, workspaceId, payload });
    }
    await broadcastEvent(scope.env, { event, workspace_id: workspaceId, timestamp: new Date().toISOString(), payload });
  });
}

export async function broadcastEvent(env: RequestScope['env'], message: EventMessage): Promise<void> {
  await coordinatorOf(env, message.workspace_id).broadcast(JSON.stringify(message));
}

/** Several events for one workspace's subscribers in one call (a write-behind batch, both rows of an exchange). */
export async function broadcastEvents(env: RequestScope['env'], workspaceId: string, messages: EventMessage[]): Promise<void> {
  if (messages.length === 0) return;
  await coordinatorOf(env, workspaceId).broadcastMany(messages.map((m) => JSON.stringify(m)));
}
