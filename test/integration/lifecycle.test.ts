// The workspace lifecycle end to end (SPEC §1, §3, §15, §17, §18; issue #9): create → provisioning
// → start with fresh credentials → the agent registers with them → online; restart, pause/resume,
// hibernate and the A2A wake, DELETE stopping agents, the console, and what never leaks.
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import worker from '../../src/index';
import { coordinatorOf } from '../../src/coordinator';
import { requestRestart } from '../../src/provisioning/restart';
import { a2aMessage, ADMIN, BASE, callJson, createWorkspace, loopback, received, registeredAgent, sql, uniq, waitFor } from '../support/api';
import { subscribeEvents } from '../support/events';
import { agentComesUp, failNext, lifecycleOps, provisionerCalls, waitForStart } from '../support/provisioner';

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rowOf = async (id: string) =>
  (await sql('SELECT status, url, instance_id, last_sample_error, platform_inbound_secret FROM workspaces WHERE id = $1', [id]))[0] as {
    status: string;
    url: string | null;
    instance_id: string | null;
    last_sample_error: string | null;
    platform_inbound_secret: string | null;
  };
const post = (path: string, token?: string) => callJson('POST', path, { token });
const starts = async (id: string) => (await lifecycleOps(id)).filter((op) => op === 'start').length;

/** One of ours, provisioned and online: its agent answers A2A at /agent/echo/<name>. */
async function onlineAgent(opts: { parentId?: string } = {}) {
  const { id } = await createWorkspace(opts.parentId ? { parent_id: opts.parentId } : {});
  const name = `lc-${uniq()}`;
  const up = await agentComesUp(id, { url: loopback(`/agent/echo/${name}`) });
  return { id, name, token: up.token, inboundSecret: up.inboundSecret };
}

/** The same Worker with no provisioner configured (one vitest run has one env). */
async function withoutProvisioner(method: string, path: string): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request(`${BASE}${path}`, { method, headers: { Authorization: `Bearer ${ADMIN}` } }), { ...env, PROVISIONER_URL: undefined }, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

const LEAKS = ['m5.4xlarge', 'ami-0leak', 'vpc-0leak', 'subnet-0leak', '<html>upstream body', 'Traceback'];
const LEAK_TEXT = `RunInstances failed: InstanceType m5.4xlarge, ImageId ami-0leak, VpcId vpc-0leak, SubnetId subnet-0leak; <html>upstream body</html> Traceback`;
const noLeak = (value: unknown) => {
  const text = JSON.stringify(value);
  for (const marker of LEAKS) expect(text).not.toContain(marker);
};

describe('create → provisioning → start → online', () => {
  it('starts the agent with a fresh token and inbound secret; the agent registers with them; bootstrap stays shut', async () => {
    const { id, body } = await createWorkspace({ runtime: 'langgraph', tier: 2, role: 'researcher', model: 'model-x', secrets: { API_KEY: 'sk-one' } });
    expect(body.status).toBe('provisioning');
    const start = await waitForStart(id);
    expect(start).toMatchObject({ runtime: 'langgraph', tier: 2, env: { API_KEY: 'sk-one', MOLECULE_AGENT_ROLE: 'researcher', MODEL_PROVIDER: 'model-x' } });
    expect(start.auth_token).toMatch(/^mws_/);
    expect(start.platform_inbound_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Docker: no instance; the container's published port is the URL until the agent registers its own.
    expect(await rowOf(id)).toMatchObject({ status: 'provisioning', platform_inbound_secret: start.platform_inbound_secret, instance_id: null, url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });
    expect(await lifecycleOps(id)).toEqual(['start']);

    // Whoever knows the id cannot claim the workspace: its token has been given (to the provisioner).
    const hijack = await callJson('POST', '/registry/register', { body: { id, agent_card: { name: 'x' }, delivery_mode: 'poll' } });
    expect(hijack.status).toBe(401);

    const up = await agentComesUp(id, { url: loopback(`/agent/echo/lc-${uniq()}`) });
    expect(up.register.auth_token).toBeUndefined();
    // Register hands over the inbound secret too (SaaS instances have no /configs): the same one.
    expect(up.register.platform_inbound_secret).toBe(start.platform_inbound_secret);
    expect((await rowOf(id)).status).toBe('online');
    const tokens = await sql(`SELECT origin FROM workspace_auth_tokens WHERE workspace_id = $1 AND revoked_at IS NULL`, [id]);
    expect(tokens).toEqual([{ origin: 'issued' }]);
  });

  it('with no provisioner a new workspace is failed with the fixed text, and nothing is started', async () => {
    const res = await (async () => {
      const ctx = createExecutionContext();
      const r = await worker.fetch(
        new Request(`${BASE}/workspaces`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ name: `np-${uniq()}` }) }),
        { ...env, PROVISIONER_URL: undefined },
        ctx,
      );
      await waitOnExecutionContext(ctx);
      return r;
    })();
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    expect(await rowOf(id)).toMatchObject({ status: 'failed', last_sample_error: 'Docker not available on this platform instance' });
    const [event] = await sql(`SELECT payload FROM structure_events WHERE workspace_id = $1 AND event_type = 'WORKSPACE_PROVISION_FAILED'`, [id]);
    expect(event.payload.error).toBe('Docker not available on this platform instance');
    expect(await provisionerCalls(id)).toEqual([]);
  });
});

