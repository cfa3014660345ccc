// Delegations, as the clients call them (clients-contract.md §3.1 CH-7/CH-8, §3.2 RT-3/RT-7/RT-8/RT-16,
// §3.4 SDK delegate(), §4.13). Each replay sends what the client sends and asserts exactly the
// fields it reads.
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { ADMIN, BASE, call, callJson, loopback, received, registeredAgent, sql, waitFor } from '../support/api';
import { subscribeEvents as subscribe } from '../support/events';

type Agent = { id: string; token: string };

const name = () => crypto.randomUUID().slice(0, 8);
const ORIGIN = { Origin: BASE };

async function sha256Hex(s: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The channel plugin's `check_task_status` (server.ts:970-986): a bare array, the first row with the id. */
async function checkTaskStatus(own: Agent, taskId: string) {
  const res = await callJson('GET', `/workspaces/${own.id}/delegations`, { token: own.token, headers: ORIGIN });
  expect(res.status).toBe(200);
  expect(Array.isArray(res.body)).toBe(true);
  return (res.body as { delegation_id?: string }[]).find((d) => d.delegation_id === taskId) as any;
}

/** The runtime's sync-poll loop (a2a_tools_delegation.py:69-202): the first matching row whose status is terminal. */
async function pollUntilTerminal(src: Agent, delegationId: string, timeoutMs = 10_000) {
  return waitFor(async () => {
    const poll = await callJson('GET', `/workspaces/${src.id}/delegations`, { token: src.token, headers: ORIGIN });
    if (poll.status !== 200 || !Array.isArray(poll.body)) return undefined;
    return poll.body.find((r: any) => r.delegation_id === delegationId && ['completed', 'failed'].includes(String(r.status ?? '').toLowerCase()));
  }, timeoutMs);
}

async function delegationRow(id: string) {
  return (await sql('SELECT * FROM delegations WHERE id = $1', [id]))[0];
}

const countDelegations = async (sourceId: string) =>
  (await sql('SELECT count(*)::int AS n FROM delegations WHERE source_id = $1 OR target_id = $1', [sourceId]))[0].n as number;


const isComplete = (delegationId: string) => (m: any) => m.event === 'DELEGATION_COMPLETE' && m.payload.delegation_id === delegationId;

describe('channel plugin: delegate_task_async + check_task_status (server.ts:930-986)', () => {
  it('push target answers: 202 with delegation_id; the list shows it completed with the answer text', async () => {
    const agent = name();
    const own = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ url: loopback(`/agent/reply/${agent}`) });
    const events = await subscribe(own.id, own.token);
    const task = 'summarise the quarterly numbers';
    const res = await callJson('POST', `/workspaces/${own.id}/delegate`, {
      token: own.token,
      headers: ORIGIN,
      body: { target_id: peer.id, task, idempotency_key: (await sha256Hex(`${peer.id}:${task}`)).slice(0, 32) },
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ delegation_id: expect.any(String), status: 'pending', target_id: peer.id });
    const taskId = res.body.delegation_id as string;

    const done = await waitFor(async () => {
      const match = await checkTaskStatus(own, taskId);
      return match?.status === 'completed' && match;
    });
    expect(done).toMatchObject({ delegation_id: taskId, source_id: own.id, target_id: peer.id, summary: task, response_preview: `done: ${task}`, error: null });

    const event = await events.next(isComplete(taskId));
    expect(event).toMatchObject({ workspace_id: own.id, payload: { delegation_id: taskId, source_id: own.id, target_id: peer.id, status: 'completed' } });
    events.close();

    // The agent got an ordinary A2A message/send: the task as its text, the delegation id in the metadata.
    const [delivered] = await received(agent);
    const rpc = JSON.parse(delivered!.body);
    expect(rpc.method).toBe('message/send');
    expect(rpc.params.message.parts).toEqual([{ kind: 'text', text: task }]);
    expect(rpc.params.message.metadata.delegation_id).toBe(taskId);
    // Both feeds get the proxy's usual rows.
    const rows = await waitFor(async () => {
      const r = await sql(`SELECT workspace_id, activity_type, source_id, target_id, status FROM activity_logs WHERE workspace_id = ANY($1::uuid[]) ORDER BY activity_type`, [[own.id, peer.id]]);
      return r.length === 2 && r;
    });
    expect(rows).toEqual([
      { workspace_id: peer.id, activity_type: 'a2a_receive', source_id: own.id, target_id: peer.id, status: 'ok' },
      { workspace_id: own.id, activity_type: 'a2a_send', source_id: own.id, target_id: peer.id, status: 'ok' },
    ]);
  });

  it('check_task_status without a task id: the list is a bare array, newest first', async () => {
    const own = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ mode: 'poll' });
    const ids: string[] = [];
    for (const task of ['first', 'second', 'third']) {
      const res = await callJson('POST', `/workspaces/${own.id}/delegate`, { token: own.token, body: { target_id: peer.id, task } });
      expect(res.status).toBe(202);
      ids.push(res.body.delegation_id);
    }
    const all = await callJson('GET', `/workspaces/${own.id}/delegations`, { token: own.token });
    expect(all.body.map((d: any) => d.delegation_id)).toEqual([...ids].reverse());
    expect(Object.keys(all.body[0]).sort()).toEqual(
      ['created_at', 'delegation_id', 'error', 'error_detail', 'response_preview', 'source_id', 'status', 'summary', 'target_id', 'type', 'updated_at'].sort(),
    );
    expect(all.body[0].type).toBe('delegation');
    const limited = await callJson('GET', `/workspaces/${own.id}/delegations?limit=1`, { token: own.token });
    expect(limited.body.map((d: any) => d.delegation_id)).toEqual([ids[2]]);
    // The target sees the delegations it received too.
    const theirs = await callJson('GET', `/workspaces/${peer.id}/delegations`, { token: peer.token });
    expect(theirs.body.map((d: any) => d.delegation_id)).toEqual([...ids].reverse());
    expect(await checkTaskStatus(own, crypto.randomUUID())).toBeUndefined();
  });
});

