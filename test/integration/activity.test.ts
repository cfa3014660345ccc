import { describe, expect, it } from 'vitest';
import { call, callJson, registeredAgent, sql } from '../support/api';

async function seed(workspaceId: string, rows: { type?: string; ageSecs?: number; source?: string | null; summary: string }[]) {
  const ids: string[] = [];
  for (const r of rows) {
    const [row] = await sql(
      `INSERT INTO activity_logs (workspace_id, activity_type, source_id, summary, created_at)
       VALUES ($1, $2, $3, $4, now() - make_interval(secs => $5)) RETURNING id`,
      [workspaceId, r.type ?? 'agent_log', r.source ?? null, r.summary, r.ageSecs ?? 0],
    );
    ids.push(row.id);
  }
  return ids;
}

const summaries = (body: any[]) => body.map((r) => r.summary);

describe('GET /workspaces/:id/activity — since_secs', () => {
  it('Accepted: filters to the window', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    await seed(a.id, [{ summary: 'old', ageSecs: 600 }, { summary: 'new', ageSecs: 5 }]);
    const res = await callJson('GET', `/workspaces/${a.id}/activity?since_secs=60`, { token: a.token });
    expect(res.status).toBe(200);
    expect(summaries(res.body)).toEqual(['new']);
  });

  it('Clamped: values above 30 days act as 30 days', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    await seed(a.id, [{ summary: '40d', ageSecs: 40 * 86400 }, { summary: '29d', ageSecs: 29 * 86400 }]);
    const res = await callJson('GET', `/workspaces/${a.id}/activity?since_secs=999999999`, { token: a.token });
    expect(summaries(res.body)).toEqual(['29d']);
  });

  it('Invalid: negative, fractional, non-numeric, empty → 400, never ignored', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    for (const v of ['-5', '1.5', 'abc', '']) {
      const res = await callJson('GET', `/workspaces/${a.id}/activity?since_secs=${v}`, { token: a.token });
      expect(res.status, v).toBe(400);
      expect(res.body.issues[0]).toEqual({ path: 'since_secs', message: 'since_secs must be a non-negative integer' });
    }
  });

  it('Zero: only the newest row, so a poller that wants no backlog still gets a cursor (channel MOLECULE_POLL_WINDOW_SECS=0)', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    await seed(a.id, [{ summary: 'old', ageSecs: 60 }, { summary: 'newest' }]);
    const res = await callJson('GET', `/workspaces/${a.id}/activity?since_secs=0&limit=100`, { token: a.token });
    expect(res.status).toBe(200);
    expect(summaries(res.body)).toEqual(['newest']);
  });

  it('Omitted: newest first, no window', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    await seed(a.id, [{ summary: 'first', ageSecs: 40 * 86400 }, { summary: 'second' }]);
    const res = await callJson('GET', `/workspaces/${a.id}/activity`, { token: a.token });
    expect(summaries(res.body)).toEqual(['second', 'first']);
  });
});

describe('GET /workspaces/:id/activity — since_id cursor', () => {
  it('ReturnsNewerASC: strictly after the cursor, recorded order', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const [c1] = await seed(a.id, [{ summary: 'one' }, { summary: 'two' }, { summary: 'three' }]);
    const res = await callJson('GET', `/workspaces/${a.id}/activity?since_id=${c1}`, { token: a.token });
    expect(res.status).toBe(200);
    expect(summaries(res.body)).toEqual(['two', 'three']);
  });

  it('rows with the same timestamp are not lost', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const rows = await sql(
      `INSERT INTO activity_logs (workspace_id, activity_type, summary, created_at)
       SELECT $1, 'agent_log', 'tie-' || g, '2026-01-01T00:00:00Z' FROM generate_series(1, 3) g RETURNING id`,
      [a.id],
    );
    const res = await callJson('GET', `/workspaces/${a.id}/activity?since_id=${rows[0].id}`, { token: a.token });
    expect(summaries(res.body)).toEqual(['tie-2', 'tie-3']);
  });

  it('CursorNotFound_410 and CrossWorkspaceCursor_410 share one body', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const b = await registeredAgent({ mode: 'poll' });
    const [foreign] = await seed(b.id, [{ summary: 'b-private' }]);
    const unknown = await callJson('GET', `/workspaces/${a.id}/activity?since_id=${crypto.randomUUID()}`, { token: a.token });
    const cross = await callJson('GET', `/workspaces/${a.id}/activity?since_id=${foreign}`, { token: a.token });
    expect(unknown.status).toBe(410);
    expect(cross.status).toBe(410);
    expect(cross.body).toEqual(unknown.body);
    expect(JSON.stringify(cross.body)).not.toContain('b-private');
    const [pruned] = await seed(a.id, [{ summary: 'pruned' }]);
    await sql('DELETE FROM activity_logs WHERE id = $1', [pruned]);
    expect((await call('GET', `/workspaces/${a.id}/activity?since_id=${pruned}`, { token: a.token })).status).toBe(410);
    expect((await call('GET', `/workspaces/${a.id}/activity?since_id=not-a-uuid`, { token: a.token })).status).toBe(400);
  });

  it('CombinedWithSinceSecs: both filters apply (AND)', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const [cursor] = await seed(a.id, [{ summary: 'cursor', ageSecs: 7200 }, { summary: 'after-but-old', ageSecs: 3600 }, { summary: 'after-and-recent', ageSecs: 10 }]);
    const res = await callJson('GET', `/workspaces/${a.id}/activity?since_id=${cursor}&since_secs=60`, { token: a.token });
    expect(summaries(res.body)).toEqual(['after-and-recent']);
  });
});

