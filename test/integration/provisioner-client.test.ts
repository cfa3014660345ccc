// The Worker's provisioner client and the one configuration switch (SPEC §17): PROVISIONER_URL
// names the provisioner-agent, MOLECULE_DEPLOY_MODE its backend. Both backends are driven here by
// calling the module with a modified env (one vitest run has one Worker env, self-hosted: docker).
// The agent is the real one: docker on the Docker Engine double, ec2 on an in-memory stand-in.
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { markDeadIfNotRunning } from '../../src/a2a/dead-agent';
import type { RequestScope } from '../../src/lib/request-scope';
import { dispatchPlan, provisionerBackend, provisionerFor } from '../../src/provisioning/provisioner';
import { requestRestart, runRestartCycle, wakeWorkspace } from '../../src/provisioning/restart';
import { stopAgents } from '../../src/provisioning/stop';
import type { StartRequest } from '../../src/provisioning/protocol';
import { answerNext, engineState, failNext, provisionerCalls, setAgentState } from '../support/provisioner';

const docker = () => provisionerFor({ ...env, MOLECULE_DEPLOY_MODE: 'self-hosted' })!;
const ec2 = () => provisionerFor({ ...env, MOLECULE_DEPLOY_MODE: 'saas' })!;
const startRequest = (): StartRequest => ({
  runtime: 'langgraph',
  tier: 2,
  env: {},
  auth_token: 'mws_test_0123456789abcdef',
  platform_inbound_secret: 'inbound_0123456789abcdef',
  platform_url: 'https://edge.test',
});

/** A scope that fails the test on any DB access. */
function scopeWithoutDb(overrides: Partial<typeof env> = {}): RequestScope {
  return {
    env: { ...env, ...overrides },
    get db(): never {
      throw new Error('the DB was touched');
    },
    defer: () => {
      throw new Error('background work was scheduled');
    },
  } as unknown as RequestScope;
}

describe('the switch', () => {
  it('MOLECULE_DEPLOY_MODE picks the backend in one function: saas → ec2, anything else → docker', () => {
    expect(provisionerBackend({ MOLECULE_DEPLOY_MODE: 'saas' })).toBe('ec2');
    expect(provisionerBackend({ MOLECULE_DEPLOY_MODE: 'SaaS' })).toBe('ec2');
    expect(provisionerBackend({ MOLECULE_DEPLOY_MODE: 'self-hosted' })).toBe('docker');
    expect(provisionerBackend({})).toBe('docker');
    expect(provisionerFor({ ...env, PROVISIONER_URL: undefined })).toBeUndefined();
    expect(provisionerFor({ ...env, PROVISIONER_URL: '' })).toBeUndefined();
  });

  it('every dispatch branches in one place: docker by workspace id; ec2 by the instance on file, nothing sent without one', () => {
    const id = crypto.randomUUID();
    for (const op of ['start', 'stop', 'status', 'console'] as const) {
      expect(dispatchPlan('docker', op, id, 'i-ignored')).toEqual({ path: `/v1/docker/workspaces/${id}/${op}` });
    }
    expect(dispatchPlan('ec2', 'start', id, null)).toEqual({ path: `/v1/ec2/workspaces/${id}/start` });
    expect(dispatchPlan('ec2', 'stop', id, 'i-1')).toEqual({ path: `/v1/ec2/workspaces/${id}/stop` });
    expect(dispatchPlan('ec2', 'status', id, 'i-1')).toEqual({ path: `/v1/ec2/workspaces/${id}/status?instance_id=i-1` });
    expect(dispatchPlan('ec2', 'console', id, 'i-1')).toEqual({ path: `/v1/ec2/workspaces/${id}/console?instance_id=i-1` });
    for (const op of ['stop', 'status', 'console'] as const) expect(dispatchPlan('ec2', op, id, null)).toEqual({ settled: 'nothing_running' });
  });
});

describe('docker branch', () => {
  it('start, status, console and stop (purge) reach /v1/docker with no instance id', async () => {
    const id = crypto.randomUUID();
    const p = docker();
    expect(p.backend).toBe('docker');
    expect(await p.liveness(id, null)).toBe('not_running');
    const started = await p.start(id, startRequest());
    const { container } = await engineState(id);
    expect(started).toEqual({ ok: true, value: { url: `http://127.0.0.1:${container!.hostPort}`, instance_id: null } });
    expect(await p.liveness(id, null)).toBe('running');
    expect(await p.console(id, null)).toMatchObject({ ok: true, value: { output: expect.stringContaining('[boot]') } });
    expect(await p.stop(id, { purge: true, instanceId: null })).toEqual({ ok: true, value: { stopped: true, volume_removed: true } });
    expect(await p.liveness(id, null)).toBe('not_running');
    expect(await engineState(id)).toMatchObject({ container: null, volume: false });
    const calls = await provisionerCalls(id);
    expect(calls.map((c) => c.op)).toEqual(['status', 'start', 'status', 'console', 'stop', 'status']);
    expect(calls.every((c) => c.backend === 'docker')).toBe(true);
    expect(calls.find((c) => c.op === 'stop')).toMatchObject({ purge: true, instance_id: null });
  });
});

