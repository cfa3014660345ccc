// Liveness without polling the datastore (issue #10, SPEC §19): each workspace's coordinator holds
// its agent's silence deadline as an alarm; register and heartbeat push it forward; when it passes
// the datastore decides, and a silent agent goes offline (WORKSPACE_OFFLINE), restarted if it is a
// push agent we run. Deadlines here are seconds long (noteAlive with a short TTL), not 180 s.
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { coordinatorOf } from '../../src/coordinator';
import { livenessTtlSeconds } from '../../src/workspaces/liveness';
import { ADMIN, callJson, createWorkspace, loopback, registeredAgent, sql, uniq, waitFor } from '../support/api';
import { subscribeEvents } from '../support/events';
import { agentComesUp, lifecycleOps } from '../support/provisioner';

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const statusOf = async (id: string) => ((await sql('SELECT status FROM workspaces WHERE id = $1', [id]))[0] as { status: string }).status;
const starts = async (id: string) => (await lifecycleOps(id)).filter((op) => op === 'start').length;
/** The agent last spoke `seconds` ago, as far as the datastore knows. */
const heardAgo = (id: string, seconds: number) => sql(`UPDATE workspaces SET last_heartbeat_at = now() - make_interval(secs => $2) WHERE id = $1`, [id, seconds]);

/** Waits for the register's own (deferred) deadline to land, so a test's short one is not overwritten by it. */
async function armedByRegister(id: string) {
  await waitFor(async () => (await coordinatorOf(env, id).inspect()).keys.includes('liveness-ttl'));
}

async function ourAgent() {
  const { id } = await createWorkspace({ runtime: 'langgraph' });
  const up = await agentComesUp(id, { url: loopback(`/agent/echo/live-${uniq()}`) });
  await armedByRegister(id);
  return { id, token: up.token };
}

describe('liveness deadlines', () => {
  it('register arms the deadline; a silent agent we run goes offline, WORKSPACE_OFFLINE is broadcast, and it is restarted', async () => {
    const { id } = await ourAgent();
    expect((await coordinatorOf(env, id).inspect()).alarm).not.toBeNull();
    const events = await subscribeEvents(id, ADMIN);
    await heardAgo(id, 30);
    await coordinatorOf(env, id).noteAlive(1);
    const offline = await events.next((m) => m.event === 'WORKSPACE_OFFLINE');
    expect(offline.payload).toEqual({ reason: 'no heartbeat', silent_seconds: 1 });
    // The restart cycle takes it through provisioning to a fresh start.
    await waitFor(async () => (await starts(id)) === 2, 10_000);
    expect(await statusOf(id)).toBe('provisioning');
    events.close();
  });

  it('a later heartbeat moves the deadline: the earlier one does not fire', async () => {
    const { id } = await ourAgent();
    await heardAgo(id, 30);
    await coordinatorOf(env, id).noteAlive(1);
    await coordinatorOf(env, id).noteAlive(4); // pushed forward before the first deadline
    await settle(2000);
    expect(await statusOf(id)).toBe('online');
    await waitFor(async () => (await statusOf(id)) !== 'online', 8000); // offline, then provisioning (restart)
  });

  it('the datastore has the last word: an agent heard from since the deadline was set stays online until its new deadline', async () => {
    const { id } = await ourAgent();
    const events = await subscribeEvents(id, ADMIN);
    // A heartbeat the datastore saw but whose deadline update was lost: heard "now + 2 s".
    await sql(`UPDATE workspaces SET last_heartbeat_at = now() + interval '2 seconds' WHERE id = $1`, [id]);
    await coordinatorOf(env, id).noteAlive(1);
    await settle(2000);
    expect(await statusOf(id)).toBe('online'); // checked at 1 s, found alive, re-armed for heard + 1 s
    expect(events.messages.some((m) => m.event === 'WORKSPACE_OFFLINE')).toBe(false);
    await events.next((m) => m.event === 'WORKSPACE_OFFLINE', 8000); // then offline (and restarted)
    events.close();
  });

  it('an external agent goes offline but nothing restarts it; its next heartbeat brings it back and re-arms', async () => {
    const agent = await registeredAgent({ url: loopback(`/agent/echo/ext-${uniq()}`) });
    await armedByRegister(agent.id);
    await heardAgo(agent.id, 30);
    await coordinatorOf(env, agent.id).noteAlive(1);
    await waitFor(async () => (await statusOf(agent.id)) === 'offline', 8000);
    await settle(500);
    expect(await lifecycleOps(agent.id)).toEqual([]);

    const beat = await callJson('POST', '/registry/heartbeat', { token: agent.token, body: { workspace_id: agent.id } });
    expect(beat.status).toBe(200);
    expect(await statusOf(agent.id)).toBe('online');
    await waitFor(async () => (await coordinatorOf(env, agent.id).inspect()).alarm !== null);
  });

  it('only online and degraded are watched: a paused workspace is left paused', async () => {
    const { id } = await ourAgent();
    expect((await callJson('POST', `/workspaces/${id}/pause`, { token: ADMIN })).status).toBe(200);
    await heardAgo(id, 30);
    await coordinatorOf(env, id).noteAlive(1);
    await settle(2500);
    expect(await statusOf(id)).toBe('paused');
  });

  it('a deleted workspace keeps no deadline', async () => {
    const { id } = await ourAgent();
    expect((await callJson('DELETE', `/workspaces/${id}?confirm=true`, { token: ADMIN })).status).toBe(200);
    await waitFor(async () => (await coordinatorOf(env, id).inspect()).keys.length === 0);
    expect((await coordinatorOf(env, id).inspect()).alarm).toBeNull();
  });

  it('silence windows: 180 s for agents we run, 90 s for external ones (the seed), overridable', () => {
    expect(livenessTtlSeconds({}, 'langgraph')).toBe(180);
    expect(livenessTtlSeconds({}, 'external')).toBe(90);
    expect(livenessTtlSeconds({ LIVENESS_TTL_SECONDS: '60', REMOTE_LIVENESS_STALE_AFTER: '300' }, 'hermes')).toBe(60);
    expect(livenessTtlSeconds({ LIVENESS_TTL_SECONDS: '60', REMOTE_LIVENESS_STALE_AFTER: '300' }, 'external')).toBe(300);
    for (const bad of ['0', '-5', 'abc', '1.5', '99999999']) expect(livenessTtlSeconds({ LIVENESS_TTL_SECONDS: bad }, 'langgraph')).toBe(180);
  });
});