describe('POST /workspaces/:id/restart', () => {
  it('revokes the old credentials, stops then starts with fresh ones, and sends the restart context once the agent is back', async () => {
    const a = await onlineAgent();
    const first = (await waitForStart(a.id))!;
    // An agent may restart itself (WorkspaceAuth).
    const res = await post(`/workspaces/${a.id}/restart`, a.token);
    expect(res).toMatchObject({ status: 200, body: { status: 'provisioning' } });
    expect(await rowOf(a.id)).toMatchObject({ status: 'provisioning', url: null });
    const second = await waitForStart(a.id, 2);
    expect(second.auth_token).not.toBe(first.auth_token);
    expect(second.platform_inbound_secret).not.toBe(first.platform_inbound_secret);
    expect(await lifecycleOps(a.id)).toEqual(['start', 'stop', 'start']);
    const old = await callJson('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id } });
    expect(old.status).toBe(401);

    await agentComesUp(a.id, { url: loopback(`/agent/echo/${a.name}`), startCount: 2 });
    const context = await waitFor(async () => (await received(a.name)).find((r) => r.body.includes('WORKSPACE RESTART CONTEXT')), 15_000);
    const message = JSON.parse(context.body).params.message;
    expect(message.metadata).toMatchObject({ source: 'platform', kind: 'restart_context', restart_context: true });
    expect(message.parts[0].text).toMatch(/^=== WORKSPACE RESTART CONTEXT ===\nRestart at: \S+Z\nPrevious session ended: \S+Z \(\d+s ago\)\nEnv vars now available: /);
    await settle(1500);
    expect((await received(a.name)).filter((r) => r.body.includes('WORKSPACE RESTART CONTEXT'))).toHaveLength(1);
  });

  it('errors: bad id 400, unknown and removed 404, foreign or missing token 401, paused / parent paused / external 409, no provisioner 503', async () => {
    const a = await onlineAgent();
    const other = await registeredAgent({ mode: 'poll' });
    expect((await post('/workspaces/not-a-uuid/restart', ADMIN)).status).toBe(400);
    expect((await post(`/workspaces/${crypto.randomUUID()}/restart`, ADMIN)).status).toBe(404);
    expect((await post(`/workspaces/${a.id}/restart`, other.token)).status).toBe(401);
    expect((await post(`/workspaces/${a.id}/restart`)).status).toBe(401);
    expect(await post(`/workspaces/${other.id}/restart`, ADMIN)).toMatchObject({ status: 409, body: { error: 'external workspace: its agent is not run by this platform' } });

    const child = await onlineAgent({ parentId: a.id });
    await sql(`UPDATE workspaces SET status = 'paused' WHERE id = $1`, [a.id]);
    expect(await post(`/workspaces/${child.id}/restart`, ADMIN)).toMatchObject({ status: 409, body: { error: 'a parent workspace is paused — resume it first' } });
    expect((await post(`/workspaces/${a.id}/restart`, ADMIN)).status).toBe(409);
    expect(await starts(child.id)).toBe(1);

    expect((await withoutProvisioner('POST', `/workspaces/${child.id}/restart`)).status).toBe(503);
    expect((await callJson('DELETE', `/workspaces/${a.id}?confirm=true`, { token: ADMIN })).status).toBe(200);
    expect((await post(`/workspaces/${a.id}/restart`, ADMIN)).status).toBe(404);
  });
});

describe('pause / resume', () => {
  it('pause cascades and stops agents; restarts skip paused workspaces; resume cascades from the top only', async () => {
    const parent = await onlineAgent();
    const child = await onlineAgent({ parentId: parent.id });
    const ext = await registeredAgent({ mode: 'poll', parentId: child.id });
    const paused = await post(`/workspaces/${parent.id}/pause`, ADMIN);
    expect(paused).toMatchObject({ status: 200, body: { status: 'paused', paused_count: 3 } });
    for (const id of [parent.id, child.id, ext.id]) expect((await rowOf(id)).status).toBe('paused');
    expect(await lifecycleOps(parent.id)).toEqual(['start', 'stop']);
    expect(await lifecycleOps(child.id)).toEqual(['start', 'stop']);
    expect((await post(`/workspaces/${parent.id}/pause`, ADMIN)).status).toBe(404);
    expect((await post(`/workspaces/${child.id}/pause`, ADMIN)).status).toBe(404);

    // The dead-agent path, liveness or a secrets change asking for a restart: a paused workspace stays down.
    await requestRestart(env, child.id);
    await settle(600);
    expect(await starts(child.id)).toBe(1);

    expect((await post(`/workspaces/${child.id}/resume`, ADMIN)).status).toBe(409);
    expect((await post(`/workspaces/${crypto.randomUUID()}/resume`, ADMIN)).status).toBe(404);
    expect((await withoutProvisioner('POST', `/workspaces/${parent.id}/resume`)).status).toBe(503);
    const resumed = await post(`/workspaces/${parent.id}/resume`, parent.token);
    expect(resumed).toMatchObject({ status: 200, body: { status: 'provisioning', resumed_count: 3 } });
    expect((await rowOf(ext.id)).status).toBe('offline');
    await waitForStart(parent.id, 2);
    await waitForStart(child.id, 2);
    expect((await rowOf(child.id)).status).toBe('provisioning');
    expect((await post(`/workspaces/${parent.id}/resume`, ADMIN)).status).toBe(404);
  });

  it('50 concurrent restarts: every answer is 200 or a 409, and they fold into at most two cycles', async () => {
    const a = await onlineAgent();
    const answers = await Promise.all(Array.from({ length: 50 }, () => post(`/workspaces/${a.id}/restart`, ADMIN)));
    expect(answers.every((r) => r.status === 200 || r.status === 409)).toBe(true);
    expect(answers.filter((r) => r.status === 200).length).toBeGreaterThan(0);
    await settle(1500);
    // The create's start, then the coalescer: one cycle for the burst and at most one follow-up.
    const count = await starts(a.id);
    expect(count).toBeGreaterThanOrEqual(2);
    expect(count).toBeLessThanOrEqual(3);
    expect(JSON.stringify(answers.map((r) => r.body))).not.toMatch(/provisioner|docker|stack|Error:/i);
  });

  it('of 20 concurrent pauses exactly one succeeds', async () => {
    const a = await onlineAgent();
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(`/workspaces/${a.id}/pause`, ADMIN)));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(1);
    expect(answers.filter((r) => r.status === 404)).toHaveLength(19);
    expect(await lifecycleOps(a.id)).toEqual(['start', 'stop']);
  });
});

