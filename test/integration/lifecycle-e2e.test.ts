// The container lifecycle end to end (issue #9), asserted on what really happened in the engine:
// the Worker (self-hosted: docker backend) → the real provisioner-agent → the Docker Engine double
// (test/support/provisioner-control.ts). The agent registers with what the container finds in
// /configs, not with what the Worker sent; failures are injected at the daemon, so the agent
// classifies them itself. With PROVISIONER_TEST_DOCKER_HOST set, one workspace runs on a real engine.
import { describe, expect, it } from 'vitest';
import { a2aMessage, ADMIN, callJson, createWorkspace, loopback, registeredAgent, sql, uniq, waitFor } from '../support/api';
import { subscribeEvents } from '../support/events';
import {
  agentLog,
  containerPrints,
  engineState,
  failNext,
  provisionerAnswers,
  provisionerCalls,
  REAL_ENGINE_ENV,
  realEngine,
  realEngineContainer,
  waitForStart,
} from '../support/provisioner';

const statusOf = async (id: string) => ((await sql('SELECT status FROM workspaces WHERE id = $1', [id]))[0] as { status: string }).status;
const post = (path: string, token = ADMIN) => callJson('POST', path, { token });

/** The workspace's container once its `count`-th start is in, with the secrets the agent will read from /configs. */
async function containerOf(id: string, count = 1) {
  await waitForStart(id, count);
  const { container, configs } = await engineState(id);
  if (!container || !configs) throw new Error(`no container for ${id}`);
  return { container, token: configs['.auth_token']!, secret: configs['.platform_inbound_secret']! };
}

/** The container's agent boots: it registers with the token it finds in /configs/.auth_token. */
async function boots(id: string, token: string, name = `e2e-${uniq()}`) {
  const reg = await callJson('POST', '/registry/register', { token, body: { id, agent_card: { name: 'test-agent' }, url: loopback(`/agent/echo/${name}`) } });
  expect(reg.status).toBe(200);
  return reg.body as { platform_inbound_secret?: string };
}

async function onlineContainer(opts: Record<string, unknown> = {}) {
  const { id } = await createWorkspace(opts);
  const { token } = await containerOf(id);
  await boots(id, token.content);
  return { id, token: token.content };
}

