// The cron sweeper's lifecycle passes (issue #10, SPEC §18–§20), called directly against the real
// Postgres, real coordinators and the provisioner: provision timeout, the idle monitor, orphan
// agents and stale tokens. Each call is scoped to the test's own workspaces (other suites share
// the datastore).
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { RequestScope } from '../../src/lib/request-scope';
import { claimHibernation } from '../../src/workspaces/lifecycle';
import { hibernateIdleWorkspaces } from '../../src/sweeper/hibernation';
import { revokeStaleTokens, stopOrphans } from '../../src/sweeper/orphans';
import { failStuckProvisioning, PROVISION_TIMEOUT_TEXT } from '../../src/sweeper/provision-timeout';
import { ADMIN, callJson, createWorkspace, loopback, registeredAgent, sql, uniq, waitFor } from '../support/api';
import { subscribeEvents } from '../support/events';
import { agentComesUp, engineState, failNext, failNextList, lifecycleOps, provisionerCalls, setAgentState, waitForStart } from '../support/provisioner';

async function withScope<T>(fn: (scope: RequestScope) => Promise<T>, overrides: Partial<typeof env> = {}): Promise<T> {
  const scope = new RequestScope({ ...env, ...overrides });
  try {
    return await fn(scope);
  } finally {
    await scope.close();
  }
}
const rowOf = async (id: string) =>
  (await sql('SELECT status, last_sample_error, provisioning_since FROM workspaces WHERE id = $1', [id]))[0] as { status: string; last_sample_error: string | null; provisioning_since: string | null };
const provisioningFor = (id: string, minutes: number) =>
  sql(`UPDATE workspaces SET provisioning_since = now() - make_interval(mins => $2) WHERE id = $1`, [id, minutes]);

describe('provision timeout', () => {
  it('provisioning_since is set whenever a workspace enters provisioning and cleared when it leaves', async () => {
    const { id } = await createWorkspace({ runtime: 'langgraph' });
    expect((await rowOf(id)).provisioning_since).not.toBeNull();
    await agentComesUp(id, { url: loopback(`/agent/echo/pt-${uniq()}`) });
    expect(await rowOf(id)).toMatchObject({ status: 'online', provisioning_since: null });
    expect((await callJson('POST', `/workspaces/${id}/restart`, { token: ADMIN })).status).toBe(200);
    expect((await rowOf(id)).provisioning_since).not.toBeNull();
  });

  it('a workspace stuck past 10 minutes goes failed with the canned broadcast; a younger one is left alone', async () => {
    const stuck = await createWorkspace({ runtime: 'langgraph' });
    const young = await createWorkspace({ runtime: 'langgraph' });
    await waitForStart(stuck.id);
    await waitForStart(young.id);
    const events = await subscribeEvents(stuck.id, ADMIN);
    await provisioningFor(stuck.id, 11);
    await provisioningFor(young.id, 9);
    expect(await withScope((scope) => failStuckProvisioning(scope, { workspaceIds: [stuck.id, young.id] }))).toBe(1);
    expect(await rowOf(stuck.id)).toMatchObject({ status: 'failed', last_sample_error: PROVISION_TIMEOUT_TEXT, provisioning_since: null });
    expect((await rowOf(young.id)).status).toBe('provisioning');
    const failed = await events.next((m) => m.event === 'WORKSPACE_PROVISION_FAILED');
    expect(failed.payload).toEqual({ error: PROVISION_TIMEOUT_TEXT, timeout_secs: 600, runtime: 'langgraph', source: 'provision_timeout_sweep' });
    events.close();
  });

  it('hermes gets 30 minutes; PROVISION_TIMEOUT_SECONDS overrides every runtime', async () => {
    const hermes = await createWorkspace({ runtime: 'hermes' });
    await waitForStart(hermes.id);
    await provisioningFor(hermes.id, 20);
    expect(await withScope((scope) => failStuckProvisioning(scope, { workspaceIds: [hermes.id] }))).toBe(0);
    expect(await withScope((scope) => failStuckProvisioning(scope, { workspaceIds: [hermes.id] }), { PROVISION_TIMEOUT_SECONDS: '60' })).toBe(1);
    expect((await rowOf(hermes.id)).status).toBe('failed');
  });

  it('an agent that registers before the sweep wins: online stays online', async () => {
    const { id } = await createWorkspace({ runtime: 'langgraph' });
    await provisioningFor(id, 30);
    await agentComesUp(id, { url: loopback(`/agent/echo/pt-${uniq()}`) });
    expect(await withScope((scope) => failStuckProvisioning(scope, { workspaceIds: [id] }))).toBe(0);
    expect((await rowOf(id)).status).toBe('online');
  });
});