describe('runtime: tool_delegate_task_async + _delegate_sync_via_polling (a2a_tools_delegation.py)', () => {
  const delegateAsync = async (src: Agent, target: string, task: string) =>
    callJson('POST', `/workspaces/${src.id}/delegate`, {
      token: src.token,
      headers: ORIGIN,
      body: { target_id: target, task, idempotency_key: (await sha256Hex(`${src.id}:${target}:${task}`)).slice(0, 32) },
    });

  it('a retry with the same key is exactly 202 again (a 200 reads as an error) with the same delegation; polling returns response_preview', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ url: loopback(`/agent/reply/${name()}`) });
    const first = await delegateAsync(src, peer.id, 'check the build');
    const retry = await delegateAsync(src, peer.id, 'check the build');
    expect(first.status).toBe(202);
    expect(retry.status).toBe(202);
    expect(first.body.delegation_id).toBeTruthy();
    expect(retry.body).toMatchObject({ delegation_id: first.body.delegation_id, target_id: peer.id, idempotent_hit: true });
    const terminal = await pollUntilTerminal(src, first.body.delegation_id);
    expect(terminal.status).toBe('completed');
    expect(terminal.response_preview).toBe('done: check the build');
    // The heartbeat scan accepts a result only when source_id is the workspace itself (heartbeat.py:356-370).
    expect(terminal.source_id).toBe(src.id);
    expect(await countDelegations(src.id)).toBe(1);
  });

  it('an agent error fails the delegation with a fixed text in error and error_detail; a retry with the key is a new delegation', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ url: loopback(`/agent/status/500/${name()}`) });
    const events = await subscribe(src.id, src.token);
    const first = await delegateAsync(src, peer.id, 'do the thing');
    expect(first.status).toBe(202);
    const terminal = await pollUntilTerminal(src, first.body.delegation_id);
    expect(terminal).toMatchObject({ status: 'failed', error: 'workspace agent returned an error', error_detail: 'workspace agent returned an error', response_preview: null });
    expect(JSON.stringify(terminal)).not.toMatch(/secret_path|Traceback/);
    const event = await events.next(isComplete(first.body.delegation_id));
    expect(event.payload.status).toBe('failed');
    expect(JSON.stringify(event)).not.toMatch(/secret_path|Traceback/);
    events.close();

    const again = await delegateAsync(src, peer.id, 'do the thing');
    expect(again.status).toBe(202);
    expect(again.body.delegation_id).not.toBe(first.body.delegation_id);
    expect(again.body.idempotent_hit).toBeUndefined();
  });

  it('a JSON-RPC error answered with HTTP 200 fails the delegation, without the agent text', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ url: loopback(`/agent/rpc-error/${name()}`) });
    const res = await delegateAsync(src, peer.id, 'explode');
    const terminal = await pollUntilTerminal(src, res.body.delegation_id);
    expect(terminal).toMatchObject({ status: 'failed', error_detail: 'agent answered with a JSON-RPC error' });
    expect(JSON.stringify(terminal)).not.toContain('secret_path');
  });
});

