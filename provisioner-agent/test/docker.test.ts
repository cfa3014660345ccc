import { randomUUID } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import Docker from 'dockerode';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CONSOLE_CAP_BYTES, tailBytes } from '../src/backend.ts';
import { createDockerBackend } from '../src/docker/driver.ts';
import { ConsoleReadTimeout, LogTail } from '../src/docker/logs.ts';
import { tierOverridesFromEnv, tierSettings } from '../src/docker/tiers.ts';
import { AgentError, TEXT } from '../src/errors.ts';
import { DAEMON_TEXTS, type DockerDouble, logFrame, startDockerDouble, startTestProvisioner, type TestProvisioner } from './support/docker-double.ts';
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
      CONFIGS_DIR: '/configs',
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(check: () => boolean, ms = 2_000): Promise<void> {
  for (const deadline = Date.now() + ms; !check(); await sleep(10)) {
    if (Date.now() > deadline) throw new Error('condition not reached');
  }
}

/** The concatenated pieces re-cut at the given sizes, cycling through them (the last chunk may be shorter). */
function* rechunk(pieces: Iterable<Buffer>, sizes: number[]): Generator<Buffer> {
  let pending: Buffer[] = [];
  let have = 0;
  let k = 0;
  for (const piece of pieces) {
    let rest = piece;
    while (rest.length > 0) {
      const size = sizes[k % sizes.length]!;
      const take = rest.subarray(0, size - have);
      pending.push(take);
      have += take.length;
      rest = rest.subarray(take.length);
      if (have === size) {
        yield Buffer.concat(pending);
        pending = [];
        have = 0;
        k += 1;
      }
    }
  }
  if (have > 0) yield Buffer.concat(pending);
}