describe('idle hibernation', () => {
  async function idleAgent(minutes: number) {
    const { id } = await createWorkspace({ runtime: 'langgraph', hibernation_idle_minutes: minutes });
    const name = `hib-${uniq()}`;
    await agentComesUp(id, { url: loopback(`/agent/echo/${name}`) });
    return { id, name };
  }
  const createdAgo = (id: string, minutes: number) => sql(`UPDATE workspaces SET created_at = now() - make_interval(mins => $2) WHERE id = $1`, [id, minutes]);

  it('hibernates an online agent idle past its window through the hibernate path (stop, WORKSPACE_HIBERNATED)', async () => {
    const idle = await idleAgent(5);
    const fresh = await idleAgent(5);
    const off = await idleAgent(0);
    await createdAgo(idle.id, 6);
    await createdAgo(off.id, 600);
    const events = await subscribeEvents(idle.id, ADMIN);
    expect(await withScope((scope) => hibernateIdleWorkspaces(scope, { workspaceIds: [idle.id, fresh.id, off.id] }))).toBe(1);
    expect((await rowOf(idle.id)).status).toBe('hibernated');
    expect(await lifecycleOps(idle.id)).toEqual(['start', 'stop']);
    await events.next((m) => m.event === 'WORKSPACE_HIBERNATED');
    expect((await rowOf(fresh.id)).status).toBe('online');
    expect((await rowOf(off.id)).status).toBe('online');
    events.close();
  });

  it('recent traffic, active tasks or an external runtime keep a workspace awake', async () => {
    const talked = await idleAgent(5);
    const busy = await idleAgent(5);
    await createdAgo(talked.id, 60);
    await createdAgo(busy.id, 60);
    await sql(`INSERT INTO activity_logs (workspace_id, activity_type, summary) VALUES ($1, 'a2a_receive', 'recent')`, [talked.id]);
    await sql(`UPDATE workspaces SET active_tasks = 1 WHERE id = $1`, [busy.id]);
    const ext = await createWorkspace({ external: true, url: loopback(`/agent/echo/hib-${uniq()}`), hibernation_idle_minutes: 1 });
    await sql(`UPDATE workspaces SET created_at = now() - interval '1 hour' WHERE id = $1`, [ext.id]);
    expect(await withScope((scope) => hibernateIdleWorkspaces(scope, { workspaceIds: [talked.id, busy.id, ext.id] }))).toBe(0);
    for (const id of [talked.id, busy.id, ext.id]) expect((await rowOf(id)).status).toBe('online');
  });

  it('the claim re-checks idleness: a message after the monitor chose the workspace keeps it awake', async () => {
    const w = await idleAgent(5);
    await createdAgo(w.id, 60);
    await sql(`INSERT INTO activity_logs (workspace_id, activity_type, summary) VALUES ($1, 'a2a_receive', 'just now')`, [w.id]);
    expect(await withScope((scope) => claimHibernation(scope.db, w.id, false, { onlyIfIdle: true }))).toBeUndefined();
    expect((await rowOf(w.id)).status).toBe('online');
  });

  it('hibernation_idle_minutes is validated and shown', async () => {
    for (const bad of [-1, 10_081, 1.5, '5', 2 ** 31]) {
      const res = await callJson('POST', '/workspaces', { token: ADMIN, body: { name: `hib-${uniq()}`, hibernation_idle_minutes: bad } });
      expect(res.status).toBe(400);
    }
    const { id } = await createWorkspace({ runtime: 'langgraph', hibernation_idle_minutes: 30 });
    expect((await callJson('GET', `/workspaces/${id}`, { token: ADMIN })).body.hibernation_idle_minutes).toBe(30);
    expect((await callJson('PATCH', `/workspaces/${id}`, { token: ADMIN, body: { hibernation_idle_minutes: 0 } })).status).toBe(200);
    await waitFor(async () => ((await sql('SELECT hibernation_idle_minutes AS m FROM workspaces WHERE id = $1', [id]))[0] as { m: number }).m === 0);
  });
});

describe('orphan agents (self-hosted)', () => {
  it('stops containers whose workspace is unknown or removed, volume included; live ones are left alone', async () => {
    const unknown = crypto.randomUUID();
    await setAgentState(unknown, 'running'); // a managed container the datastore knows nothing of
    const removed = await createWorkspace({ runtime: 'langgraph' });
    await agentComesUp(removed.id, { url: loopback(`/agent/echo/orph-${uniq()}`) });
    // Its stop failed at delete time: removed, but its container still runs.
    await failNext(removed.id, 'stop', { status: 500, message: 'driver failed' });
    expect((await callJson('DELETE', `/workspaces/${removed.id}?confirm=true`, { token: ADMIN })).status).toBe(502);
    const live = await createWorkspace({ runtime: 'langgraph' });
    await agentComesUp(live.id, { url: loopback(`/agent/echo/orph-${uniq()}`) });

    const ids = [unknown, removed.id, live.id];
    expect(await withScope((scope) => stopOrphans(scope, { workspaceIds: ids }))).toBe(2);
    for (const id of [unknown, removed.id]) {
      expect((await provisionerCalls(id)).filter((c) => c.op === 'stop').at(-1)).toMatchObject({ purge: true });
      expect((await engineState(id)).container).toBeNull();
    }
    expect((await engineState(live.id)).container?.state).toBe('running');
    expect(await withScope((scope) => stopOrphans(scope, { workspaceIds: ids }))).toBe(0); // nothing left
  });

  it('does nothing on the EC2 backend (an orphan has no instance id on file) or without a provisioner', async () => {
    const unknown = crypto.randomUUID();
    await setAgentState(unknown, 'running');
    expect(await withScope((scope) => stopOrphans(scope, { workspaceIds: [unknown] }), { MOLECULE_DEPLOY_MODE: 'saas' })).toBe(0);
    expect(await withScope((scope) => stopOrphans(scope, { workspaceIds: [unknown] }), { PROVISIONER_URL: undefined })).toBe(0);
    expect((await engineState(unknown)).container?.state).toBe('running');
    await setAgentState(unknown, 'not_found');
  });
});

