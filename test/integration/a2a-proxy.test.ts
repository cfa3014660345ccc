import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import worker from '../../src/index';
import { ADMIN, BASE, call, callJson, createWorkspace, loopback, received, registeredAgent, sql, waitFor, a2aMessage, uniq } from '../support/api';
import { failNext, lifecycleOps, setAgentState, waitForStart } from '../support/provisioner';
import { framedLength } from '../../src/a2a/dispatch';

const message = a2aMessage;

async function pair(targetPath: (name: string) => string, opts: { runtime?: string } = {}) {
  const name = uniq();
  const caller = await registeredAgent({ mode: 'poll' });
  const target = await registeredAgent({ url: loopback(targetPath(name)), runtime: opts.runtime });
  return { caller, target, name };
}

const a2a = (targetId: string, opts: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> }) =>
  callJson('POST', `/workspaces/${targetId}/a2a`, opts);

describe('poll delivery', () => {
  it('PollMode_ShortCircuits_NoSSRF_NoDispatch: records a2a_receive with method + normalised body', async () => {
    const caller = await registeredAgent({ mode: 'poll' });
    const target = await registeredAgent({ mode: 'poll' });
    // A poisoned URL proves nothing is resolved or dispatched for poll targets.
    await sql(`UPDATE workspaces SET url = 'http://169.254.169.254/' WHERE id = $1`, [target.id]);
    const res = await a2a(target.id, { token: caller.token, body: { method: 'message/send', params: { message: { role: 'user', content: 'do the thing' } } } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'queued', delivery_mode: 'poll', method: 'message/send' });
    const rows = await sql(`SELECT activity_type, source_id, target_id, method, request_body FROM activity_logs WHERE workspace_id = $1`, [target.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ activity_type: 'a2a_receive', source_id: caller.id, target_id: target.id, method: 'message/send' });
    expect(rows[0].request_body.params.message.parts).toEqual([{ kind: 'text', text: 'do the thing' }]);
    expect(rows[0].request_body.params.message.content).toBeUndefined();
    // The poller consumes it through the cursor feed.
    const feed = await callJson('GET', `/workspaces/${target.id}/activity?type=a2a_receive`, { token: target.token });
    expect(feed.body[0].request_body.jsonrpc).toBe('2.0');
  });

  it('PushMode_NoShortCircuit: the agent receives the request and the body comes back unchanged', async () => {
    const { caller, target, name } = await pair((n) => `/agent/echo/${n}`);
    const res = await a2a(target.id, { token: caller.token, body: message('ping') });
    expect(res.status).toBe(200);
    expect(res.body.result.echoed.params.message.parts[0].text).toBe('ping');
    const got = await received(name);
    expect(got).toHaveLength(1);
    expect(JSON.parse(got[0]!.body).method).toBe('message/send');
  });

  it("a delivered call records both feeds and the caller's last_outbound_at in one statement, refreshed at most once a minute", async () => {
    const { caller, target } = await pair((n) => `/agent/echo/${n}`);
    const outbound = async () => (await sql('SELECT last_outbound_at FROM workspaces WHERE id = $1', [caller.id]))[0].last_outbound_at as Date | null;
    expect(await outbound()).toBeNull();
    expect((await a2a(target.id, { token: caller.token, body: message() })).status).toBe(200);
    const first = await waitFor(outbound);
    expect((await a2a(target.id, { token: caller.token, body: message() })).status).toBe(200);
    await waitFor(async () => (await sql(`SELECT count(*)::int AS n FROM activity_logs WHERE workspace_id = $1 AND activity_type = 'a2a_send'`, [caller.id]))[0].n === 2);
    expect(await outbound()).toEqual(first);
    await sql(`UPDATE workspaces SET last_outbound_at = now() - interval '2 minutes' WHERE id = $1`, [caller.id]);
    const stale = await outbound();
    expect((await a2a(target.id, { token: caller.token, body: message() })).status).toBe(200);
    await waitFor(async () => (await outbound())!.getTime() > stale!.getTime());
  });

  it('PollMode_FailsClosedToPush: an unreadable datastore is a loud 503, never a silent "queued"', async () => {
    const target = await registeredAgent({ mode: 'poll' });
    const brokenEnv = { ...env, DATABASE_URL: 'postgres://nobody:nothing@127.0.0.1:1/none' };
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      new Request(`${BASE}/workspaces/${target.id}/a2a`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' }, body: JSON.stringify(message()) }),
      brokenEnv,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(503);
    const body = await res.json();
    expect(body).toEqual({ error: 'platform datastore unavailable — retry shortly', code: 'platform_unavailable' });
    expect(await sql('SELECT 1 FROM activity_logs WHERE workspace_id = $1', [target.id])).toHaveLength(0);
  });
});

describe('caller identity', () => {
  it('derives the caller from the bearer when X-Workspace-ID is absent', async () => {
    const { caller, target } = await pair((n) => `/agent/echo/${n}`);
    expect((await a2a(target.id, { token: caller.token, body: message() })).status).toBe(200);
    const row = await waitFor(async () => (await sql(`SELECT source_id FROM activity_logs WHERE workspace_id = $1 AND activity_type = 'a2a_receive'`, [target.id]))[0]);
    expect(row.source_id).toBe(caller.id);
    const sent = await waitFor(async () => (await sql(`SELECT target_id FROM activity_logs WHERE workspace_id = $1 AND activity_type = 'a2a_send'`, [caller.id]))[0]);
    expect(sent.target_id).toBe(target.id);
  });

  it('org and admin tokens stay canvas-class (no caller)', async () => {
    const { target } = await pair((n) => `/agent/echo/${n}`);
    const org = (await callJson('POST', '/org/tokens', { token: ADMIN, body: {} })).body.auth_token;
    expect((await a2a(target.id, { token: org, body: message() })).status).toBe(200);
    expect((await a2a(target.id, { token: ADMIN, body: message() })).status).toBe(200);
    const rows = await waitFor(async () => {
      const r = await sql(`SELECT source_id FROM activity_logs WHERE workspace_id = $1 AND activity_type = 'a2a_receive'`, [target.id]);
      return r.length === 2 && r;
    });
    expect(rows.map((r) => r.source_id)).toEqual([null, null]);
  });

  it('a header naming another workspace must be backed by that workspace token', async () => {
    const { caller, target } = await pair((n) => `/agent/echo/${n}`);
    const stranger = await registeredAgent({ mode: 'poll' });
    const noBearer = await a2a(target.id, { headers: { 'X-Workspace-ID': caller.id }, body: message() });
    expect(noBearer).toMatchObject({ status: 401, body: { error: 'missing caller auth token' } });
    const wrong = await a2a(target.id, { token: stranger.token, headers: { 'X-Workspace-ID': caller.id }, body: message() });
    expect(wrong).toMatchObject({ status: 401, body: { error: 'invalid caller auth token' } });
    const org = await a2a(target.id, { token: ADMIN, headers: { 'X-Workspace-ID': caller.id }, body: message() });
    expect(org.status).toBe(401);
    const ok = await a2a(target.id, { token: caller.token, headers: { 'X-Workspace-ID': caller.id }, body: message() });
    expect(ok.status).toBe(200);
  });

  it('system-caller prefixes in the header are forged → 403', async () => {
    const { caller, target } = await pair((n) => `/agent/echo/${n}`);
    for (const forged of ['webhook:github', 'system:restart', 'test:x', 'channel:slack', 'SYSTEM:upper']) {
      const res = await a2a(target.id, { token: caller.token, headers: { 'X-Workspace-ID': forged }, body: message() });
      expect(res, forged).toMatchObject({ status: 403, body: { error: 'invalid caller ID' } });
    }
  });

  it('no credential at all is 401 (the edge is public); a revoked or removed bearer derives nothing and is refused too', async () => {
    const { caller, target, name } = await pair((n) => `/agent/echo/${n}`);
    expect(await a2a(target.id, { body: message() })).toMatchObject({ status: 401, body: { error: 'missing auth token: send a workspace, org or admin bearer token' } });
    await sql('UPDATE workspace_auth_tokens SET revoked_at = now() WHERE workspace_id = $1', [caller.id]);
    expect(await a2a(target.id, { token: caller.token, body: message() })).toMatchObject({ status: 401, body: { error: 'invalid auth token' } });
    const removed = await registeredAgent({ mode: 'poll' });
    await call('DELETE', `/workspaces/${removed.id}`, { token: ADMIN });
    expect((await a2a(target.id, { token: removed.token, body: message() })).status).toBe(401);
    expect(await received(name)).toHaveLength(0);
  });
});

describe('hierarchy and budget', () => {
  it('AccessDenied_DifferentParents → 403; siblings and parent/child pass', async () => {
    const rootA = await createWorkspace();
    const rootB = await createWorkspace();
    const name = uniq();
    const target = await registeredAgent({ url: loopback(`/agent/echo/${name}`), parentId: rootA.id });
    const sibling = await registeredAgent({ mode: 'poll', parentId: rootA.id });
    const cousin = await registeredAgent({ mode: 'poll', parentId: rootB.id });
    const denied = await a2a(target.id, { token: cousin.token, body: message() });
    expect(denied).toMatchObject({ status: 403, body: { error: 'access denied: workspaces cannot communicate per hierarchy rules' } });
    expect((await a2a(target.id, { token: sibling.token, body: message() })).status).toBe(200);
    const child = await registeredAgent({ mode: 'poll', parentId: target.id });
    expect((await a2a(target.id, { token: child.token, body: message() })).status).toBe(200);
    expect(await received(name)).toHaveLength(2);
  });

  it('budget reached → 402 before dispatch', async () => {
    const { caller, target, name } = await pair((n) => `/agent/echo/${n}`);
    await sql('UPDATE workspaces SET budget_limit = 100, monthly_spend = 100 WHERE id = $1', [target.id]);
    expect(await a2a(target.id, { token: caller.token, body: message() })).toMatchObject({ status: 402, body: { error: 'workspace budget limit exceeded' } });
    await sql('UPDATE workspaces SET monthly_spend = 99 WHERE id = $1', [target.id]);
    expect((await a2a(target.id, { token: caller.token, body: message() })).status).toBe(200);
    expect(await received(name)).toHaveLength(1);
  });
});

describe('input handling', () => {
  it('body over 1 MiB → 413, nothing recorded', async () => {
    const caller = await registeredAgent({ mode: 'poll' });
    const target = await registeredAgent({ mode: 'poll' });
    const res = await a2a(target.id, { token: caller.token, body: message('x'.repeat(1024 * 1024)) });
    expect(res.status).toBe(413);
    expect(await sql('SELECT 1 FROM activity_logs WHERE workspace_id = $1', [target.id])).toHaveLength(0);
  });

  it('invalid JSON and misshapen messages → structured 400', async () => {
    const caller = await registeredAgent({ mode: 'poll' });
    const target = await registeredAgent({ mode: 'poll' });
    const bad = await a2a(target.id, { token: caller.token, raw: '{"jsonrpc":' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: 'invalid JSON', jsonrpc: '2.0', id: null });
    const neither = await a2a(target.id, { token: caller.token, body: { jsonrpc: '2.0', id: 7, method: 'message/send', params: { message: { role: 'user' } } } });
    expect(neither.status).toBe(400);
    expect(neither.body.error).toContain('params.message.parts');
    expect(neither.body.rpc_error.code).toBe(-32602);
    const numeric = await a2a(target.id, { token: caller.token, body: { jsonrpc: '2.0', id: 7, method: 'message/send', params: { message: { content: 42 } } } });
    expect(numeric.body.error).toContain('number');
    expect(await sql('SELECT 1 FROM activity_logs WHERE workspace_id = $1', [target.id])).toHaveLength(0);
    // Methods without a message are not checked.
    expect((await a2a(target.id, { token: caller.token, body: { jsonrpc: '2.0', id: 1, method: 'tasks/list', params: {} } })).status).toBe(200);
  });

  it('unknown target 404, target without URL 503, hibernated target wakes with Retry-After', async () => {
    expect((await a2a(crypto.randomUUID(), { token: ADMIN, body: message() })).status).toBe(404);
    const bare = await createWorkspace({ parent_id: null });
    const noUrl = await a2a(bare.id, { token: ADMIN, body: message() });
    expect(noUrl).toMatchObject({ status: 503, body: { error: 'workspace has no URL', status: 'provisioning' } });
    await waitForStart(bare.id);
    // As hibernation leaves it, once the start's URL (docker: the published port) is on file.
    await waitFor(async () => (await sql(`UPDATE workspaces SET status = 'hibernated', url = NULL WHERE id = $1 AND url IS NOT NULL RETURNING id`, [bare.id])).length === 1);
    const wake = await a2a(bare.id, { token: ADMIN, body: message() });
    expect(wake.status).toBe(503);
    expect(wake.body).toMatchObject({ waking: true, retry_after: 15 });
    expect(wake.res.headers.get('Retry-After')).toBe('15');
    // Waking goes through the coalesced restart, i.e. reaches the provisioner.
    await waitForStart(bare.id, 2);
  });

  it('refuses an unsafe stored URL at dispatch', async () => {
    const { caller, target } = await pair((n) => `/agent/echo/${n}`);
    await sql(`UPDATE workspaces SET url = 'http://169.254.169.254/latest/meta-data' WHERE id = $1`, [target.id]);
    expect(await a2a(target.id, { token: caller.token, body: message() })).toMatchObject({ status: 502, body: { error: 'workspace URL is not publicly routable' } });
  });
});

describe('upstream failures', () => {
  it('Upstream502_TriggersContainerDeadCheck: dead agent → offline, restart, 503 restarting + Retry-After 15', async () => {
    const { caller, target } = await pair((n) => `/agent/status/502/${n}`, { runtime: 'langgraph' });
    await setAgentState(target.id, 'stopped');
    const res = await a2a(target.id, { token: caller.token, body: message() });
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ restarting: true, retry_after: 15 });
    expect(res.res.headers.get('Retry-After')).toBe('15');
    // Marked offline at once; the coalesced restart may already have moved it on to provisioning.
    expect(['offline', 'provisioning']).toContain((await sql('SELECT status FROM workspaces WHERE id = $1', [target.id]))[0].status);
    await waitForStart(target.id, 2);
    expect(await lifecycleOps(target.id)).toEqual(['start', 'stop', 'start']);
    const offline = await sql(`SELECT payload FROM structure_events WHERE workspace_id = $1 AND event_type = 'WORKSPACE_OFFLINE'`, [target.id]);
    expect(offline).toHaveLength(1);
  });

  it('Upstream502_AliveAgent_PropagatesAsIs, without the agent body', async () => {
    const { caller, target } = await pair((n) => `/agent/status/502/${n}`, { runtime: 'langgraph' });
    const res = await a2a(target.id, { token: caller.token, body: message() });
    expect(res.status).toBe(502);
    expect(res.body).toEqual({ error: 'workspace agent returned an error', upstream_status: 502 });
    expect(JSON.stringify(res.body)).not.toContain('secret_path');
    expect((await sql('SELECT status FROM workspaces WHERE id = $1', [target.id]))[0].status).toBe('online');
  });

  it('non-dead statuses (500, 520, 525) never ask the provisioner', async () => {
    for (const code of [500, 520, 525]) {
      const { caller, target } = await pair((n) => `/agent/status/${code}/${n}`, { runtime: 'langgraph' });
      await setAgentState(target.id, 'stopped');
      const res = await a2a(target.id, { token: caller.token, body: message() });
      expect(res.status, String(code)).toBe(code);
      expect((await sql('SELECT status FROM workspaces WHERE id = $1', [target.id]))[0].status).toBe('online');
    }
  });

  it('an agent answering a 3xx (304 has no body, redirects are not followed) → 502 with upstream_status, never a 500', async () => {
    for (const code of [304, 302]) {
      const { caller, target } = await pair((n) => `/agent/status/${code}/${n}`);
      const res = await callJson('POST', `/workspaces/${target.id}/a2a`, { token: caller.token, body: message() });
      expect(res, String(code)).toMatchObject({ status: 502, body: { error: 'workspace agent returned an error', upstream_status: code } });
    }
  });

  it('external agents are never marked dead; an uncertain provisioner answer keeps the agent', async () => {
    const ext = await pair((n) => `/agent/status/503/${n}`);
    await setAgentState(ext.target.id, 'stopped');
    expect((await a2a(ext.target.id, { token: ext.caller.token, body: message() })).status).toBe(503);
    expect((await sql('SELECT status FROM workspaces WHERE id = $1', [ext.target.id]))[0].status).toBe('online');
    const flaky = await pair((n) => `/agent/status/504/${n}`, { runtime: 'langgraph' });
    await failNext(flaky.target.id, 'status', { status: 500, message: 'RAW-DAEMON-TEXT inspect exploded' });
    expect((await a2a(flaky.target.id, { token: flaky.caller.token, body: message() })).status).toBe(504);
    expect((await sql('SELECT status FROM workspaces WHERE id = $1', [flaky.target.id]))[0].status).toBe('online');
  });

  it('connection reset is "busy": enqueued → 202 with queue_id', async () => {
    const { caller, target } = await pair((n) => `/agent/reset/${n}`);
    const res = await a2a(target.id, { token: caller.token, body: { ...message(), params: { ...message().params, expires_in_seconds: 120 } } });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ queued: true, queue_depth: 1 });
    const [row] = await sql('SELECT status, caller_id, method, idempotency_key, expires_at > now() + interval \'100 seconds\' AS ttl_ok FROM a2a_queue WHERE id = $1', [res.body.queue_id]);
    expect(row).toMatchObject({ status: 'queued', caller_id: caller.id, method: 'message/send', ttl_ok: true });
  });

  it('timeout (X-Timeout) is "busy"; native_session targets get 503 + Retry-After 30 and nothing is queued', async () => {
    const { caller, target } = await pair((n) => `/agent/hang/${n}`);
    const queued = await a2a(target.id, { token: caller.token, headers: { 'X-Timeout': '1' }, body: message() });
    expect(queued.status).toBe(202);
    await call('POST', '/registry/heartbeat', { token: target.token, body: { workspace_id: target.id, active_tasks: 5, runtime_metadata: { capabilities: { session: true } } } });
    const native = await a2a(target.id, { token: caller.token, headers: { 'X-Timeout': '1' }, body: message() });
    expect(native.status).toBe(503);
    expect(native.body).toMatchObject({ busy: true, retry_after: 30, native_session: true });
    expect(native.res.headers.get('Retry-After')).toBe('30');
    expect((await sql('SELECT count(*)::int AS n FROM a2a_queue WHERE workspace_id = $1', [target.id]))[0].n).toBe(1);
    expect((await a2a(target.id, { token: caller.token, headers: { 'X-Timeout': 'soon' }, body: message() })).status).toBe(400);
  });

  it('connection refused → 502 canned; mid-body close → 502 delivery_confirmed; oversized response → 502', async () => {
    const refused = await registeredAgent({ url: 'http://127.0.0.1:1/' });
    const caller = await registeredAgent({ mode: 'poll' });
    expect(await a2a(refused.id, { token: caller.token, body: message() })).toMatchObject({ status: 502, body: { error: 'failed to reach workspace agent' } });
    const mid = await pair((n) => `/agent/close-mid-body/${n}`);
    expect(await a2a(mid.target.id, { token: mid.caller.token, body: message() })).toMatchObject({ status: 502, body: { error: 'failed to read agent response', delivery_confirmed: true } });
    const big = await pair((n) => `/agent/big/${n}`);
    expect(await a2a(big.target.id, { token: big.caller.token, body: message() })).toMatchObject({ status: 502, body: { error: 'agent response too large' } });
  });
});