describe('SDK: RemoteAgentClient.delegate() posts to the TARGET path (client.py:1027-1074)', () => {
  it('no target_id + X-Workspace-ID: self → the path is the target and the caller the source', async () => {
    const self = await registeredAgent({ mode: 'poll' });
    const target = await registeredAgent({ url: loopback(`/agent/reply/${name()}`) });
    const task = 'index the repository';
    const res = await callJson('POST', `/workspaces/${target.id}/delegate`, {
      token: self.token,
      headers: { ...ORIGIN, 'X-Workspace-ID': self.id },
      body: { task, idempotency_key: await sha256Hex(`${task}${Math.floor(Date.now() / 60_000)}`) },
    });
    // raise_for_status(), then resp.json()
    expect(res.status).toBeGreaterThanOrEqual(200);
    expect(res.status).toBeLessThan(300);
    expect(res.body).toMatchObject({ delegation_id: expect.any(String), target_id: target.id });
    const row = await delegationRow(res.body.delegation_id);
    expect(row).toMatchObject({ source_id: self.id, target_id: target.id, task });
    const terminal = await pollUntilTerminal(self, res.body.delegation_id);
    expect(terminal.response_preview).toBe(`done: ${task}`);
  });

  it('its key is task + minute: the same task to two peers in one minute is two delegations', async () => {
    const self = await registeredAgent({ mode: 'poll' });
    const [a, b] = [await registeredAgent({ mode: 'poll' }), await registeredAgent({ mode: 'poll' })];
    const body = { task: 'same task', idempotency_key: await sha256Hex(`same task${Math.floor(Date.now() / 60_000)}`) };
    const toA = await callJson('POST', `/workspaces/${a.id}/delegate`, { token: self.token, headers: { 'X-Workspace-ID': self.id }, body });
    const toB = await callJson('POST', `/workspaces/${b.id}/delegate`, { token: self.token, headers: { 'X-Workspace-ID': self.id }, body });
    const againA = await callJson('POST', `/workspaces/${a.id}/delegate`, { token: self.token, headers: { 'X-Workspace-ID': self.id }, body });
    expect([toA.body.target_id, toB.body.target_id]).toEqual([a.id, b.id]);
    expect(toB.body.delegation_id).not.toBe(toA.body.delegation_id);
    expect(againA.body).toMatchObject({ delegation_id: toA.body.delegation_id, idempotent_hit: true });
  });

  it('the bearer must be the source named in X-Workspace-ID', async () => {
    const self = await registeredAgent({ mode: 'poll' });
    const target = await registeredAgent({ mode: 'poll' });
    for (const token of [target.token, undefined]) {
      const res = await callJson('POST', `/workspaces/${target.id}/delegate`, { token, headers: { 'X-Workspace-ID': self.id }, body: { task: 'x' } });
      expect(res.status).toBe(401);
    }
    // Without a header naming another workspace there is no target.
    const noTarget = await callJson('POST', `/workspaces/${target.id}/delegate`, { token: target.token, headers: { 'X-Workspace-ID': target.id }, body: { task: 'x' } });
    expect(noTarget.status).toBe(400);
    expect(await countDelegations(target.id)).toBe(0);
  });
});

