// The cron sweeper's passes, called directly against the real Postgres (src/sweeper/*), and the
// runner that keeps them independent.
import { env } from 'cloudflare:test';
import { describe, expect, it, vi } from 'vitest';
import { sweepDelegations } from '../../src/delegations/sweep';
import { RequestScope } from '../../src/lib/request-scope';
import { runSweeper, SWEEP_PASSES } from '../../src/sweeper';
import { expireQueueItems } from '../../src/sweeper/queue-expiry';
import { pruneActivity, retentionDays } from '../../src/sweeper/retention';
import { ADMIN, callJson, registeredAgent, sql } from '../support/api';

async function withScope<T>(fn: (scope: RequestScope) => Promise<T>): Promise<T> {
  const scope = new RequestScope(env);
  try {
    return await fn(scope);
  } finally {
    await scope.close();
  }
}

/** Rows in recorded order (seq follows insertion, as under the feed lock), `daysAgo` each. */
async function insertRows(workspaceId: string, rows: { type: string; daysAgo: number }[]): Promise<string[]> {
  const ids: string[] = [];
  for (const r of rows) {
    const [row] = await sql(
      `INSERT INTO activity_logs (workspace_id, activity_type, summary, created_at) VALUES ($1, $2, 'old', now() - make_interval(days => $3)) RETURNING id`,
      [workspaceId, r.type, r.daysAgo],
    );
    ids.push(row.id);
  }
  return ids;
}

const remaining = async (workspaceId: string) =>
  (await sql(`SELECT id FROM activity_logs WHERE workspace_id = $1 ORDER BY seq`, [workspaceId])).map((r) => r.id as string);

describe('activity retention', () => {
  it("deletes rows past the window from each feed's old end, keeping each feed's newest row of each type", async () => {
    const w = await registeredAgent({ mode: 'poll' });
    const quiet = await registeredAgent({ mode: 'poll' });
    const [r1, r2, s1, s2, r3] = await insertRows(w.id, [
      { type: 'a2a_receive', daysAgo: 30 },
      { type: 'a2a_receive', daysAgo: 20 },
      { type: 'a2a_send', daysAgo: 19 },
      { type: 'a2a_send', daysAgo: 18 },
      { type: 'a2a_receive', daysAgo: 1 },
    ]);
    const [q1, q2] = await insertRows(quiet.id, [
      { type: 'a2a_receive', daysAgo: 40 },
      { type: 'a2a_receive', daysAgo: 35 },
    ]);

    const deleted = await withScope((scope) => pruneActivity(scope.db, { days: 7, workspaceIds: [w.id, quiet.id] }));
    expect(deleted).toBeGreaterThanOrEqual(4);
    // r3 is recent; s2 is the newest a2a_send (a poller reading only sends has it as its cursor).
    expect(await remaining(w.id)).toEqual([s2, r3]);
    // A feed quiet for a month keeps its last row: its caught-up poller does not get a 410.
    expect(await remaining(quiet.id)).toEqual([q2]);

    // Cursors: a kept one reads on, a pruned one is 410 (resync), as the feed rule says.
    const poll = (cursor: string, token: string, id: string) => callJson('GET', `/workspaces/${id}/activity?type=a2a_receive&since_id=${cursor}`, { token });
    expect((await poll(q2!, quiet.token, quiet.id)).status).toBe(200);
    const after = await poll(r3!, w.token, w.id);
    expect(after).toMatchObject({ status: 200, body: [] });
    for (const gone of [r1!, r2!, s1!, q1!]) expect((await poll(gone, w.token, w.id)).status).toBe(410);
  });

  it('works in bounded batches: a run stops after its batch budget and the next run goes on', async () => {
    const w = await registeredAgent({ mode: 'poll' });
    await insertRows(w.id, Array.from({ length: 9 }, () => ({ type: 'agent_log', daysAgo: 400 })));
    const run = () => withScope((scope) => pruneActivity(scope.db, { days: 365, batchRows: 2, maxBatches: 2, workspaceIds: [w.id] }));
    expect(await run()).toBeGreaterThanOrEqual(4);
    expect((await remaining(w.id)).length).toBeGreaterThanOrEqual(5);
    for (let i = 0; i < 5 && (await remaining(w.id)).length > 1; i++) await run();
    expect(await remaining(w.id)).toHaveLength(1);
  });

  it('ACTIVITY_RETENTION_DAYS: a positive integer, else logged and 7', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    expect(retentionDays({})).toBe(7);
    expect(retentionDays({ ACTIVITY_RETENTION_DAYS: '30' })).toBe(30);
    for (const bad of ['0', '-1', '2.5', 'week']) expect(retentionDays({ ACTIVITY_RETENTION_DAYS: bad })).toBe(7);
    expect(warn).toHaveBeenCalled();
    warn.mockRestore();
  });
});

