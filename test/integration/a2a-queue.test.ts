import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from 'cloudflare:test';
import worker from '../../src/index';
import { describe, expect, it } from 'vitest';
import { DRAIN_MAX_ITEMS_PER_RUN } from '../../src/a2a/queue-drain';
import { ADMIN, call, callJson, loopback, registeredAgent, sql, waitFor } from '../support/api';

const message = (extraParams: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id: 'q-1',
  method: 'message/send',
  params: { message: { role: 'user', messageId: crypto.randomUUID(), parts: [{ kind: 'text', text: 'queued work' }] }, ...extraParams },
});

/** A busy target (its agent drops connections) with one queued item from `caller`. */
async function queuedItem(extraParams: Record<string, unknown> = {}) {
  const name = crypto.randomUUID().slice(0, 8);
  const caller = await registeredAgent({ mode: 'poll' });
  const target = await registeredAgent({ url: loopback(`/agent/reset/${name}`) });
  const res = await callJson('POST', `/workspaces/${target.id}/a2a`, { token: caller.token, body: message(extraParams) });
  expect(res.status).toBe(202);
  return { caller, target, name, queueId: res.body.queue_id as string };
}

describe('GET /workspaces/:id/a2a/queue/:queue_id', () => {
  it('visible to the caller, the target and operators', async () => {
    const { caller, target, queueId } = await queuedItem();
    for (const token of [caller.token, target.token, ADMIN]) {
      const res = await callJson('GET', `/workspaces/${target.id}/a2a/queue/${queueId}`, { token });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ queue_id: queueId, status: 'queued', attempts: 0, last_error: null, caller_id: caller.id, expires_at: null, expired: false });
      expect(res.body.enqueued_at).toBeTruthy();
    }
  });

  it('everyone else gets the same 404 (existence is not leaked)', async () => {
    const { target, queueId } = await queuedItem();
    const stranger = await registeredAgent({ mode: 'poll' });
    const bodies = [];
    for (const [path, token] of [
      [`/workspaces/${target.id}/a2a/queue/${queueId}`, undefined],
      [`/workspaces/${target.id}/a2a/queue/${queueId}`, 'mws_garbage'],
      [`/workspaces/${target.id}/a2a/queue/${queueId}`, stranger.token],
      [`/workspaces/${stranger.id}/a2a/queue/${queueId}`, stranger.token],
      [`/workspaces/${target.id}/a2a/queue/${crypto.randomUUID()}`, target.token],
      [`/workspaces/${target.id}/a2a/queue/not-a-uuid`, target.token],
    ] as const) {
      const res = await callJson('GET', path, { token });
      expect(res.status, `${path} ${token}`).toBe(404);
      bodies.push(JSON.stringify(res.body));
    }
    expect(new Set(bodies).size).toBe(1);
  });

  it('expires_in_seconds sets a TTL; an expired item is reported and never dispatched', async () => {
    const { target, queueId } = await queuedItem({ expires_in_seconds: 60 });
    const [row] = await sql(`SELECT expires_at - enqueued_at AS ttl FROM a2a_queue WHERE id = $1`, [queueId]);
    expect(row.ttl).toMatchObject({ minutes: 1 });
    await sql(`UPDATE a2a_queue SET expires_at = now() - interval '1 second' WHERE id = $1`, [queueId]);
    await sql(`UPDATE workspaces SET url = $2 WHERE id = $1`, [target.id, loopback('/agent/echo/expired')]);
    await call('POST', '/registry/heartbeat', { token: target.token, body: { workspace_id: target.id, active_tasks: 0 } });
    await new Promise((r) => setTimeout(r, 500));
    const res = await callJson('GET', `/workspaces/${target.id}/a2a/queue/${queueId}`, { token: ADMIN });
    expect(res.body).toMatchObject({ status: 'queued', attempts: 0, expired: true });
  });
});

