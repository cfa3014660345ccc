import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { coordinatorOf } from '../../src/coordinator';
import { requestRestart } from '../../src/provisioning/restart';
import { createWorkspace, waitFor } from '../support/api';
import { failNext, lifecycleOps, waitForStart } from '../support/provisioner';

// A successful start's answer is held 250 ms (test/support/provisioner-control.ts), so a cycle is observably in flight.
const starts = async (id: string) => (await lifecycleOps(id)).filter((op) => op === 'start').length;
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A workspace whose first provision is done (one start). */
async function provisioned(): Promise<string> {
  const { id } = await createWorkspace();
  await waitForStart(id);
  await settle(100);
  return id;
}

describe('restart coalescing (WorkspaceCoordinator)', () => {
  it('one request → one cycle (stop, then start)', async () => {
    const id = await provisioned();
    expect(await requestRestart(env, id)).toBe(true);
    await waitFor(async () => (await starts(id)) === 2);
    await settle(500);
    expect(await lifecycleOps(id)).toEqual(['start', 'stop', 'start']);
  });

  it('requests overlapping an in-flight cycle collapse into exactly one more', async () => {
    const id = await provisioned();
    await requestRestart(env, id);
    // The restart cycle's start has gone out and takes 250 ms: it is in flight now.
    await waitFor(async () => (await starts(id)) === 2);
    const results = await Promise.all(Array.from({ length: 5 }, () => coordinatorOf(env, id).requestRestart()));
    expect(results.every((r) => r.coalesced)).toBe(true);
    await waitFor(async () => (await starts(id)) === 3);
    await settle(800);
    expect(await starts(id)).toBe(3);
  });

  it('sequential requests each get their own cycle; workspaces never serialize on each other', async () => {
    const a = await provisioned();
    const b = await provisioned();
    for (let i = 2; i <= 4; i++) {
      await requestRestart(env, a);
      await waitFor(async () => (await starts(a)) === i);
      await settle(150);
    }
    await requestRestart(env, b);
    await waitFor(async () => (await starts(b)) === 2);
    expect(await starts(a)).toBe(4);
  });

  it('a failing cycle does not wedge the coalescer', async () => {
    const id = await provisioned();
    await failNext(id, 'start', { status: 500, message: 'RAW-DAEMON-TEXT driver failed' });
    await requestRestart(env, id);
    await waitFor(async () => (await starts(id)) === 2);
    await settle(200);
    // The start failed, the cycle ended; the next request runs fresh.
    expect((await coordinatorOf(env, id).requestRestart()).coalesced).toBe(false);
    await waitFor(async () => (await starts(id)) === 3);
  });

  it('with no provisioner the request is dropped before the coordinator', async () => {
    expect(await requestRestart({ ...env, PROVISIONER_URL: undefined }, crypto.randomUUID())).toBe(false);
  });
});