describe('GET /workspaces/:id/activity — type, source, limit', () => {
  it('filters and bounds', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    await seed(a.id, [
      { summary: 'canvas-log' },
      { summary: 'agent-err', type: 'error', source: a.id },
    ]);
    expect(summaries((await callJson('GET', `/workspaces/${a.id}/activity?type=error`, { token: a.token })).body)).toEqual(['agent-err']);
    expect(summaries((await callJson('GET', `/workspaces/${a.id}/activity?source=canvas`, { token: a.token })).body)).toEqual(['canvas-log']);
    expect(summaries((await callJson('GET', `/workspaces/${a.id}/activity?source=agent`, { token: a.token })).body)).toEqual(['agent-err']);
    expect((await callJson('GET', `/workspaces/${a.id}/activity?limit=1`, { token: a.token })).body).toHaveLength(1);
    const badSource = await callJson('GET', `/workspaces/${a.id}/activity?source=robot`, { token: a.token });
    expect(badSource.status).toBe(400);
    expect(badSource.body.issues[0].message).toBe("source must be 'canvas' or 'agent'");
    expect((await call('GET', `/workspaces/${a.id}/activity?limit=0`, { token: a.token })).status).toBe(400);
    expect((await call('GET', `/workspaces/${a.id}/activity?type=bogus`, { token: a.token })).status).toBe(400);
  });
});

describe('POST /workspaces/:id/activity', () => {
  it('records the agent report with its bodies', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const res = await callJson('POST', `/workspaces/${a.id}/activity`, {
      token: a.token,
      body: { activity_type: 'task_update', summary: 'working', request_body: { task: 'audit' }, duration_ms: 12 },
    });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('logged');
    const [row] = await sql('SELECT source_id, summary, request_body, duration_ms FROM activity_logs WHERE id = $1', [res.body.id]);
    expect(row).toEqual({ source_id: a.id, summary: 'working', request_body: { task: 'audit' }, duration_ms: 12 });
  });

  it('refuses a forged source and bad input, writing nothing', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const other = crypto.randomUUID();
    const forged = await callJson('POST', `/workspaces/${a.id}/activity`, { token: a.token, body: { activity_type: 'agent_log', source_id: other } });
    expect(forged).toMatchObject({ status: 403, body: { error: 'source_id must match authenticated workspace' } });
    expect((await call('POST', `/workspaces/${a.id}/activity`, { token: a.token, body: { activity_type: 'gossip' } })).status).toBe(400);
    expect((await call('POST', `/workspaces/${a.id}/activity`, { token: a.token, raw: '[' })).status).toBe(400);
    const big = await call('POST', `/workspaces/${a.id}/activity`, { token: a.token, body: { activity_type: 'agent_log', request_body: 'x'.repeat(1100 * 1024) } });
    expect(big.status).toBe(413);
    expect((await sql('SELECT count(*)::int AS n FROM activity_logs WHERE workspace_id = $1', [a.id]))[0].n).toBe(0);
  });
});

describe('GET /workspaces/:id/activity — peer_id and before_ts', () => {
  it('before_ts outside what Postgres can represent is a 400 naming the field, not a datastore refusal', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    for (const ts of ['0000-01-01T00:00:00Z', '9999-12-31T23:59:59-23:59', 'yesterday']) {
      const res = await callJson('GET', `/workspaces/${a.id}/activity?before_ts=${encodeURIComponent(ts)}`, { token: a.token });
      expect(res.status, ts).toBe(400);
      expect(res.body.issues[0].path).toBe('before_ts');
    }
    expect((await callJson('GET', `/workspaces/${a.id}/activity?before_ts=${encodeURIComponent('2026-01-01T00:00:00+02:00')}`, { token: a.token })).status).toBe(200);
  });
});