describe('outcomes by target', () => {
  it('poll-mode target: queued (never completed with the queued envelope); the inbox row carries the delegation id', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ mode: 'poll' });
    const res = await callJson('POST', `/workspaces/${src.id}/delegate`, { token: src.token, body: { target_id: peer.id, task: 'poll me' } });
    expect(res.status).toBe(202);
    const id = res.body.delegation_id;
    const queued = await waitFor(async () => {
      const row = await checkTaskStatus(src, id);
      return row?.status === 'queued' && row;
    });
    expect(queued).toMatchObject({ response_preview: null, error: null });
    const [inbox] = await sql(`SELECT source_id, request_body FROM activity_logs WHERE workspace_id = $1 AND activity_type = 'a2a_receive'`, [peer.id]);
    expect(inbox.source_id).toBe(src.id);
    expect(inbox.request_body.params.message.parts[0].text).toBe('poll me');
    expect(inbox.request_body.params.message.metadata.delegation_id).toBe(id);
    await new Promise((r) => setTimeout(r, 300));
    expect((await delegationRow(id)).status).toBe('queued');
  });

  it('busy target: queued with its queue item; once the agent is back, the drain completes the delegation and the source hears it live', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ url: loopback(`/agent/reset/${name()}`) });
    const events = await subscribe(src.id, src.token);
    const res = await callJson('POST', `/workspaces/${src.id}/delegate`, { token: src.token, body: { target_id: peer.id, task: 'when you have time' } });
    expect(res.status).toBe(202);
    const id = res.body.delegation_id;
    const queued = await waitFor(async () => {
      const row = await delegationRow(id);
      return row.status === 'queued' && row;
    });
    const [item] = await sql('SELECT id, delegation_id, caller_id, status FROM a2a_queue WHERE workspace_id = $1', [peer.id]);
    expect(item).toMatchObject({ id: queued.queue_id, delegation_id: id, caller_id: src.id, status: 'queued' });

    // The agent restarts at a working URL, re-registers and heartbeats with room: the drain delivers.
    const reg = await call('POST', '/registry/register', { token: peer.token, body: { id: peer.id, agent_card: { name: 'back' }, url: loopback(`/agent/reply/${name()}`) } });
    expect(reg.status).toBe(200);
    const hb = await call('POST', '/registry/heartbeat', { token: peer.token, body: { workspace_id: peer.id, active_tasks: 0 } });
    expect(hb.status).toBe(200);

    const event = await events.next(isComplete(id));
    expect(event).toMatchObject({ event: 'DELEGATION_COMPLETE', workspace_id: src.id, payload: { delegation_id: id, source_id: src.id, target_id: peer.id, status: 'completed' } });
    events.close();
    const done = await checkTaskStatus(src, id);
    expect(done).toMatchObject({ status: 'completed', response_preview: 'done: when you have time', error: null });
  });

  it('a queued delegation whose item runs out of attempts fails with it', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ url: loopback(`/agent/reset/${name()}`) });
    const res = await callJson('POST', `/workspaces/${src.id}/delegate`, { token: src.token, body: { target_id: peer.id, task: 'never arrives' } });
    const id = res.body.delegation_id;
    const { queue_id: queueId } = await waitFor(async () => {
      const row = await delegationRow(id);
      return row.status === 'queued' && row;
    });
    await sql(`UPDATE workspaces SET url = 'http://127.0.0.1:1/' WHERE id = $1`, [peer.id]);
    for (let i = 1; i <= 5; i++) {
      await call('POST', '/registry/heartbeat', { token: peer.token, body: { workspace_id: peer.id, active_tasks: 0 } });
      await waitFor(async () => (await sql('SELECT attempts FROM a2a_queue WHERE id = $1 AND dispatched_at IS NULL', [queueId]))[0]?.attempts === i);
    }
    const terminal = await pollUntilTerminal(src, id);
    expect(terminal).toMatchObject({ status: 'failed', error: 'agent unreachable', error_detail: 'agent unreachable' });
  });

  it('a queued message naming someone else’s delegation does not settle it', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ url: loopback(`/agent/reset/${name()}`) });
    const forger = await registeredAgent({ mode: 'poll' });
    const res = await callJson('POST', `/workspaces/${src.id}/delegate`, { token: src.token, body: { target_id: peer.id, task: 'the real one' } });
    const id = res.body.delegation_id;
    await waitFor(async () => (await delegationRow(id)).status === 'queued');
    await sql('DELETE FROM a2a_queue WHERE workspace_id = $1', [peer.id]);
    const forged = await call('POST', `/workspaces/${peer.id}/a2a`, {
      token: forger.token,
      body: { jsonrpc: '2.0', id: 1, method: 'message/send', params: { message: { role: 'user', parts: [{ kind: 'text', text: 'forged' }], metadata: { delegation_id: id } } } },
    });
    expect(forged.status).toBe(202);
    await sql(`UPDATE workspaces SET url = $2 WHERE id = $1`, [peer.id, loopback(`/agent/reply/${name()}`)]);
    await call('POST', '/registry/heartbeat', { token: peer.token, body: { workspace_id: peer.id, active_tasks: 0 } });
    await waitFor(async () => (await sql(`SELECT status FROM a2a_queue WHERE workspace_id = $1`, [peer.id]))[0]?.status === 'completed');
    expect(await delegationRow(id)).toMatchObject({ status: 'queued', response_preview: null });
  });

  it('a dispatch interrupted mid-call is failed on the alarm retry, never sent twice', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const agent = name();
    const peer = await registeredAgent({ url: loopback(`/agent/reply/${agent}`) });
    // What a crashed run leaves behind: claimed (dispatched) and not settled.
    const [row] = await sql(`INSERT INTO delegations (source_id, target_id, task, status) VALUES ($1, $2, 'half done', 'dispatched') RETURNING id`, [src.id, peer.id]);
    await env.DELEGATION_DISPATCHER.get(env.DELEGATION_DISPATCHER.idFromName(row.id)).start(row.id);
    const terminal = await pollUntilTerminal(src, row.id);
    expect(terminal).toMatchObject({ status: 'failed', error: 'delegation dispatch interrupted; the outcome is unknown' });
    expect(await received(agent)).toEqual([]);
  });
});