describe('a container workspace, create → online → restart → pause/resume → hibernate/wake → delete', () => {
  it('runs each step in the engine, with fresh 0600 secrets per container', async () => {
    const { id, body } = await createWorkspace({ runtime: 'langgraph', tier: 2, secrets: { API_KEY: 'sk-e2e' } });
    expect(body.status).toBe('provisioning');

    // Create: ws-<id>, managed labels, the config volume on /configs, the secrets at 0600.
    const first = await containerOf(id);
    expect(first.container).toMatchObject({
      name: `ws-${id}`,
      image: 'molecule-test/langgraph:latest',
      state: 'running',
      labels: { 'molecule.platform.managed': 'true', 'molecule.workspace_id': id },
      binds: [`ws-${id}-configs:/configs`],
      env: { WORKSPACE_ID: id, PLATFORM_URL: 'http://edge.test', API_KEY: 'sk-e2e', TIER: '2' },
    });
    expect(first.token.mode).toBe(0o600);
    expect(first.secret.mode).toBe(0o600);
    expect(first.token.content).toMatch(/^mws_/);
    expect(await statusOf(id)).toBe('provisioning');
    const registered = await boots(id, first.token.content);
    expect(registered.platform_inbound_secret).toBe(first.secret.content);
    expect(await statusOf(id)).toBe('online');

    // Restart: the old container is removed, a new one gets a fresh token (the old one is 401) and secret.
    expect((await post(`/workspaces/${id}/restart`)).status).toBe(200);
    const second = await containerOf(id, 2);
    expect(second.container.id).not.toBe(first.container.id);
    expect(second.token.content).not.toBe(first.token.content);
    expect(second.secret.content).not.toBe(first.secret.content);
    expect(second.token.mode).toBe(0o600);
    expect((await callJson('POST', '/registry/heartbeat', { token: first.token.content, body: { workspace_id: id } })).status).toBe(401);
    expect((await boots(id, second.token.content)).platform_inbound_secret).toBe(second.secret.content);

    // Pause: the container is removed (the volume stays); resume: provisioning, a new container.
    expect(await post(`/workspaces/${id}/pause`)).toMatchObject({ status: 200, body: { status: 'paused' } });
    expect(await engineState(id)).toMatchObject({ container: null, volume: true });
    expect(await post(`/workspaces/${id}/resume`)).toMatchObject({ status: 200, body: { status: 'provisioning' } });
    const third = await containerOf(id, 3);
    expect(third.container.id).not.toBe(second.container.id);
    expect(await statusOf(id)).toBe('provisioning');
    await boots(id, third.token.content);

    // Hibernate: removed; an A2A message wakes it: 503 Retry-After 15 and a new container.
    expect(await post(`/workspaces/${id}/hibernate`)).toMatchObject({ status: 200, body: { status: 'hibernated' } });
    expect((await engineState(id)).container).toBeNull();
    const caller = await registeredAgent({ mode: 'poll' });
    const wake = await callJson('POST', `/workspaces/${id}/a2a`, { token: caller.token, body: a2aMessage('wake up') });
    expect(wake).toMatchObject({ status: 503, body: { waking: true, retry_after: 15 } });
    expect(wake.res.headers.get('Retry-After')).toBe('15');
    const fourth = await containerOf(id, 4);
    expect(fourth.container.id).not.toBe(third.container.id);
    await boots(id, fourth.token.content);
    expect(await statusOf(id)).toBe('online');

    // Delete with purge: container and volume gone.
    expect((await callJson('DELETE', `/workspaces/${id}?confirm=true&purge=true`, { token: ADMIN })).status).toBe(200);
    expect(await engineState(id)).toEqual({ container: null, volume: false, configs: null });
  });

  it('DELETE removes descendants first; without purge the volumes stay', async () => {
    const parent = await onlineContainer();
    const child = await onlineContainer({ parent_id: parent.id });
    const del = await callJson('DELETE', `/workspaces/${parent.id}?confirm=true`, { token: ADMIN });
    expect(del).toMatchObject({ status: 200, body: { cascade_deleted: 1 } });
    for (const id of [parent.id, child.id]) expect(await engineState(id)).toMatchObject({ container: null, volume: true });
    const stopOf = async (id: string) => (await provisionerCalls(id)).find((c) => c.op === 'stop')!;
    const [c, p] = [await stopOf(child.id), await stopOf(parent.id)];
    expect(c.seq).toBeLessThan(p.seq);
  });
});

