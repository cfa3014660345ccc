import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDockerBackend } from '../src/docker/driver.ts';
import { tierOverridesFromEnv, tierSettings } from '../src/docker/tiers.ts';
import { TEXT } from '../src/errors.ts';
import { DAEMON_TEXTS, type DockerDouble, startDockerDouble, startTestProvisioner, type TestProvisioner } from './support/docker-double.ts';
import { signedFetch } from './support/signed.ts';

const SECRET = 'docker-test-secret-0123456789abcdef';
const MiB = 1024 * 1024;

let double: DockerDouble;
let agent: TestProvisioner;
/** Every answer the agent gave in this file, to prove no daemon text ever leaks. */
const answers: string[] = [];

beforeAll(async () => {
  double = await startDockerDouble();
  agent = await startTestProvisioner({ secret: SECRET, docker: double });
});
afterAll(async () => {
  await agent.close();
  await double.close();
});
beforeEach(() => double.reset());

async function call(method: 'GET' | 'POST', path: string, body?: unknown) {
  const res = await signedFetch(agent.url, SECRET, method, path, body);
  answers.push(res.text);
  return res;
}
const start = (id: string, overrides: Record<string, unknown> = {}) =>
  call('POST', `/v1/docker/workspaces/${id}/start`, {
    runtime: 'claude-code',
    tier: 0,
    env: { ANTHROPIC_API_KEY: 'sk-test-key', MODEL: 'sonnet' },
    auth_token: `tok_${id.slice(0, 8)}_0123456789abcdef`,
    platform_inbound_secret: `pis_${id.slice(0, 8)}_0123456789abcdef`,
    platform_url: 'http://platform.test:8787',
    ...overrides,
  });
const stop = (id: string, purge = false) => call('POST', `/v1/docker/workspaces/${id}/stop`, { purge });
const status = (id: string) => call('GET', `/v1/docker/workspaces/${id}/status`);