describe('rules', () => {
  it('the hierarchy rule applies: cousins get 403, nothing is written', async () => {
    const parentA = await registeredAgent({ mode: 'poll' });
    const parentB = await registeredAgent({ mode: 'poll' });
    const a = await registeredAgent({ mode: 'poll', parentId: parentA.id });
    const b = await registeredAgent({ mode: 'poll', parentId: parentB.id });
    const res = await callJson('POST', `/workspaces/${a.id}/delegate`, { token: a.token, body: { target_id: b.id, task: 'cross the line' } });
    expect(res.status).toBe(403);
    expect(res.body.error).toBe('access denied: workspaces cannot communicate per hierarchy rules');
    const recorded = await callJson('POST', `/workspaces/${a.id}/delegations/record`, { token: a.token, body: { target_id: b.id, task: 'x', delegation_id: crypto.randomUUID() } });
    expect(recorded.status).toBe(403);
    expect(await countDelegations(a.id)).toBe(0);
    // Parent and child may.
    const ok = await callJson('POST', `/workspaces/${a.id}/delegate`, { token: a.token, body: { target_id: parentA.id, task: 'up the line' } });
    expect(ok.status).toBe(202);
  });

  it('50 concurrent identical requests make exactly one delegation', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ mode: 'poll' });
    const body = { target_id: peer.id, task: 'exactly once', idempotency_key: 'same-key-for-all' };
    const replies = await Promise.all(Array.from({ length: 50 }, () => callJson('POST', `/workspaces/${src.id}/delegate`, { token: src.token, body })));
    expect(replies.map((r) => r.status)).toEqual(Array(50).fill(202));
    expect(new Set(replies.map((r) => r.body.delegation_id)).size).toBe(1);
    expect(replies.filter((r) => !r.body.idempotent_hit)).toHaveLength(1);
    expect(await countDelegations(src.id)).toBe(1);
    // Dispatched once: one message in the target's inbox.
    await waitFor(async () => (await delegationRow(replies[0]!.body.delegation_id)).status === 'queued');
    expect((await sql(`SELECT count(*)::int AS n FROM activity_logs WHERE workspace_id = $1`, [peer.id]))[0].n).toBe(1);
  });

  it('auth: another workspace’s token, a missing one and a garbage one are 401; operators may', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const other = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ mode: 'poll' });
    const body = { target_id: peer.id, task: 'x' };
    for (const token of [other.token, undefined, 'mws_garbage']) {
      expect((await call('POST', `/workspaces/${src.id}/delegate`, { token, body })).status).toBe(401);
      expect((await call('GET', `/workspaces/${src.id}/delegations`, { token })).status).toBe(401);
    }
    expect(await countDelegations(src.id)).toBe(0);
    expect((await call('POST', `/workspaces/${src.id}/delegate`, { token: ADMIN, body })).status).toBe(202);
  });

  it('hostile and invalid inputs: small 400s (404 for an unknown target), nothing written', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ mode: 'poll' });
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const cases: [string, number][] = [
      [`{"target_id":"${peer.id}","task":${deep}}`, 400],
      [`{"target_id":"${peer.id}","task":"a\\u0000b"}`, 400],
      [`{"target_id":"${peer.id}","task":"x","idempotency_key":"a\\u0000"}`, 400],
      [`{"target_id":"${peer.id}","task":""}`, 400],
      [`{"target_id":"${peer.id}","task":"   "}`, 400],
      [`{"target_id":"${peer.id}","task":2147483648}`, 400],
      [`{"target_id":"${peer.id}","task":"x","idempotency_key":"${'k'.repeat(129)}"}`, 400],
      [`{"target_id":"${peer.id}","task":"x","idempotency_key":"tab\\tkey"}`, 400],
      [`{"target_id":"not-a-uuid","task":"x"}`, 400],
      [`{"target_id":"${src.id}","task":"myself"}`, 400],
      [`{"task":"no target"}`, 400],
      [`{"target_id":"${crypto.randomUUID()}","task":"nobody"}`, 404],
      [`[1,2]`, 400],
      [`{"target_id":"${peer.id}","task":"${'t'.repeat(64 * 1024 + 1)}"}`, 400],
    ];
    for (const [raw, status] of cases) {
      const res = await callJson('POST', `/workspaces/${src.id}/delegate`, { token: src.token, raw, headers: { 'Content-Type': 'application/json' } });
      expect(res.status, raw.slice(0, 80)).toBe(status);
      expect(typeof res.body.error).toBe('string');
      expect(JSON.stringify(res.body).length).toBeLessThan(2048);
    }
    expect(await countDelegations(src.id)).toBe(0);
    expect((await call('GET', `/workspaces/${src.id}/delegations?limit=0`, { token: src.token })).status).toBe(400);
    expect((await call('GET', `/workspaces/${src.id}/delegations/not-a-uuid`, { token: src.token })).status).toBe(400);
    expect((await call('GET', `/workspaces/not-a-uuid/delegations`, { token: src.token })).status).toBe(400);
  });
});

