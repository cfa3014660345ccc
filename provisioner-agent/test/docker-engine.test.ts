// Against a real Docker-compatible engine (Docker, or Podman's Docker API socket), when one is
// reachable and has the test image; skipped with the reason otherwise. CI has no engine.
//   PROVISIONER_TEST_DOCKER_HOST  unix:///path or tcp://host:port (else DOCKER_HOST, else the default socket)
//   PROVISIONER_TEST_IMAGE        an image whose default command keeps running (default below;
//                                 provisioner-agent/scripts/podman-engine.sh builds it offline)
import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { dockerOptions } from '../src/main.ts';
import { signedFetch } from './support/signed.ts';
import { startTestProvisioner, type TestProvisioner } from './support/test-provisioner.ts';

const IMAGE = process.env.PROVISIONER_TEST_IMAGE ?? 'localhost/molecule-busybox:latest';
const SECRET = 'engine-test-secret-0123456789abcdef';

async function probe(): Promise<{ options: Docker.DockerOptions } | { skip: string }> {
  let options: Docker.DockerOptions | null;
  try {
    options = dockerOptions({ DOCKER_HOST: process.env.PROVISIONER_TEST_DOCKER_HOST ?? process.env.DOCKER_HOST });
  } catch (err) {
    return { skip: String(err) };
  }
  if (!options) return { skip: 'no Docker engine: set PROVISIONER_TEST_DOCKER_HOST (see README "Run the provisioner-agent")' };
  const docker = new Docker({ ...options, timeout: 5_000 });
  try {
    await docker.ping();
  } catch {
    return { skip: 'the Docker engine socket does not answer' };
  }
  try {
    await docker.getImage(IMAGE).inspect();
  } catch {
    return { skip: `the engine has no ${IMAGE} (build it with provisioner-agent/scripts/podman-engine.sh or set PROVISIONER_TEST_IMAGE)` };
  }
  return { options };
}

const engine = await probe();
const reason = 'skip' in engine ? ` — skipped: ${engine.skip}` : '';

describe.skipIf('skip' in engine)(`real Docker engine${reason}`, () => {
  let agent: TestProvisioner | undefined;
  const id = randomUUID();
  afterAll(async () => {
    if (agent) await signedFetch(agent.url, SECRET, 'POST', `/v1/docker/workspaces/${id}/stop`, { purge: true });
    await agent?.close();
  });

  it('starts a container with its 0600 secrets, reports it running, reads its console, stops and purges it', async () => {
    const options = (engine as { options: Docker.DockerOptions }).options;
    agent = await startTestProvisioner({ secret: SECRET, docker: { dockerOptions: options }, imageTemplate: IMAGE });
    const call = (method: 'GET' | 'POST', path: string, body?: unknown) => signedFetch(agent!.url, SECRET, method, path, body);

    const start = await call('POST', `/v1/docker/workspaces/${id}/start`, {
      runtime: 'busybox',
      tier: 2,
      env: { GREETING: 'hello from the engine test' },
      auth_token: 'engine-token-0123456789abcdef',
      platform_inbound_secret: 'engine-inbound-0123456789abcd',
      platform_url: 'http://127.0.0.1:8787',
    });
    expect(start.status, start.text).toBe(200);
    expect(start.json.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await call('GET', `/v1/docker/workspaces/${id}/status`)).json).toEqual({ state: 'running' });

    const docker = new Docker(options);
    const info = await docker.getContainer(`ws-${id}`).inspect();
    expect(info.Config.Labels).toMatchObject({ 'molecule.platform.managed': 'true', 'molecule.workspace_id': id });
    expect(info.Config.Env).toContain(`WORKSPACE_ID=${id}`);
    expect(info.HostConfig.Memory).toBe(512 * 1024 * 1024);
    expect((await call('GET', '/v1/docker/workspaces')).json.workspace_ids).toContain(id);

    // The test image lists /configs (ls -lan) and prints the token, then sleeps.
    let output = '';
    for (let i = 0; i < 50 && !output.includes('engine-token'); i += 1) {
      output = (await call('GET', `/v1/docker/workspaces/${id}/console`)).json.output ?? '';
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(output).toMatch(/-rw-------\s+1\s+0\s+0\s+\d+ .*\.auth_token/);
    expect(output).toMatch(/-rw-------\s+1\s+0\s+0\s+\d+ .*\.platform_inbound_secret/);
    expect(output).toContain('engine-token-0123456789abcdef');

    expect((await call('POST', `/v1/docker/workspaces/${id}/stop`, { purge: true })).json).toEqual({ stopped: true, volume_removed: true });
    expect((await call('GET', `/v1/docker/workspaces/${id}/status`)).json).toEqual({ state: 'not_found' });
    await expect(docker.getVolume(`ws-${id}-configs`).inspect()).rejects.toThrow();
    // Stopping again is a success: the engine's own "no such container" answer.
    expect((await call('POST', `/v1/docker/workspaces/${id}/stop`, { purge: true })).status).toBe(200);
  }, 120_000);
});