describe('stale tokens (self-hosted)', () => {
  const ageTokens = (id: string, minutes: number) =>
    sql(`UPDATE workspace_auth_tokens SET created_at = now() - make_interval(mins => $2), last_used_at = NULL WHERE workspace_id = $1`, [id, minutes]);
  const liveTokens = async (id: string) =>
    ((await sql('SELECT count(*)::int AS n FROM workspace_auth_tokens WHERE workspace_id = $1 AND revoked_at IS NULL', [id]))[0] as { n: number }).n;
  async function ours() {
    const { id } = await createWorkspace({ runtime: 'langgraph' });
    const up = await agentComesUp(id, { url: loopback(`/agent/echo/stale-${uniq()}`) });
    return { id, token: up.token };
  }

  it('revokes the tokens of a workspace with no container whose tokens all went unused for 5 minutes — and nothing else', async () => {
    const gone = await ours(); // its container vanished (a wiped volume, `docker rm` behind our back)
    await setAgentState(gone.id, 'not_found');
    await ageTokens(gone.id, 10);
    const recent = await ours(); // no container either, but its token was used 1 minute ago
    await setAgentState(recent.id, 'not_found');
    await ageTokens(recent.id, 10);
    await sql(`UPDATE workspace_auth_tokens SET last_used_at = now() - interval '1 minute' WHERE workspace_id = $1`, [recent.id]);
    const running = await ours(); // its container runs
    await ageTokens(running.id, 10);
    const external = await registeredAgent({ url: loopback(`/agent/echo/stale-${uniq()}`) });
    const poll = await registeredAgent({ mode: 'poll' });
    for (const w of [external, poll]) await ageTokens(w.id, 10);
    const provisioning = await createWorkspace({ runtime: 'langgraph' });
    await waitForStart(provisioning.id);
    await setAgentState(provisioning.id, 'not_found');
    await ageTokens(provisioning.id, 10);

    const ids = [gone.id, recent.id, running.id, external.id, poll.id, provisioning.id];
    expect(await withScope((scope) => revokeStaleTokens(scope, { workspaceIds: ids }))).toBe(1);
    expect(await liveTokens(gone.id)).toBe(0);
    expect((await callJson('POST', '/registry/heartbeat', { token: gone.token, body: { workspace_id: gone.id } })).status).toBe(401);
    for (const id of [recent.id, running.id, external.id, poll.id, provisioning.id]) expect(await liveTokens(id)).toBeGreaterThan(0);
  });

  it('a token issued while the sweep runs keeps its workspace: the staleness predicate is in the UPDATE itself', async () => {
    const w = await ours();
    await setAgentState(w.id, 'not_found');
    await ageTokens(w.id, 10);
    // A restart issuing a fresh token just before the UPDATE: the old stale one stays too (never a half state).
    await sql(`INSERT INTO workspace_auth_tokens (workspace_id, token_hash, prefix, origin) VALUES ($1, md5(random()::text), 'mws_race', 'minted')`, [w.id]);
    expect(await withScope((scope) => revokeStaleTokens(scope, { workspaceIds: [w.id] }))).toBe(0);
    expect(await liveTokens(w.id)).toBe(2);
  });

  it('never runs on a failed container listing (an empty answer would look like "nothing runs")', async () => {
    const w = await ours();
    await ageTokens(w.id, 10); // its container runs; a failed listing must not read as "no containers"
    await failNextList({ status: 500, message: 'Cannot connect to the Docker daemon' });
    expect(await withScope((scope) => revokeStaleTokens(scope, { workspaceIds: [w.id] }))).toBe(0);
    expect(await liveTokens(w.id)).toBe(1);
    expect(await withScope((scope) => revokeStaleTokens(scope, { workspaceIds: [w.id] }))).toBe(0); // listing fine, container runs
    expect(await liveTokens(w.id)).toBe(1);
  });
});