describe('GET /workspaces/:id/delegations/:delegationId', () => {
  it('the status and result, to its source and target only', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ url: loopback(`/agent/reply/${name()}`) });
    const stranger = await registeredAgent({ mode: 'poll' });
    const res = await callJson('POST', `/workspaces/${src.id}/delegate`, { token: src.token, body: { target_id: peer.id, task: 'a'.repeat(300) } });
    const id = res.body.delegation_id;
    await pollUntilTerminal(src, id);
    for (const party of [src, peer]) {
      const one = await callJson('GET', `/workspaces/${party.id}/delegations/${id}`, { token: party.token });
      expect(one.status).toBe(200);
      expect(one.body).toMatchObject({ delegation_id: id, type: 'delegation', status: 'completed', summary: 'a'.repeat(200), response_preview: `done: ${'a'.repeat(300)}` });
    }
    expect((await call('GET', `/workspaces/${stranger.id}/delegations/${id}`, { token: stranger.token })).status).toBe(404);
    expect((await call('GET', `/workspaces/${src.id}/delegations/${id}`, { token: stranger.token })).status).toBe(401);
    expect((await call('GET', `/workspaces/${src.id}/delegations/${crypto.randomUUID()}`, { token: src.token })).status).toBe(404);
  });
});

describe('runtime builtin: /delegations/record and /delegations/:id/update (builtin_tools/delegation.py, MCPS)', () => {
  it('record → dispatched; update queued → completed; a terminal delegation stays terminal', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ mode: 'poll' });
    const events = await subscribe(src.id, src.token);
    const taskId = crypto.randomUUID();
    const record = { target_id: peer.id, task: 'done by myself', delegation_id: taskId };
    const first = await callJson('POST', `/workspaces/${src.id}/delegations/record`, { token: src.token, body: record });
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ delegation_id: taskId, status: 'recorded' });
    expect((await callJson('POST', `/workspaces/${src.id}/delegations/record`, { token: src.token, body: record })).body).toEqual(first.body);
    expect(await countDelegations(src.id)).toBe(1);
    // The builtin refresh reads type == 'delegation' and status.
    expect(await checkTaskStatus(src, taskId)).toMatchObject({ type: 'delegation', status: 'dispatched', source_id: src.id });

    const update = (token: string, body: unknown, ws = src.id) => callJson('POST', `/workspaces/${ws}/delegations/${taskId}/update`, { token, body });
    // The builtin sends "queued", and empty strings for the texts it has not got.
    expect((await update(src.token, { status: 'queued', error: '', response_preview: '' })).body).toEqual({ status: 'queued', delegation_id: taskId });
    expect((await update(peer.token, { status: 'completed' }, peer.id)).status).toBe(403);
    const completed = await update(src.token, { status: 'completed', error: '', response_preview: 'x'.repeat(500) });
    expect(completed.status).toBe(200);
    expect(completed.body).toEqual({ status: 'completed', delegation_id: taskId });
    const event = await events.next(isComplete(taskId));
    expect(event.payload).toEqual({ delegation_id: taskId, source_id: src.id, target_id: peer.id, status: 'completed' });
    events.close();

    const late = await update(src.token, { status: 'failed', error: 'too late' });
    expect(late.status).toBe(409);
    expect((await update(src.token, { status: 'completed', response_preview: 'again' })).status).toBe(200);
    expect(await checkTaskStatus(src, taskId)).toMatchObject({ status: 'completed', response_preview: 'x'.repeat(500), error: null, error_detail: null });
  });

  it('record: an id taken by another source is 409; a non-UUID id is stored under a new one; strangers get 404 on update', async () => {
    const src = await registeredAgent({ mode: 'poll' });
    const peer = await registeredAgent({ mode: 'poll' });
    const taskId = crypto.randomUUID();
    expect((await call('POST', `/workspaces/${src.id}/delegations/record`, { token: src.token, body: { target_id: peer.id, task: 't', delegation_id: taskId } })).status).toBe(202);
    const taken = await callJson('POST', `/workspaces/${peer.id}/delegations/record`, { token: peer.token, body: { target_id: src.id, task: 't', delegation_id: taskId } });
    expect(taken.status).toBe(409);
    const minted = await callJson('POST', `/workspaces/${src.id}/delegations/record`, { token: src.token, body: { target_id: peer.id, task: 't', delegation_id: 'task-42' } });
    expect(minted.status).toBe(202);
    expect(minted.body.delegation_id).toMatch(/^[0-9a-f-]{36}$/);
    const stranger = await registeredAgent({ mode: 'poll' });
    expect((await call('POST', `/workspaces/${stranger.id}/delegations/${taskId}/update`, { token: stranger.token, body: { status: 'failed' } })).status).toBe(404);
    expect((await call('POST', `/workspaces/${src.id}/delegations/${taskId}/update`, { token: src.token, body: { status: 'pending' } })).status).toBe(400);
    expect((await call('POST', `/workspaces/${src.id}/delegations/${taskId}/update`, { body: { status: 'failed' } })).status).toBe(401);
  });
});