describe('ec2 branch', () => {
  it('start returns the instance; stop, status and console carry it; without one nothing is sent', async () => {
    const id = crypto.randomUUID();
    const p = ec2();
    const started = await p.start(id, startRequest());
    if (!started.ok) throw new Error('start failed');
    const instance = started.value.instance_id!;
    expect(instance).toMatch(/^i-/);
    expect(await p.liveness(id, instance)).toBe('running');
    expect((await p.console(id, instance)).ok).toBe(true);
    expect(await p.stop(id, { purge: false, instanceId: instance })).toMatchObject({ ok: true });
    // No instance on file: definitely nothing running (SPEC §17 CP IsRunning), and nothing to stop.
    expect(await p.liveness(id, null)).toBe('not_running');
    expect(await p.stop(id, { purge: false, instanceId: null })).toMatchObject({ ok: true });
    expect((await p.console(id, null)).ok).toBe(false);
    const calls = (await provisionerCalls(id)).map(({ seq: _, ...call }) => call);
    expect(calls).toEqual([
      { op: 'start', backend: 'ec2' },
      { op: 'status', backend: 'ec2', instance_id: instance },
      { op: 'console', backend: 'ec2', instance_id: instance },
      { op: 'stop', backend: 'ec2', purge: false, instance_id: instance },
    ]);
  });
});

describe('the client', () => {
  it('signs every request: another secret is refused (401 unauthorized) and nothing is done', async () => {
    const id = crypto.randomUUID();
    const forged = provisionerFor({ ...env, PROVISIONER_SECRET: 'not-the-secret' })!;
    expect(await forged.start(id, startRequest())).toEqual({ ok: false, failure: { kind: 'refused', code: 'unauthorized', status: 401 } });
    expect(await forged.liveness(id, 'i-1')).toBe('unknown');
    expect(await provisionerCalls(id)).toEqual([]);
  });

  it('uncertain status answers are `unknown` (treated as alive): a 5xx, a body off the protocol, an unreachable agent', async () => {
    const id = crypto.randomUUID();
    await setAgentState(id, 'stopped');
    await failNext(id, 'status', { status: 500, message: 'RAW-DAEMON-TEXT inspect exploded' });
    expect(await docker().liveness(id, null)).toBe('unknown');
    // No real agent answers off the protocol: the proxy stands in for one that does.
    await answerNext(id, 'status', { status: 200, body: { state: 'exploded' } });
    expect(await docker().liveness(id, null)).toBe('unknown');
    expect(await provisionerFor({ ...env, PROVISIONER_URL: 'http://127.0.0.1:9' })!.liveness(id, 'i-1')).toBe('unknown');
    expect(await docker().liveness(id, null)).toBe('not_running');
  });

  it('answers are capped and validated; failures carry a classified kind and no provisioner text', async () => {
    const id = crypto.randomUUID();
    const leak = 'LEAK m5.4xlarge ami-0deadbeef vpc-0abc subnet-0def Traceback';
    // The daemon fails; the agent answers its own fixed text.
    await failNext(id, 'start', { status: 500, message: leak });
    const refused = await docker().start(id, startRequest());
    expect(refused).toEqual({ ok: false, failure: { kind: 'refused', code: 'unavailable', status: 503 } });
    // Answers no real agent gives (oversized, off the protocol): the proxy stands in for the agent.
    await answerNext(id, 'console', { status: 200, body: { output: 'x'.repeat(2 * 1024 * 1024) } });
    expect(await docker().console(id, null)).toEqual({ ok: false, failure: { kind: 'bad_response' } });
    await answerNext(id, 'start', { status: 200, body: { url: 42, instance_id: leak } });
    const malformed = await docker().start(id, startRequest());
    expect(malformed).toEqual({ ok: false, failure: { kind: 'bad_response' } });
    expect(JSON.stringify([refused, malformed])).not.toMatch(/LEAK|m5|ami-|vpc-|subnet-|Traceback/);
  });
});

describe('neither configured: a no-op that touches neither the DB nor any provisioner', () => {
  it('the restart cycle, stops, the wake, the dead-agent check and restart requests', async () => {
    const id = crypto.randomUUID();
    const none = { PROVISIONER_URL: undefined };
    expect(await runRestartCycle(scopeWithoutDb(none), id, { fresh: false })).toBeUndefined();
    expect(await stopAgents(scopeWithoutDb(none), [{ id, runtime: 'langgraph', instance_id: 'i-1' }], { purge: true })).toEqual([]);
    await wakeWorkspace(scopeWithoutDb(none), id);
    expect(await markDeadIfNotRunning(scopeWithoutDb(none), { id, runtime: 'langgraph' })).toBe(false);
    expect(await requestRestart({ ...env, ...none }, id)).toBe(false);
    expect(await provisionerCalls(id)).toEqual([]);
  });
});