describe('queue expiry', () => {
  it('queued items past expires_at become expired; live, unexpiring and in-flight ones are untouched; delegations settle', async () => {
    const caller = await registeredAgent({ mode: 'poll' });
    const target = await registeredAgent({ mode: 'poll' });
    const insert = async (status: string, expires: string) =>
      (
        await sql(`INSERT INTO a2a_queue (workspace_id, caller_id, body, status, expires_at) VALUES ($1, $2, '{}'::jsonb, $3, ${expires}) RETURNING id`, [
          target.id,
          caller.id,
          status,
        ])
      )[0].id as string;
    const expired = await insert('queued', `now() - interval '1 second'`);
    const live = await insert('queued', `now() + interval '1 hour'`);
    const forever = await insert('queued', 'NULL');
    const inFlight = await insert('dispatched', `now() - interval '1 second'`);
    const [delegation] = await sql(`INSERT INTO delegations (source_id, target_id, task, status, queue_id) VALUES ($1, $2, 'late work', 'queued', $3) RETURNING id`, [
      caller.id,
      target.id,
      expired,
    ]);

    expect(await withScope((scope) => expireQueueItems(scope.db, { workspaceIds: [target.id] }))).toBeGreaterThanOrEqual(1);
    const statuses = Object.fromEntries(
      (await sql(`SELECT id, status FROM a2a_queue WHERE workspace_id = $1`, [target.id])).map((r) => [r.id, r.status]),
    );
    expect(statuses).toEqual({ [expired]: 'expired', [live]: 'queued', [forever]: 'queued', [inFlight]: 'dispatched' });
    const view = await callJson('GET', `/workspaces/${target.id}/a2a/queue/${expired}`, { token: ADMIN });
    expect(view.body).toMatchObject({ status: 'expired', expired: true });

    await withScope((scope) => sweepDelegations(env, scope));
    const [settled] = await sql(`SELECT status FROM delegations WHERE id = $1`, [delegation.id]);
    expect(settled.status).toBe('failed');
  });
});

describe('the runner', () => {
  it('one failing pass never stops the others; a thinned-out pass runs only on its minute', async () => {
    const ran: string[] = [];
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    const outcomes = await runSweeper(env, {
      now: 7 * 60_000,
      passes: [
        { name: 'first', run: async () => void ran.push('first') },
        { name: 'broken', run: async () => { throw new Error('boom'); } },
        { name: 'hourly', everyMinutes: 60, run: async () => void ran.push('hourly') },
        { name: 'last', run: async () => (ran.push('last'), 3) },
      ],
    });
    expect(ran).toEqual(['first', 'last']);
    expect(outcomes).toEqual([
      { name: 'first', ok: true, ms: expect.any(Number) },
      { name: 'broken', ok: false, ms: expect.any(Number) },
      { name: 'hourly', skipped: true },
      { name: 'last', ok: true, ms: expect.any(Number), count: 3 },
    ]);
    expect(String(error.mock.calls[0]![0])).toContain('broken');
    error.mockRestore();
    expect(SWEEP_PASSES.map((p) => p.name)).toEqual([
      'requeue stale dispatches',
      'queue expiry',
      'delegations',
      'provision timeout',
      'idle hibernation',
      'orphan agents',
      'stale tokens',
      'activity retention',
    ]);
  });
});