describe('a delegation is sent at most once', () => {
  it('an agent that takes the request and does not answer in time: a final failure, never a busy re-queue', async () => {
    const { forwardA2A } = await import('../../src/a2a/proxy');
    const { loadProxyContext } = await import('../../src/a2a/proxy-context');
    const { RequestScope } = await import('../../src/lib/request-scope');
    const { delegationMessage } = await import('../../src/delegations/dispatch');
    const parent = await registeredAgent({ mode: 'poll' });
    const source = await registeredAgent({ mode: 'poll', parentId: parent.id });
    const name = crypto.randomUUID().slice(0, 8);
    const target = await registeredAgent({ url: loopback(`/agent/hang/${name}`), parentId: parent.id });
    const scope = new RequestScope(env as never);
    try {
      const context = await loadProxyContext(scope, { targetId: target.id, headerCaller: source.id, workspaceTokenHash: null, orgTokenHash: null });
      const send = (atMostOnce: boolean) =>
        forwardA2A(scope, { target: context.target, chains: context.chains, callerId: source.id, body: delegationMessage({ id: crypto.randomUUID(), task: 'slow work' }), deadlineMs: 300, atMostOnce });
      await expect(send(true)).rejects.toMatchObject({ status: 504, message: 'agent did not answer in time; the outcome is unknown' });
      expect(await sql('SELECT count(*)::int AS n FROM a2a_queue WHERE workspace_id = $1', [target.id])).toEqual([{ n: 0 }]);
      // The ordinary proxy path keeps the seed's rule: a timeout is "busy", and busy is queued.
      expect(await send(false)).toMatchObject({ kind: 'enqueued' });
    } finally {
      await scope.close();
    }
  });
});