describe('drain on heartbeat', () => {
  it('a heartbeat with spare capacity delivers the item; status shows the response body', async () => {
    const { caller, target, queueId } = await queuedItem();
    const echo = crypto.randomUUID().slice(0, 8);
    await sql(`UPDATE workspaces SET url = $2 WHERE id = $1`, [target.id, loopback(`/agent/echo/${echo}`)]);
    // A busy heartbeat drains nothing.
    await call('POST', '/registry/heartbeat', { token: target.token, body: { workspace_id: target.id, active_tasks: 1 } });
    await new Promise((r) => setTimeout(r, 300));
    expect((await sql('SELECT status FROM a2a_queue WHERE id = $1', [queueId]))[0].status).toBe('queued');

    await call('POST', '/registry/heartbeat', { token: target.token, body: { workspace_id: target.id, active_tasks: 0 } });
    const done = await waitFor(async () => {
      const res = await callJson('GET', `/workspaces/${target.id}/a2a/queue/${queueId}`, { token: caller.token });
      return res.body.status === 'completed' && res.body;
    });
    expect(done).toMatchObject({ attempts: 1, response_status: 200 });
    expect(done.response_body.result.echoed.params.message.parts[0].text).toBe('queued work');
    const delivered = await waitFor(async () => (await sql(`SELECT summary FROM activity_logs WHERE workspace_id = $1 AND summary LIKE '%delivered from queue%'`, [target.id]))[0]);
    expect(delivered.summary).toContain('delivered from queue');
  });

  it('failures are counted with a fixed reason; after 5 attempts the item is failed', async () => {
    const { target, queueId } = await queuedItem();
    await sql(`UPDATE workspaces SET url = 'http://127.0.0.1:1/' WHERE id = $1`, [target.id]);
    for (let i = 1; i <= 5; i++) {
      await call('POST', '/registry/heartbeat', { token: target.token, body: { workspace_id: target.id, active_tasks: 0 } });
      await waitFor(async () => (await sql('SELECT attempts FROM a2a_queue WHERE id = $1 AND dispatched_at IS NULL', [queueId]))[0]?.attempts === i);
    }
    const [row] = await sql('SELECT status, attempts, last_error FROM a2a_queue WHERE id = $1', [queueId]);
    expect(row).toEqual({ status: 'failed', attempts: 5, last_error: 'agent unreachable' });
  });

  it('a retried send with the same messageId is the same queue item', async () => {
    const name = crypto.randomUUID().slice(0, 8);
    const caller = await registeredAgent({ mode: 'poll' });
    const target = await registeredAgent({ url: loopback(`/agent/reset/${name}`) });
    const body = message();
    const first = await callJson('POST', `/workspaces/${target.id}/a2a`, { token: caller.token, body });
    const second = await callJson('POST', `/workspaces/${target.id}/a2a`, { token: caller.token, body });
    expect(second.body.queue_id).toBe(first.body.queue_id);
    expect((await sql('SELECT count(*)::int AS n FROM a2a_queue WHERE workspace_id = $1', [target.id]))[0].n).toBe(1);
  });
});

describe('cron sweeper', () => {
  it('requeues items whose drain died mid-dispatch', async () => {
    const { queueId } = await queuedItem();
    await sql(`UPDATE a2a_queue SET status = 'dispatched', attempts = 1, dispatched_at = now() - interval '40 minutes' WHERE id = $1`, [queueId]);
    const fresh = await queuedItem();
    await sql(`UPDATE a2a_queue SET status = 'dispatched', attempts = 1, dispatched_at = now() - interval '1 minute' WHERE id = $1`, [fresh.queueId]);
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: '* * * * *' }), env, ctx);
    await waitOnExecutionContext(ctx);
    const [row] = await sql('SELECT status, attempts, last_error, dispatched_at FROM a2a_queue WHERE id = $1', [queueId]);
    expect(row).toEqual({ status: 'queued', attempts: 1, last_error: 'dispatch interrupted', dispatched_at: null });
    expect((await sql('SELECT status FROM a2a_queue WHERE id = $1', [fresh.queueId]))[0].status).toBe('dispatched');
  });
});

