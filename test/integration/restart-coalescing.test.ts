import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { requestRestart } from '../../src/provisioning/restart';
import { loopback, waitFor } from '../support/api';

const restarts = async (id: string) => ((await (await fetch(loopback(`/prov/_restarts/${id}`))).json()) as { count: number }).count;
const coordinator = (id: string) => env.WORKSPACE_COORDINATOR.get(env.WORKSPACE_COORDINATOR.idFromName(id));

describe('restart coalescing (WorkspaceCoordinator)', () => {
  it('one request → one cycle', async () => {
    const id = crypto.randomUUID();
    expect(await requestRestart(env, id)).toBe(true);
    await waitFor(async () => (await restarts(id)) === 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(await restarts(id)).toBe(1);
  });

  it('requests overlapping an in-flight cycle collapse into exactly one more', async () => {
    const id = crypto.randomUUID();
    await requestRestart(env, id);
    // The fake provisioner takes 300 ms per restart: wait until the first cycle is in flight.
    await waitFor(async () => (await restarts(id)) === 1);
    const results = await Promise.all(Array.from({ length: 5 }, () => coordinator(id).requestRestart(id)));
    expect(results.every((r) => r.coalesced)).toBe(true);
    await waitFor(async () => (await restarts(id)) === 2);
    await new Promise((r) => setTimeout(r, 800));
    expect(await restarts(id)).toBe(2);
  });

  it('sequential requests each get their own cycle; workspaces never serialize on each other', async () => {
    const a = crypto.randomUUID();
    const b = crypto.randomUUID();
    for (let i = 1; i <= 3; i++) {
      await requestRestart(env, a);
      await waitFor(async () => (await restarts(a)) === i);
      await new Promise((r) => setTimeout(r, 400));
    }
    await Promise.all([requestRestart(env, b), requestRestart(env, crypto.randomUUID())]);
    await waitFor(async () => (await restarts(b)) === 1);
    expect(await restarts(a)).toBe(3);
  });

  it('a failing cycle does not wedge the coalescer', async () => {
    const id = crypto.randomUUID();
    const setState = (state: string) => fetch(loopback(`/prov/_state/${id}`), { method: 'POST', body: JSON.stringify({ state }) });
    await setState('error');
    await requestRestart(env, id);
    await waitFor(async () => (await restarts(id)) === 1);
    await new Promise((r) => setTimeout(r, 300));
    // The provisioner answered 500, the cycle threw; the state is cleared and the next request runs fresh.
    await setState('running');
    expect((await coordinator(id).requestRestart(id)).coalesced).toBe(false);
    await waitFor(async () => (await restarts(id)) === 2);
  });

  it('with no provisioner the request is dropped before the coordinator', async () => {
    expect(await requestRestart({ ...env, PROVISIONER_URL: undefined }, crypto.randomUUID())).toBe(false);
  });
});