describe('docker start', () => {
  it('creates ws-<id> with labels, tier-2 limits, env, the config volume and a published port', async () => {
    const id = randomUUID();
    const res = await start(id);
    expect(res.status).toBe(200);
    const c = double.container(`ws-${id}`)!;
    expect(res.json).toEqual({ url: `http://127.0.0.1:${c.hostPort}`, instance_id: null });
    expect(c.state).toBe('running');
    expect(c.image).toBe('molecule-test/claude-code:latest');
    expect(c.labels).toEqual({ 'molecule.platform.managed': 'true', 'molecule.workspace_id': id });
    expect(c.env).toEqual({
      ANTHROPIC_API_KEY: 'sk-test-key',
      MODEL: 'sonnet',
      WORKSPACE_ID: id,
      WORKSPACE_CONFIG_PATH: '/configs',
      PLATFORM_URL: 'http://platform.test:8787',
      MOLECULE_URL: 'http://platform.test:8787',
      TIER: '2',
      PLUGINS_DIR: '/plugins',
      PYTHONPATH: '/app',
    });
    expect(c.create.HostConfig).toMatchObject({
      Binds: [`ws-${id}-configs:/configs`],
      Memory: 512 * MiB,
      MemorySwap: 512 * MiB,
      CpuShares: 1024,
      NanoCpus: 1e9,
      RestartPolicy: { Name: 'unless-stopped' },
      ReadonlyRootfs: false,
      Privileged: false,
      PortBindings: { '8000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
    });
    expect(c.create.HostConfig.PidMode).toBeUndefined();
    expect(c.create.HostConfig.NetworkMode).toBeUndefined();
    expect(double.volume(`ws-${id}-configs`)?.labels).toEqual({ 'molecule.platform.managed': 'true', 'molecule.workspace_id': id });
  });

  it('writes .auth_token and .platform_inbound_secret into the config volume, mode 0600, before start', async () => {
    const id = randomUUID();
    await start(id, { auth_token: 'exact-token-value-1234567890', platform_inbound_secret: 'exact-inbound-secret-123456' });
    const files = double.configFiles(id);
    expect([...files.keys()].sort()).toEqual(['.auth_token', '.platform_inbound_secret']);
    expect(files.get('.auth_token')).toEqual({ content: 'exact-token-value-1234567890', mode: 0o600, uid: 0, gid: 0 });
    expect(files.get('.platform_inbound_secret')).toEqual({ content: 'exact-inbound-secret-123456', mode: 0o600, uid: 0, gid: 0 });
    const order = double.requests.filter((r) => /archive|start$/.test(r));
    expect(order).toEqual([`PUT /containers/ws-${id}/archive`, `POST /containers/ws-${id}/start`].map((r) => r.replace(`ws-${id}`, double.container(id)!.id)));
  });

  it('keeps the platform keys when the request env tries to override them', async () => {
    const id = randomUUID();
    await start(id, { env: { WORKSPACE_ID: 'someone-else', PLATFORM_URL: 'http://evil.test', EXTRA: '1' } });
    expect(double.container(id)!.env).toMatchObject({ WORKSPACE_ID: id, PLATFORM_URL: 'http://platform.test:8787', EXTRA: '1' });
  });

  it('applies tiers 1, 3 and 4 as the spec gives them', async () => {
    const [t1, t3, t4] = [randomUUID(), randomUUID(), randomUUID()];
    await start(t1, { tier: 1 });
    await start(t3, { tier: 3 });
    const res4 = await start(t4, { tier: 4 });
    expect(double.container(t1)!.create.HostConfig).toMatchObject({ ReadonlyRootfs: true, Tmpfs: { '/tmp': 'rw,size=64m' }, Memory: 512 * MiB });
    expect(double.container(t1)!.env.TIER).toBe('1');
    expect(double.container(t3)!.create.HostConfig).toMatchObject({ Privileged: true, PidMode: 'host', Memory: 2048 * MiB, CpuShares: 2048, NanoCpus: 2e9 });
    expect(double.container(t4)!.create.HostConfig).toMatchObject({
      Privileged: true,
      PidMode: 'host',
      NetworkMode: 'host',
      Memory: 4096 * MiB,
      CpuShares: 4096,
      Binds: [`ws-${t4}-configs:/configs`, '/var/run/docker.sock:/var/run/docker.sock'],
    });
    expect(double.container(t4)!.create.HostConfig.PortBindings).toBeUndefined();
    expect(res4.json.url).toBe('http://127.0.0.1:8000');
  });

  it('honours TIERn_MEMORY_MB / TIERn_CPU_SHARES and refuses a bad override', () => {
    const overrides = tierOverridesFromEnv({ TIER2_MEMORY_MB: '768', TIER3_CPU_SHARES: '512' });
    expect(tierSettings(0, overrides)).toMatchObject({ tier: 2, memoryMb: 768, cpuShares: 1024 });
    expect(tierSettings(3, overrides)).toMatchObject({ tier: 3, memoryMb: 2048, cpuShares: 512 });
    expect(tierSettings(9)).toMatchObject({ tier: 2, memoryMb: 512 });
    expect(() => tierOverridesFromEnv({ TIER1_MEMORY_MB: '-5' })).toThrow(/TIER1_MEMORY_MB/);
  });

  it('joins DOCKER_NETWORK with the container name as alias', async () => {
    const backend = createDockerBackend({ docker: new Docker(double.dockerOptions), imageTemplate: 'img:{runtime}', network: 'molecule-net' });
    const id = randomUUID();
    await backend.start(id, { runtime: 'hermes', tier: 2, env: {}, auth_token: 'a'.repeat(20), platform_inbound_secret: 'b'.repeat(20), platform_url: 'http://p.test' });
    const c = double.container(id)!;
    expect(c.image).toBe('img:hermes');
    expect(c.create.HostConfig.NetworkMode).toBe('molecule-net');
    expect(c.create.NetworkingConfig).toEqual({ EndpointsConfig: { 'molecule-net': { Aliases: [`ws-${id}`] } } });
  });

  it('is idempotent: a second start replaces the container and rewrites the secrets', async () => {
    const id = randomUUID();
    await start(id);
    const first = double.container(id)!.id;
    const res = await start(id, { auth_token: 'second-token-abcdefghijkl' });
    expect(res.status).toBe(200);
    expect(double.containers().filter((c) => c.name === `ws-${id}`)).toHaveLength(1);
    expect(double.container(id)!.id).not.toBe(first);
    expect(double.configFiles(id).get('.auth_token')?.content).toBe('second-token-abcdefghijkl');
  });

  it('starts when the old container is being removed concurrently (removal-in-progress answer)', async () => {
    const id = randomUUID();
    await start(id);
    double.fail('remove', { ...DAEMON_TEXTS.removalInProgress(`ws-${id}`), apply: true });
    expect((await start(id)).status).toBe(200);
    expect(double.container(id)!.state).toBe('running');
  });

  it('answers image_missing with an actionable fixed text and leaves no container', async () => {
    const id = randomUUID();
    double.missingImages.add('molecule-test/claude-code:latest');
    const res = await start(id);
    expect(res).toMatchObject({ status: 424, json: { code: 'image_missing', error: TEXT.dockerImageMissing } });
    expect(res.json.error).toContain('AGENT_IMAGE');
    expect(res.text).not.toContain('molecule-test/claude-code');
    expect(double.container(id)).toBeUndefined();
  });

  it('recognises Podman\'s missing-image wording too', async () => {
    double.fail('create', DAEMON_TEXTS.podmanNoSuchImage('molecule-test/claude-code:latest'));
    expect((await start(randomUUID())).json).toEqual({ code: 'image_missing', error: TEXT.dockerImageMissing });
  });

  it('answers 503 with a fixed text when the daemon fails, and logs the raw text', async () => {
    double.fail('create', DAEMON_TEXTS.serverError());
    const res = await start(randomUUID());
    expect(res).toMatchObject({ status: 503, json: { code: 'unavailable', error: TEXT.backendFailed } });
    expect(JSON.stringify(agent.logs.at(-1))).toContain('RAW-DAEMON-TEXT');
  });

  it('removes a half-started container when writing the secrets fails', async () => {
    const id = randomUUID();
    double.fail('putArchive', DAEMON_TEXTS.serverError());
    expect((await start(id)).status).toBe(503);
    expect(double.container(id)).toBeUndefined();
  });
});

describe('docker stop', () => {
  it('force-removes the container and keeps the volume without purge', async () => {
    const id = randomUUID();
    await start(id);
    expect(await stop(id)).toMatchObject({ status: 200, json: { stopped: true, volume_removed: false } });
    expect(double.container(id)).toBeUndefined();
    expect(double.volume(`ws-${id}-configs`)).toBeDefined();
    expect(double.requests).toContain(`DELETE /containers/ws-${id}`);
  });

  it('removes the volume with purge after the container is gone', async () => {
    const id = randomUUID();
    await start(id);
    expect(await stop(id, true)).toMatchObject({ status: 200, json: { stopped: true, volume_removed: true } });
    expect(double.volume(`ws-${id}-configs`)).toBeUndefined();
  });

  it('treats "No such container" (Docker and Podman wording) and a missing volume as success', async () => {
    const id = randomUUID();
    expect(await stop(id, true)).toMatchObject({ status: 200, json: { stopped: true, volume_removed: true } });
    double.fail('remove', { status: 500, message: DAEMON_TEXTS.podmanNoSuchContainer(`ws-${id}`).message });
    expect((await stop(id)).status).toBe(200);
  });

  it('treats "removal of container … is already in progress" as success, and purges once it is gone', async () => {
    const id = randomUUID();
    await start(id);
    double.fail('remove', { ...DAEMON_TEXTS.removalInProgress(`ws-${id}`), apply: true });
    expect(await stop(id, true)).toMatchObject({ status: 200, json: { stopped: true, volume_removed: true } });
    expect(double.volume(`ws-${id}-configs`)).toBeUndefined();
  });

  it('needs both substrings: another 409 is a real conflict', async () => {
    const id = randomUUID();
    await start(id);
    double.fail('remove', { status: 409, message: `removal of container ws-${id} failed: RAW-DAEMON-TEXT device busy` });
    expect(await stop(id)).toMatchObject({ status: 409, json: { code: 'conflict', error: TEXT.conflict } });
    double.fail('remove', { status: 409, message: 'RAW-DAEMON-TEXT operation already in progress' });
    expect((await stop(id)).status).toBe(409);
    expect(double.container(id)?.state).toBe('running');
    expect(double.volume(`ws-${id}-configs`)).toBeDefined();
  });

  it('reads "gone" only from the daemon\'s own words: a bare 404 (a proxy, a wrong API path) is an error', async () => {
    const id = randomUUID();
    await start(id);
    const bare404 = { status: 404, message: 'page not found' };
    double.fail('remove', bare404);
    expect(await stop(id, true)).toMatchObject({ status: 503, json: { code: 'unavailable', error: TEXT.backendFailed } });
    expect(double.volume(`ws-${id}-configs`)).toBeDefined();
    double.fail('inspect', bare404);
    expect(await status(id)).toMatchObject({ status: 503, json: { code: 'unavailable' } });
    expect((await status(id)).json).toEqual({ state: 'running' });
  });

  it('reports any other daemon error and then leaves the volume alone', async () => {
    const id = randomUUID();
    await start(id);
    double.fail('remove', DAEMON_TEXTS.serverError());
    expect(await stop(id, true)).toMatchObject({ status: 503, json: { code: 'unavailable', error: TEXT.backendFailed } });
    expect(double.requests.some((r) => r.startsWith('DELETE /volumes/'))).toBe(false);
    expect(double.volume(`ws-${id}-configs`)).toBeDefined();
  });
});

describe('docker status, console and list', () => {
  it('maps the container state: running, stopped, not_found; a daemon error is an error', async () => {
    const id = randomUUID();
    expect((await status(id)).json).toEqual({ state: 'not_found' });
    await start(id);
    expect((await status(id)).json).toEqual({ state: 'running' });
    double.exit(id);
    expect((await status(id)).json).toEqual({ state: 'stopped' });
    double.fail('inspect', DAEMON_TEXTS.serverError());
    expect(await status(id)).toMatchObject({ status: 503, json: { code: 'unavailable', error: TEXT.backendFailed } });
  });

  it('returns the container log, demultiplexed and capped at its last 256 KiB', async () => {
    const id = randomUUID();
    await start(id);
    double.container(id)!.logs = 'agent booted\nregistered\n';
    expect((await call('GET', `/v1/docker/workspaces/${id}/console`)).json).toEqual({ output: 'agent booted\nregistered\n' });
    double.container(id)!.logs = `${'a'.repeat(100 * 1024)}${'b'.repeat(256 * 1024)}`;
    const { json } = await call('GET', `/v1/docker/workspaces/${id}/console`);
    expect(json.output).toHaveLength(256 * 1024);
    expect(json.output).toBe('b'.repeat(256 * 1024));
  });

  it('answers 404 not_found for the console of a missing container', async () => {
    expect(await call('GET', `/v1/docker/workspaces/${randomUUID()}/console`)).toMatchObject({
      status: 404,
      json: { code: 'not_found', error: TEXT.workspaceNotFound },
    });
  });

  it('lists managed workspaces from the label, ignoring foreign and malformed ones', async () => {
    const [a, b] = [randomUUID(), randomUUID()].sort();
    await start(a!);
    await start(b!);
    double.exit(b!);
    double.addContainer({ name: 'postgres' });
    double.addContainer({ name: 'ws-junk', labels: { 'molecule.platform.managed': 'true', 'molecule.workspace_id': 'not-a-uuid' } });
    double.addContainer({ name: 'ws-other', labels: { 'molecule.workspace_id': randomUUID() } });
    expect((await call('GET', '/v1/docker/workspaces')).json).toEqual({ workspace_ids: [a, b] });
    double.fail('list', DAEMON_TEXTS.serverError());
    expect((await call('GET', '/v1/docker/workspaces')).status).toBe(503);
  });
});

describe('no daemon text in any answer', () => {
  it('never echoed a daemon message (checked over every answer in this file)', () => {
    expect(answers.length).toBeGreaterThan(20);
    for (const text of answers) {
      expect(text).not.toMatch(/RAW-DAEMON-TEXT|No such|no such|already in progress|volume is in use|Conflict\./);
      expect(text.length).toBeLessThan(400_000);
    }
  });
});