/** A target whose agent drops connections, with `n` items queued through the proxy's busy path. */
async function busyTargetWithQueue(n: number) {
  const name = crypto.randomUUID().slice(0, 8);
  const caller = await registeredAgent({ mode: 'poll' });
  const target = await registeredAgent({ url: loopback(`/agent/reset/${name}`) });
  const ids: string[] = [];
  for (let sent = 0; sent < n; sent += 16) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(16, n - sent) }, () => callJson('POST', `/workspaces/${target.id}/a2a`, { token: caller.token, body: message() })),
    );
    for (const res of batch) {
      expect(res.status).toBe(202);
      ids.push(res.body.queue_id);
    }
  }
  return { caller, target, ids };
}

/** `n` items straight into the queue (for volumes the proxy's busy path would make slow). */
async function insertQueued(workspaceId: string, n: number) {
  await sql(
    `INSERT INTO a2a_queue (workspace_id, method, body)
     SELECT $1, 'message/send', jsonb_build_object('jsonrpc', '2.0', 'id', g, 'method', 'message/send',
       'params', jsonb_build_object('message', jsonb_build_object('role', 'user', 'messageId', gen_random_uuid()::text,
         'parts', jsonb_build_array(jsonb_build_object('kind', 'text', 'text', 'bulk')))))
       FROM generate_series(1, $2::int) g`,
    [workspaceId, n],
  );
}

async function heartbeat(target: { id: string; token: string }, activeTasks = 0) {
  const res = await call('POST', '/registry/heartbeat', { token: target.token, body: { workspace_id: target.id, active_tasks: activeTasks } });
  expect(res.status).toBe(200);
}

/** The agent comes back at `path` (re-registering, as a restarted agent does) and heartbeats once. */
async function recoverAndHeartbeat(target: { id: string; token: string }, path: string, activeTasks = 0) {
  const reg = await call('POST', '/registry/register', { token: target.token, body: { id: target.id, agent_card: { name: 'test-agent' }, url: loopback(path) } });
  expect(reg.status).toBe(200);
  await heartbeat(target, activeTasks);
}

const countQueue = async (workspaceId: string, status: string) =>
  (await sql(`SELECT count(*)::int AS n FROM a2a_queue WHERE workspace_id = $1 AND status = $2`, [workspaceId, status]))[0].n as number;
const countDeliveredActivity = async (workspaceId: string) =>
  (await sql(`SELECT count(*)::int AS n FROM activity_logs WHERE workspace_id = $1 AND activity_type = 'a2a_receive' AND summary LIKE '%(delivered from queue)'`, [workspaceId]))[0]
    .n as number;
/** Waits for `n` completed items; on timeout the assertion says how many there were. */
async function expectCompleted(workspaceId: string, n: number, timeoutMs: number) {
  await waitFor(async () => (await countQueue(workspaceId, 'completed')) >= n, timeoutMs).catch(() => undefined);
  expect(await countQueue(workspaceId, 'completed')).toBe(n);
}
const receivedBy = async (name: string) => (await (await fetch(loopback(`/_received/${name}`))).json()) as { body: string }[];
const inFlightAt = async (name: string) => (await (await fetch(loopback(`/_inflight/${name}`))).json()) as { now: number; peak: number };
const agentName = () => crypto.randomUUID().slice(0, 8);