describe('the cron delegation pass: nothing waits forever', () => {
  it('re-starts lost pending ones, fails interrupted ones, and settles queued ones from their finished queue item', async () => {
    const { createExecutionContext, createScheduledController, waitOnExecutionContext } = await import('cloudflare:test');
    const worker = (await import('../../src/index')).default;
    const parent = await registeredAgent({ mode: 'poll' });
    const source = await registeredAgent({ mode: 'poll', parentId: parent.id });
    const pollTarget = await registeredAgent({ mode: 'poll', parentId: parent.id });
    const insert = async (status: string, age: string, extra = '') =>
      (await sql(`INSERT INTO delegations (source_id, target_id, task, status, updated_at${extra ? ', queue_id' : ''}) VALUES ($1, $2, 'x', $3, now() - $4::interval${extra ? ', $5' : ''}) RETURNING id`, [source.id, pollTarget.id, status, age, ...(extra ? [extra] : [])]))[0].id as string;
    const queueItem = async (status: string, body: unknown) =>
      (await sql(`INSERT INTO a2a_queue (workspace_id, caller_id, body, status, response_body) VALUES ($1, $2, '{}', $3, $4::jsonb) RETURNING id`, [pollTarget.id, source.id, status, JSON.stringify(body)]))[0].id as string;

    const lost = await insert('pending', '5 minutes');
    const fresh = await insert('pending', '0 seconds');
    const interrupted = await insert('dispatched', '30 minutes');
    const running = await insert('dispatched', '1 minute');
    const answered = await insert('queued', '1 minute', await queueItem('completed', { result: { parts: [{ kind: 'text', text: 'all done' }] } }));
    const gaveUp = await insert('queued', '1 minute', await queueItem('failed', null));
    const waiting = await insert('queued', '1 minute', await queueItem('queued', null));

    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController(), env as never, ctx);
    await waitOnExecutionContext(ctx);

    const state = async (id: string) => (await sql('SELECT status, error, response_preview FROM delegations WHERE id = $1', [id]))[0];
    // The lost one reached its dispatcher: a poll target makes it `queued`.
    await waitFor(async () => (await state(lost)).status === 'queued');
    expect((await state(fresh)).status).toBe('pending');
    expect(await state(interrupted)).toMatchObject({ status: 'failed', error: 'delegation dispatch interrupted; the outcome is unknown' });
    expect((await state(running)).status).toBe('dispatched');
    expect(await state(answered)).toMatchObject({ status: 'completed', response_preview: 'all done' });
    expect(await state(gaveUp)).toMatchObject({ status: 'failed', error: 'agent busy; the queued delivery gave up' });
    expect((await state(waiting)).status).toBe('queued');
  });
});