describe('hibernate and the A2A wake', () => {
  it('hibernates an idle online agent, and the next message wakes it through the restart cycle', async () => {
    const a = await onlineAgent();
    const caller = await registeredAgent({ mode: 'poll' });
    const fresh = await createWorkspace();
    expect(await post(`/workspaces/${fresh.id}/hibernate`, ADMIN)).toMatchObject({ status: 409, body: { status: 'provisioning' } });
    await callJson('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, active_tasks: 2 } });
    expect(await post(`/workspaces/${a.id}/hibernate`, ADMIN)).toMatchObject({ status: 409, body: { active_tasks: 2 } });
    expect((await post(`/workspaces/${a.id}/hibernate?force=maybe`, ADMIN)).status).toBe(400);
    await callJson('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, active_tasks: 0 } });

    expect(await post(`/workspaces/${a.id}/hibernate`, a.token)).toMatchObject({ status: 200, body: { status: 'hibernated' } });
    expect(await rowOf(a.id)).toMatchObject({ status: 'hibernated', url: null });
    expect(await lifecycleOps(a.id)).toEqual(['start', 'stop']);
    expect((await post(`/workspaces/${a.id}/hibernate`, ADMIN)).status).toBe(409);

    const wake = await callJson('POST', `/workspaces/${a.id}/a2a`, { token: caller.token, body: a2aMessage('wake up') });
    expect(wake).toMatchObject({ status: 503, body: { waking: true, retry_after: 15 } });
    await waitForStart(a.id, 2);
    expect((await rowOf(a.id)).status).toBe('provisioning');
    await agentComesUp(a.id, { url: loopback(`/agent/echo/${a.name}`), startCount: 2 });
    expect((await callJson('POST', `/workspaces/${a.id}/a2a`, { token: caller.token, body: a2aMessage('again') })).status).toBe(200);
    expect(await starts(a.id)).toBe(2);
  });

  it('force=true hibernates a busy agent; of concurrent hibernates one wins', async () => {
    const a = await onlineAgent();
    await callJson('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, active_tasks: 3 } });
    const answers = await Promise.all(Array.from({ length: 10 }, () => post(`/workspaces/${a.id}/hibernate?force=true`, ADMIN)));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(1);
    expect(answers.filter((r) => r.status === 409)).toHaveLength(9);
    expect((await rowOf(a.id)).status).toBe('hibernated');
  });
});

describe('DELETE stops agents', () => {
  it('descendants first, with purge removing volumes; a partial stop failure is a 502 with ids only, and the workspaces stay removed', async () => {
    const parent = await onlineAgent();
    const child = await onlineAgent({ parentId: parent.id });
    const grandchild = await onlineAgent({ parentId: child.id });
    await failNext(child.id, 'stop', { status: 500, message: LEAK_TEXT });
    const del = await callJson('DELETE', `/workspaces/${parent.id}?confirm=true&purge=true`, { token: ADMIN });
    expect(del.status).toBe(502);
    expect(del.body).toEqual({ error: 'workspace removed but some agents could not be stopped', removed_count: 3, stop_failures: [child.id] });
    noLeak(del.body);
    for (const id of [parent.id, child.id, grandchild.id]) expect((await rowOf(id)).status).toBe('removed');
    const stopOf = async (id: string) => (await provisionerCalls(id)).find((c) => c.op === 'stop')!;
    const [g, c, p] = [await stopOf(grandchild.id), await stopOf(child.id), await stopOf(parent.id)];
    expect(g.seq).toBeLessThan(c.seq);
    expect(c.seq).toBeLessThan(p.seq);
    for (const call of [g, c, p]) expect(call).toMatchObject({ purge: true, instance_id: null });
  });

  it('without purge the volume stays; external agents are not ours to stop', async () => {
    const a = await onlineAgent();
    const ext = await registeredAgent({ mode: 'poll', parentId: a.id });
    const del = await callJson('DELETE', `/workspaces/${a.id}?confirm=true`, { token: ADMIN });
    expect(del).toMatchObject({ status: 200, body: { status: 'removed', cascade_deleted: 1 } });
    expect((await provisionerCalls(a.id)).filter((c) => c.op === 'stop')).toEqual([expect.objectContaining({ purge: false })]);
    expect(await provisionerCalls(ext.id)).toEqual([]);
    expect((await callJson('DELETE', `/workspaces/${a.id}?purge=yes`, { token: ADMIN })).status).toBe(400);
  });

  it("drops the workspace's coordinator state: no schedule, coalescer state or alarm is left", async () => {
    const a = await onlineAgent();
    await post(`/workspaces/${a.id}/restart`, ADMIN);
    await waitForStart(a.id, 2);
    // The restart context is waiting for the agent: the coordinator holds state and an alarm.
    const before = await coordinatorOf(env, a.id).inspect();
    expect(before.keys.length > 0 || before.alarm !== null).toBe(true);
    expect((await callJson('DELETE', `/workspaces/${a.id}`, { token: ADMIN })).status).toBe(200);
    await waitFor(async () => {
      const after = await coordinatorOf(env, a.id).inspect();
      return after.keys.length === 0 && after.alarm === null;
    });
    await settle(1200);
    expect(await coordinatorOf(env, a.id).inspect()).toEqual({ keys: [], alarm: null });
  });
});

describe('a failed provision', () => {
  it('sets failed and broadcasts the canned text; no leak marker reaches a broadcast, an event row or a response', async () => {
    const a = await onlineAgent();
    const events = await subscribeEvents(a.id, ADMIN);
    await failNext(a.id, 'start', { status: 500, message: LEAK_TEXT });
    expect((await post(`/workspaces/${a.id}/restart`, ADMIN)).status).toBe(200);
    const failed = await events.next((m) => m.event === 'WORKSPACE_PROVISION_FAILED');
    expect(failed.payload).toEqual({ error: 'provisioning failed' });
    expect(await rowOf(a.id)).toMatchObject({ status: 'failed', last_sample_error: 'provisioning failed' });
    await settle(200);
    noLeak(events.messages);
    noLeak(await sql('SELECT payload FROM structure_events WHERE workspace_id = $1', [a.id]));
    // This workspace as the list shows it (other files' workspaces share the list: a bootstrap
    // failure, for one, shows its agent's own log text to the operator on purpose).
    noLeak((await callJson('GET', '/workspaces', { token: ADMIN })).body.filter((w: { id: string }) => w.id === a.id));
    noLeak((await callJson('GET', `/workspaces/${a.id}`, { token: ADMIN })).body);
    events.close();
  });
});

describe('GET /workspaces/:id/console', () => {
  it('operators only; 200 with the output, 502 with a fixed text on a provisioner error, 501 without a provisioner', async () => {
    const a = await onlineAgent();
    const ok = await callJson('GET', `/workspaces/${a.id}/console`, { token: ADMIN });
    expect(ok).toMatchObject({ status: 200, body: { output: expect.stringContaining('[boot]'), truncated: false } });
    expect((await callJson('GET', `/workspaces/${a.id}/console`, { token: a.token })).status).toBe(401);
    expect((await callJson('GET', `/workspaces/${a.id}/console`)).status).toBe(401);
    expect((await callJson('GET', '/workspaces/0/console', { token: ADMIN })).status).toBe(400);
    expect((await callJson('GET', `/workspaces/${crypto.randomUUID()}/console`, { token: ADMIN })).status).toBe(404);
    await failNext(a.id, 'console', { status: 500, message: LEAK_TEXT });
    const failed = await callJson('GET', `/workspaces/${a.id}/console`, { token: ADMIN });
    expect(failed).toMatchObject({ status: 502, body: { error: 'console output unavailable' } });
    noLeak(failed.body);
    expect((await withoutProvisioner('GET', `/workspaces/${a.id}/console`)).status).toBe(501);
  });
});

describe('configuration', () => {
  it('without EXTERNAL_PLATFORM_URL nothing is started: the workspace fails with the canned text', async () => {
    const { provisionWorkspace } = await import('../../src/provisioning/provision');
    const { provisionerFor } = await import('../../src/provisioning/provisioner');
    const { loadRestartable } = await import('../../src/workspaces/lifecycle');
    const { RequestScope } = await import('../../src/lib/request-scope');
    const { id } = await createWorkspace({ runtime: 'langgraph' });
    await waitForStart(id);
    const before = (await provisionerCalls(id)).length;
    const unconfigured = { ...env, EXTERNAL_PLATFORM_URL: undefined };
    const scope = new RequestScope(unconfigured);
    try {
      const row = await loadRestartable(scope.db, id);
      expect(await provisionWorkspace(scope, provisionerFor(unconfigured)!, row!)).toBe(false);
    } finally {
      await scope.close();
    }
    expect(await rowOf(id)).toMatchObject({ status: 'failed', last_sample_error: 'provisioning failed' });
    expect((await provisionerCalls(id)).length).toBe(before);
  });
});
