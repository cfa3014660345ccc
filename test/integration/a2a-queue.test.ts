import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from 'cloudflare:test';
import worker from '../../src/index';
import { describe, expect, it } from 'vitest';
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
