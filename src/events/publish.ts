import { coordinatorOf } from '../coordinator';
import { structureEvents } from '../db/schema';
import type { RequestScope } from '../lib/request-scope';
import { eventHub } from './hub';

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

/**
 * An event as it travels to the Durable Objects: serialised once, here (the hub filters on the two
 * fields and sends `data` as is), so a batch is never cloned or stringified again per audience.
 */
export type SerializedEvent = { event: string; workspace_id: string; data: string };
const serialized = (m: EventMessage): SerializedEvent => ({ event: m.event, workspace_id: m.workspace_id, data: JSON.stringify(m) });

export async function broadcastEvent(env: RequestScope['env'], message: EventMessage): Promise<void> {
  const event = serialized(message);
  await settleAll([coordinatorOf(env, message.workspace_id).broadcast(event.data), eventHub(env).publish([event])]);
}

/** Several events for one workspace's subscribers in one call (a write-behind batch, both rows of an exchange). */
export async function broadcastEvents(env: RequestScope['env'], workspaceId: string, messages: EventMessage[]): Promise<void> {
  if (messages.length === 0) return;
  const events = messages.map(serialized);
  await settleAll([coordinatorOf(env, workspaceId).broadcastMany(events.map((e) => e.data)), eventHub(env).publish(events)]);
}

/**
 * A batch spanning workspaces (a write-behind flush): one call per workspace's own subscribers,
 * and ONE call to the tenant hub for the whole batch, whatever its size or subscriber count.
 */
export async function broadcastBatch(env: RequestScope['env'], messages: EventMessage[]): Promise<void> {
  if (messages.length === 0) return;
  const events = messages.map(serialized);
  const byWorkspace = new Map<string, string[]>();
  for (const e of events) {
    const list = byWorkspace.get(e.workspace_id);
    if (list) list.push(e.data);
    else byWorkspace.set(e.workspace_id, [e.data]);
  }
  const coordinators = [...byWorkspace].map(([id, data]) => coordinatorOf(env, id).broadcastMany(data));
  await settleAll([...coordinators, eventHub(env).publish(events)]);
}

/** Every audience gets its copy even when another's call fails; the first failure is then reported. */
async function settleAll(calls: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(calls)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}