describe('daemon failures, classified by the agent', () => {
  it("stop: 'removal already in progress' is success; a 500 is DELETE's 502 with ids only, the daemon text in the agent's log", async () => {
    const racing = await onlineContainer();
    await failNext(racing.id, 'stop', { status: 409, message: `removal of container ws-${racing.id} is already in progress`, apply: true });
    expect((await callJson('DELETE', `/workspaces/${racing.id}?confirm=true&purge=true`, { token: ADMIN })).status).toBe(200);
    expect(await engineState(racing.id)).toMatchObject({ container: null, volume: false });

    const broken = await onlineContainer();
    const daemonText = 'RAW-DAEMON-TEXT device or resource busy /var/lib/docker/overlay2/abc';
    await failNext(broken.id, 'stop', { status: 500, message: daemonText });
    const del = await callJson('DELETE', `/workspaces/${broken.id}?confirm=true`, { token: ADMIN });
    expect(del.status).toBe(502);
    expect(del.body).toEqual({ error: 'workspace removed but some agents could not be stopped', removed_count: 1, stop_failures: [broken.id] });
    expect(JSON.stringify(del.body)).not.toMatch(/RAW-DAEMON|overlay2|provisioner backend failed/);
    expect((await provisionerAnswers(broken.id)).at(-1)).toMatchObject({ status: 503 });
    expect((await agentLog(broken.id)).some((line) => line.includes('RAW-DAEMON-TEXT'))).toBe(true);
    // It was not stopped: the container is still there.
    expect((await engineState(broken.id)).container).not.toBeNull();
  });

  it("start: a missing image is the agent's 424, and the Worker says exactly 'provisioning failed', nowhere naming the image", async () => {
    const a = await onlineContainer();
    const events = await subscribeEvents(a.id, ADMIN);
    await failNext(a.id, 'start', { status: 404, message: 'No such image: molecule-test/langgraph:latest' });
    expect((await post(`/workspaces/${a.id}/restart`)).status).toBe(200);
    const failed = await events.next((m) => m.event === 'WORKSPACE_PROVISION_FAILED');
    expect(failed.payload).toEqual({ error: 'provisioning failed' });
    await waitFor(async () => (await statusOf(a.id)) === 'failed');
    expect((await provisionerAnswers(a.id)).at(-1)).toMatchObject({ status: 424, body: expect.stringContaining('image_missing') });
    expect((await engineState(a.id)).container).toBeNull();
    const seen = JSON.stringify([
      events.messages,
      await sql('SELECT payload FROM structure_events WHERE workspace_id = $1', [a.id]),
      await sql('SELECT last_sample_error FROM workspaces WHERE id = $1', [a.id]),
      (await callJson('GET', `/workspaces/${a.id}`, { token: ADMIN })).body,
      (await callJson('GET', '/workspaces', { token: ADMIN })).body,
    ]);
    for (const leak of ['molecule-test', 'No such image', 'image_missing', 'pull or build', 'AGENT_IMAGE']) expect(seen).not.toContain(leak);
    events.close();
  });
});

describe('the console', () => {
  it('reads what the container printed; a full 256 KiB tail full of colour codes still arrives', async () => {
    const a = await onlineContainer();
    await containerPrints(a.id, 'hello from the container\n');
    expect(await callJson('GET', `/workspaces/${a.id}/console`, { token: ADMIN })).toMatchObject({ status: 200, body: { output: 'hello from the container\n', truncated: false } });
    // Each ESC is six bytes once JSON-escaped: the agent's answer is far larger than its 256 KiB output.
    await containerPrints(a.id, '\u001b[32mok\u001b[0m\n'.repeat(40_000));
    const full = await callJson('GET', `/workspaces/${a.id}/console`, { token: ADMIN });
    expect(full).toMatchObject({ status: 200, body: { truncated: true } });
    expect(full.body.output.endsWith('\u001b[32mok\u001b[0m\n')).toBe(true);
  });
});

const engine = await realEngine();
describe.skipIf(!engine.available)(`on a real Docker-compatible engine${engine.available ? '' : ` — skipped: ${engine.reason}`}`, () => {
  it('create → the container runs and its agent registers with the token it read from /configs → delete → gone', async () => {
    const { id } = await createWorkspace({ secrets: { [REAL_ENGINE_ENV]: '1' } });
    await waitForStart(id, 1, 60_000);
    expect(await realEngineContainer(id)).toMatchObject({ running: true, labels: { 'molecule.platform.managed': 'true', 'molecule.workspace_id': id } });
    // The test image prints `ls -lan /configs` and the token file, then sleeps.
    const printed = await waitFor(async () => {
      const res = await callJson('GET', `/workspaces/${id}/console`, { token: ADMIN });
      return res.status === 200 && /mws_\S+/.test(res.body.output) ? (res.body.output as string) : undefined;
    }, 20_000);
    expect(printed).toMatch(/-rw------- .* \.auth_token/);
    expect(printed).toMatch(/-rw------- .* \.platform_inbound_secret/);
    await boots(id, printed.match(/mws_\S+/)![0]);
    expect(await statusOf(id)).toBe('online');
    expect((await callJson('DELETE', `/workspaces/${id}?confirm=true&purge=true`, { token: ADMIN })).status).toBe(200);
    expect(await realEngineContainer(id)).toBeNull();
  }, 90_000);
});