/** Deterministic pseudo-random numbers (a failing chunking can be replayed). */
function prng(seed: number) {
  return () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

describe('docker console streaming (GET /containers/{id}/logs read as a stream)', () => {
  const body = [
    logFrame(1, 'héllo '),
    logFrame(2, 'wörld €\n'),
    logFrame(1, ''),
    logFrame(2, Buffer.from([0xf0, 0x9f])), // a 4-byte character split over two frames
    logFrame(1, Buffer.from([0x98, 0x80])),
    logFrame(1, ' end\n'),
  ];
  const whole = Buffer.concat(body);
  const text = 'héllo wörld €\n😀 end\n';

  it('demultiplexes frames however the body is chunked: every 2- and 3-piece split, and byte by byte', () => {
    const read = (chunks: Buffer[], cap?: number) => {
      const tail = new LogTail(cap);
      for (const chunk of chunks) tail.push(chunk);
      return tail.text();
    };
    for (let i = 0; i <= whole.length; i += 1) {
      for (let j = i; j <= whole.length; j += 1) {
        expect(read([whole.subarray(0, i), whole.subarray(i, j), whole.subarray(j)]), `split at ${i}, ${j}`).toBe(text);
      }
    }
    expect(read([...whole].map((b) => Buffer.from([b])))).toBe(text);
    // A TTY container's raw bytes, and a body too short for a header, come back as they are.
    const tty = Buffer.from('\x1b[32mready\x1b[0m on a tty\r\n');
    for (let i = 0; i <= tty.length; i += 1) expect(read([tty.subarray(0, i), tty.subarray(i)])).toBe(tty.toString());
    expect(read([Buffer.from('hi\n')])).toBe('hi\n');
    expect(read([])).toBe('');
  });

  it('keeps exactly the last cap bytes, cut on a character boundary, for any chunking (small cap)', () => {
    const random = prng(20_261_126);
    for (let round = 0; round < 300; round += 1) {
      const payloads = Array.from({ length: 1 + Math.floor(random() * 12) }, (_, i) =>
        Buffer.from(`${round}.${i}:${'a€😀é'.repeat(Math.floor(random() * 6))}|`.slice(0, 1 + Math.floor(random() * 40))),
      );
      const frames = Buffer.concat(payloads.map((p, i) => logFrame(i % 2 === 0 ? 1 : 2, p)));
      const cap = 1 + Math.floor(random() * 64);
      const chunks: Buffer[] = [];
      for (let at = 0; at < frames.length; ) {
        const size = 1 + Math.floor(random() * 30);
        chunks.push(frames.subarray(at, at + size));
        at += size;
      }
      const tail = new LogTail(cap);
      for (const chunk of chunks) tail.push(chunk);
      expect(tail.text(), `round ${round}`).toBe(tailBytes(Buffer.concat(payloads), cap));
    }
  });

  it('reassembles frames split across the chunks the daemon sends', async () => {
    const id = randomUUID();
    await start(id);
    const pieces = [3, 5, 9, 1, 2, 12, 7, 4, 30].reduce<Buffer[]>((out, size) => {
      const at = out.reduce((n, b) => n + b.length, 0);
      return [...out, whole.subarray(at, at + size)];
    }, []);
    const rest = whole.subarray(pieces.reduce((n, b) => n + b.length, 0));
    double.container(id)!.logBody = async function* () {
      for (const piece of [...pieces, rest]) {
        yield piece;
        await sleep(5); // separate reads on the agent's side, so the splits reach the parser
      }
    };
    expect((await call('GET', `/v1/docker/workspaces/${id}/console`)).json).toEqual({ output: text });
    expect(double.logStreams).toEqual([{ container: `ws-${id}`, bytesSent: whole.length, state: 'complete' }]);
  });

  it('streams a 40 MiB multiplexed log: returns exactly its last 256 KiB, holding well under 4 MiB at any time', { timeout: 120_000 }, async () => {
    // Live memory only (garbage collected before each sample): what the agent holds, not what it
    // has not yet freed. The old driver (dockerode buffering the body) held all 40 MiB.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const live = () => {
      // Twice: a Buffer's memory is released by a callback that runs after the GC that found it dead.
      gc();
      gc();
      return process.memoryUsage().arrayBuffers;
    };

    // Frames from empty to 100 KB (bigger than most chunks), stdout and stderr, multi-byte text.
    const payload = (i: number) => {
      if (i % 10 === 9) return Buffer.alloc(0);
      const size = [1, 4_093, 17, 65_536, 300, 8_191, 2, 100_003, 33][i % 9]!;
      const line = `${i}:${'x€'.repeat(Math.ceil(size / 4))}`;
      return Buffer.from(`${line.slice(0, size)}\n`);
    };
    let frames = 0;
    let total = 0;
    while (total < 40 * MiB) total += 8 + payload(frames++).length;
    const lastPayloads: Buffer[] = [];
    for (let i = frames - 1, kept = 0; kept <= CONSOLE_CAP_BYTES + 4; i -= 1) {
      lastPayloads.unshift(payload(i));
      kept += lastPayloads[0]!.length;
    }
    const expected = tailBytes(Buffer.concat(lastPayloads));

    const id = randomUUID();
    await start(id);
    const baseline = live();
    let peak = 0;
    let samples = 0;
    double.container(id)!.logBody = function* () {
      function* all() {
        for (let i = 0; i < frames; i += 1) yield logFrame(i % 3 === 0 ? 2 : 1, payload(i));
      }
      let sent = 0;
      for (const chunk of rechunk(all(), [65_536, 3, 1, 40_000, 5, 9_000, 7, 131_072, 8])) {
        yield chunk;
        sent += chunk.length;
        if (Math.floor(sent / (2 * MiB)) > samples) {
          samples += 1;
          peak = Math.max(peak, live() - baseline);
        }
      }
    };
    const backend = createDockerBackend({ docker: new Docker(double.dockerOptions), imageTemplate: 'img:{runtime}', consoleTimeoutMs: 100_000 });
    const output = await backend.console(id, null);

    expect(samples).toBeGreaterThanOrEqual(19);
    expect(Buffer.byteLength(output)).toBeLessThanOrEqual(CONSOLE_CAP_BYTES);
    expect(Buffer.byteLength(output)).toBeGreaterThan(CONSOLE_CAP_BYTES - 4);
    expect(output === expected, 'the last bytes, exactly').toBe(true);
    expect(peak, `peak live ArrayBuffer growth ${(peak / MiB).toFixed(2)} MiB`).toBeLessThan(4 * MiB);
    await waitFor(() => double.logStreams[0]?.state === 'complete');
    expect(double.logStreams[0]!.bytesSent).toBe(total);
  });

  it('gives up on a daemon that stalls or trickles, with a fixed text, and closes the request', async () => {
    const backend = createDockerBackend({ docker: new Docker(double.dockerOptions), imageTemplate: 'img:{runtime}', consoleTimeoutMs: 300 });
    const stalls = randomUUID();
    const trickles = randomUUID();
    await start(stalls);
    await start(trickles);
    double.container(stalls)!.logBody = async function* (signal) {
      await new Promise((resolve) => signal.addEventListener('abort', resolve));
    };
    double.container(trickles)!.logBody = async function* (signal) {
      while (!signal.aborted) {
        yield logFrame(1, 'still going\n');
        await sleep(20);
      }
    };
    for (const id of [stalls, trickles]) {
      const began = Date.now();
      const err = await backend.console(id, null).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AgentError);
      expect(err).toMatchObject({ code: 'unavailable', message: TEXT.backendFailed });
      expect((err as AgentError).cause).toBeInstanceOf(ConsoleReadTimeout);
      expect(Date.now() - began).toBeLessThan(3_000);
    }
    await waitFor(() => double.logStreams.length === 2 && double.logStreams.every((s) => s.state === 'aborted'));
    expect(double.logStreams[1]!.bytesSent).toBeGreaterThan(0);
  });

  it('still classifies daemon errors on the streamed read: gone is 404, anything else a fixed 503', async () => {
    const id = randomUUID();
    await start(id);
    double.fail('logs', DAEMON_TEXTS.serverError());
    expect(await call('GET', `/v1/docker/workspaces/${id}/console`)).toMatchObject({ status: 503, json: { code: 'unavailable', error: TEXT.backendFailed } });
    double.fail('logs', { status: 404, message: DAEMON_TEXTS.podmanNoSuchContainer(`ws-${id}`).message });
    expect(await call('GET', `/v1/docker/workspaces/${id}/console`)).toMatchObject({ status: 404, json: { code: 'not_found' } });
    double.fail('logs', { status: 404, message: 'page not found' });
    expect((await call('GET', `/v1/docker/workspaces/${id}/console`)).status).toBe(503);
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