describe('a drain run empties the queue', () => {
  it('64 queued items, one heartbeat: all delivered, one activity row each', async () => {
    const { target } = await busyTargetWithQueue(64);
    const echo = agentName();
    await recoverAndHeartbeat(target, `/agent/echo/${echo}`);
    await expectCompleted(target.id, 64, 20_000);
    await waitFor(async () => (await countDeliveredActivity(target.id)) === 64, 5_000);
    const rows = await sql(`SELECT status, attempts, response_status FROM a2a_queue WHERE workspace_id = $1`, [target.id]);
    expect(rows).toHaveLength(64);
    expect(rows.every((r) => r.status === 'completed' && r.attempts === 1 && r.response_status === 200)).toBe(true);
    // Exactly once each: no item was delivered twice within the run.
    const ids = (await receivedBy(echo)).map((r) => JSON.parse(r.body).params.message.messageId);
    expect(ids).toHaveLength(64);
    expect(new Set(ids).size).toBe(64);
  });

  it('items beyond one run’s budget are delivered by the re-armed alarm, with no further heartbeat', async () => {
    const echo = agentName();
    const target = await registeredAgent({ url: loopback(`/agent/echo/${echo}`) });
    const total = DRAIN_MAX_ITEMS_PER_RUN + 30;
    await insertQueued(target.id, total);
    await heartbeat(target);
    await expectCompleted(target.id, total, 20_000);
    expect(await receivedBy(echo)).toHaveLength(total);
  });

  it('honours max_concurrent_tasks: never more requests in flight than the spare capacity', async () => {
    const { target } = await busyTargetWithQueue(8);
    expect((await call('PATCH', `/workspaces/${target.id}`, { token: ADMIN, body: { max_concurrent_tasks: 2 } })).status).toBe(200);
    const slow = agentName();
    await recoverAndHeartbeat(target, `/agent/slow/50/${slow}`);
    await expectCompleted(target.id, 8, 10_000);
    // Exactly 2: concurrent (the drain is not sequential), and never above the limit.
    expect(await inFlightAt(slow)).toEqual({ now: 0, peak: 2 });
  });

  it('heartbeats during a run fold into it: one run at a time, and items queued meanwhile are delivered', async () => {
    const { target } = await busyTargetWithQueue(4);
    const slow = agentName();
    await recoverAndHeartbeat(target, `/agent/slow/100/${slow}`);
    await waitFor(async () => (await receivedBy(slow)).length > 0);
    await insertQueued(target.id, 4);
    for (let i = 0; i < 5; i++) await heartbeat(target);
    await expectCompleted(target.id, 8, 10_000);
    // max_concurrent_tasks is 1: a second run alongside the first would have shown as 2.
    expect(await inFlightAt(slow)).toEqual({ now: 0, peak: 1 });
    expect(await receivedBy(slow)).toHaveLength(8);
  });

  it('spare capacity is max_concurrent_tasks minus the reported active tasks', async () => {
    const { target } = await busyTargetWithQueue(4);
    await sql(`UPDATE workspaces SET max_concurrent_tasks = 3 WHERE id = $1`, [target.id]);
    const slow = agentName();
    await recoverAndHeartbeat(target, `/agent/slow/50/${slow}`, 2);
    await expectCompleted(target.id, 4, 10_000);
    expect(await inFlightAt(slow)).toEqual({ now: 0, peak: 1 });
  });

  it('an agent busy again mid-drain stops the run; the rest stay queued, no attempt spent on the bounced item', async () => {
    const { target } = await busyTargetWithQueue(10);
    const agent = agentName();
    await recoverAndHeartbeat(target, `/agent/echo-then-reset/3/${agent}`);
    await waitFor(async () => (await sql(`SELECT 1 FROM a2a_queue WHERE workspace_id = $1 AND last_error = 'agent busy'`, [target.id]))[0], 10_000);
    // Nothing more happens after the bounce: the run has stopped.
    await new Promise((r) => setTimeout(r, 500));
    expect(await receivedBy(agent)).toHaveLength(4);
    const rows = await sql(`SELECT status, attempts, last_error FROM a2a_queue WHERE workspace_id = $1 ORDER BY status, last_error NULLS LAST`, [target.id]);
    expect(rows).toEqual([
      ...Array.from({ length: 3 }, () => ({ status: 'completed', attempts: 1, last_error: null })),
      { status: 'queued', attempts: 0, last_error: 'agent busy' },
      ...Array.from({ length: 6 }, () => ({ status: 'queued', attempts: 0, last_error: null })),
    ]);
  });

  it('an item the agent rejects (4xx) is tried once per run and the run goes on', async () => {
    const { target } = await busyTargetWithQueue(5);
    const agent = agentName();
    await recoverAndHeartbeat(target, `/agent/status/400/${agent}`);
    await waitFor(async () => (await sql(`SELECT count(*)::int AS n FROM a2a_queue WHERE workspace_id = $1 AND attempts = 1 AND dispatched_at IS NULL`, [target.id]))[0].n === 5);
    await new Promise((r) => setTimeout(r, 300));
    expect(await receivedBy(agent)).toHaveLength(5);
    const rows = await sql(`SELECT status, attempts, last_error FROM a2a_queue WHERE workspace_id = $1`, [target.id]);
    expect(rows).toEqual(Array.from({ length: 5 }, () => ({ status: 'queued', attempts: 1, last_error: 'agent answered with an error status' })));
  });

  it('an agent failing as a whole (5xx) stops the run after one attempt', async () => {
    const { target } = await busyTargetWithQueue(5);
    const agent = agentName();
    await recoverAndHeartbeat(target, `/agent/status/500/${agent}`);
    await waitFor(async () => (await sql(`SELECT 1 FROM a2a_queue WHERE workspace_id = $1 AND attempts = 1 AND dispatched_at IS NULL`, [target.id]))[0]);
    await new Promise((r) => setTimeout(r, 300));
    expect(await receivedBy(agent)).toHaveLength(1);
    expect((await sql(`SELECT sum(attempts)::int AS n FROM a2a_queue WHERE workspace_id = $1 AND status = 'queued'`, [target.id]))[0].n).toBe(1);
  });

  it('a response Postgres cannot store: delivered, completed, and recorded without its body', async () => {
    const { target, ids } = await busyTargetWithQueue(4);
    await sql(`UPDATE a2a_queue SET body = jsonb_set(body, '{params,message,parts,0,text}', '"poison"') WHERE id = $1`, [ids[0]]);
    await recoverAndHeartbeat(target, `/agent/unstorable/${agentName()}`);
    await expectCompleted(target.id, 4, 10_000);
    const rows = await sql(`SELECT response_body FROM activity_logs WHERE workspace_id = $1 AND request_body->'params'->'message'->'parts'->0->>'text' = 'poison'`, [target.id]);
    expect(rows).toEqual([{ response_body: null }]);
  });

  it('expired items are never delivered; the live ones around them are', async () => {
    const { target, ids } = await busyTargetWithQueue(6);
    const expired = ids.slice(0, 3);
    await sql(`UPDATE a2a_queue SET expires_at = now() - interval '1 second' WHERE id = ANY($1::uuid[])`, [expired]);
    const expiredMessages = (await sql(`SELECT body->'params'->'message'->>'messageId' AS m FROM a2a_queue WHERE id = ANY($1::uuid[])`, [expired])).map((r) => r.m);
    const echo = agentName();
    await recoverAndHeartbeat(target, `/agent/echo/${echo}`);
    await expectCompleted(target.id, 3, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    const delivered = (await receivedBy(echo)).map((r) => JSON.parse(r.body).params.message.messageId);
    expect(delivered).toHaveLength(3);
    expect(delivered.filter((m) => expiredMessages.includes(m))).toEqual([]);
    const left = await sql(`SELECT status, attempts FROM a2a_queue WHERE id = ANY($1::uuid[])`, [expired]);
    expect(left).toEqual(Array.from({ length: 3 }, () => ({ status: 'queued', attempts: 0 })));
  });
});