describe('answers of every size', () => {
  it('a framed answer is relayed whole, and so is a gzip-encoded one (its Content-Length counts the compressed bytes)', async () => {
    const framed = await pair((n) => `/agent/large/64/${n}`);
    const plain = await a2a(framed.target.id, { token: framed.caller.token, body: message() });
    expect(plain.status).toBe(200);
    expect(plain.body.result.text).toHaveLength(64 * 1024);
    const gzip = await pair((n) => `/agent/gzip/${n}`);
    const decoded = await a2a(gzip.target.id, { token: gzip.caller.token, body: message() });
    expect(decoded.status).toBe(200);
    expect(decoded.body.result.text).toHaveLength(64 * 1024);
  });

  it('a chunked answer that also declares a Content-Length is read to its end (Transfer-Encoding wins)', async () => {
    const { caller, target } = await pair((n) => `/agent/chunked-with-length/${n}`);
    const res = await a2a(target.id, { token: caller.token, body: message() });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ jsonrpc: '2.0', id: null, result: { text: 'chunked wins' } });
  });

  it('only a plain Content-Length frames an answer: not with a Transfer-Encoding or a Content-Encoding', () => {
    expect(framedLength(new Headers({ 'Content-Length': '12' }))).toBe(12);
    expect(framedLength(new Headers({ 'Content-Length': '12', 'Transfer-Encoding': 'chunked' }))).toBeUndefined();
    expect(framedLength(new Headers({ 'Content-Length': '12', 'Content-Encoding': 'gzip' }))).toBeUndefined();
    expect(framedLength(new Headers({ 'Content-Length': '' }))).toBeUndefined();
    expect(framedLength(new Headers({ 'Content-Length': '1e3' }))).toBeUndefined();
    expect(framedLength(new Headers())).toBeUndefined();
  });

  it('an answer larger than a storage value reaches both feeds whole; one over 1 MiB is relayed whole and recorded as a stub', async () => {
    const feedRows = (targetId: string) =>
      waitFor(async () => {
        const found = await sql(
          `SELECT workspace_id, activity_type, length(response_body->'result'->>'text') AS n, response_body->'omitted' AS omitted, response_body->'bytes' AS bytes
             FROM activity_logs WHERE target_id = $1 AND activity_type IN ('a2a_receive', 'a2a_send') ORDER BY activity_type`,
          [targetId],
        );
        return found.length === 2 ? found : undefined;
      }, 15_000);
    // 900 KiB: over a storage value's 512 Ki characters once both bodies are in the entry.
    const stored = await pair((n) => `/agent/large/900/${n}`);
    expect((await a2a(stored.target.id, { token: stored.caller.token, body: message('large answer') })).status).toBe(200);
    expect(await feedRows(stored.target.id)).toEqual([
      { workspace_id: stored.target.id, activity_type: 'a2a_receive', n: 900 * 1024, omitted: null, bytes: null },
      { workspace_id: stored.caller.id, activity_type: 'a2a_send', n: 900 * 1024, omitted: null, bytes: null },
    ]);
    // 3 MiB: the caller gets every byte; the feeds get a fixed stub with the size.
    const stub = await pair((n) => `/agent/large/3072/${n}`);
    const res = await a2a(stub.target.id, { token: stub.caller.token, body: message('huge answer') });
    expect(res.status).toBe(200);
    expect(res.body.result.text).toHaveLength(3072 * 1024);
    const bytes = Number(res.res.headers.get('Content-Length') ?? JSON.stringify(res.body).length);
    expect(await feedRows(stub.target.id)).toEqual([
      { workspace_id: stub.target.id, activity_type: 'a2a_receive', n: null, omitted: 'answer larger than 1 MiB is not recorded', bytes },
      { workspace_id: stub.caller.id, activity_type: 'a2a_send', n: null, omitted: 'answer larger than 1 MiB is not recorded', bytes },
    ]);
  });
});
