// What a hostile or careless caller could do to main before the hardening issue: each block
// reproduces one hole against the real Worker and real Postgres and asserts the fixed behaviour.
import { describe, expect, it } from 'vitest';
import { ADMIN, call, callJson, createWorkspace, loopback, received, registeredAgent, sql, a2aMessage } from '../support/api';

const card = { name: 'agent' };
const deep = (levels: number, leaf = '1') => '['.repeat(levels) + leaf + ']'.repeat(levels);
const NUL = '\u0000';
const countWhere = async (table: string, column: string, id: string) =>
  (await sql(`SELECT count(*)::int AS n FROM ${table} WHERE ${column} = $1`, [id]))[0].n as number;
const message = a2aMessage;

describe('issue-once tokens under concurrency', () => {
  it('50 concurrent first registrations: exactly one gets the token, the rest 401', async () => {
    const ws = await createWorkspace({ external: true, url: 'http://example.com/boot' });
    expect(ws.token).toBeUndefined();
    const results = await Promise.all(
      Array.from({ length: 50 }, () => callJson('POST', '/registry/register', { body: { id: ws.id, agent_card: card, delivery_mode: 'poll' } })),
    );
    const winners = results.filter((r) => r.status === 200);
    expect(winners).toHaveLength(1);
    expect(winners[0]!.body.auth_token).toMatch(/^mws_/);
    expect(results.filter((r) => r.status === 401)).toHaveLength(49);
    expect(new Set(results.filter((r) => r.status === 401).map((r) => r.body.error))).toEqual(new Set(['missing workspace auth token']));
    const live = await sql('SELECT count(*)::int AS n FROM workspace_auth_tokens WHERE workspace_id = $1 AND revoked_at IS NULL', [ws.id]);
    expect(live[0].n).toBe(1);
  });

  it('the database itself refuses a second live issued token', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    await expect(sql(`INSERT INTO workspace_auth_tokens (workspace_id, token_hash, prefix) VALUES ($1, $2, 'mws_x')`, [a.id, crypto.randomUUID()])).rejects.toThrow(
      /workspace_auth_tokens_one_issued_idx/,
    );
  });
});

describe('deep JSON', () => {
  it('is refused with a 400 on every JSON input, before anything is written or delivered', async () => {
    const poll = await registeredAgent({ mode: 'poll' });
    const name = crypto.randomUUID().slice(0, 8);
    const push = await registeredAgent({ url: loopback(`/agent/echo/${name}`) });
    const deepValue = deep(8000);
    const attempts = [
      ['POST', '/registry/register', poll.token, `{"id":"${poll.id}","delivery_mode":"poll","agent_card":{"x":${deepValue}}}`],
      ['POST', `/workspaces/${poll.id}/activity`, poll.token, `{"activity_type":"agent_log","request_body":${deepValue}}`],
      ['POST', `/workspaces/${poll.id}/a2a`, ADMIN, JSON.stringify(message('hi', { metadata: 'X' })).replace('"X"', deepValue)],
      ['POST', `/workspaces/${push.id}/a2a`, ADMIN, JSON.stringify(message('hi', { metadata: 'X' })).replace('"X"', deep(100_000))],
      ['POST', '/workspaces', ADMIN, `{"name":"x","secrets":${deepValue}}`],
    ] as const;
    for (const [method, path, token, raw] of attempts) {
      const res = await callJson(method, path, { token, raw, headers: { 'Content-Type': 'application/json' } });
      expect(res.status, path).toBe(400);
      expect(res.body).toEqual({ error: 'JSON nested too deeply (at most 64 levels)', code: 'json_too_deep' });
    }
    expect(await countWhere('activity_logs', 'workspace_id', poll.id)).toBe(0);
    expect(await countWhere('activity_logs', 'workspace_id', push.id)).toBe(0);
    expect(await received(name)).toEqual([]);
    const [row] = await sql('SELECT agent_card FROM workspaces WHERE id = $1', [poll.id]);
    expect(row.agent_card).toEqual({ name: 'test-agent' });
  });

  it('64 levels are fine; a string full of brackets is not nesting', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const ok = await callJson('POST', `/workspaces/${a.id}/activity`, {
      token: a.token,
      raw: `{"activity_type":"agent_log","summary":"${'['.repeat(500)}","request_body":${deep(63)}}`,
    });
    expect(ok.status).toBe(200);
  });

  it('a deep value stored before the gate never breaks a read', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    // Postgres itself accepts 8,000 levels: this is what the old edge stored.
    await sql(`UPDATE workspaces SET agent_card = $2::jsonb WHERE id = $1`, [a.id, `{"x":${deep(8000)}}`]);
    await sql(`INSERT INTO activity_logs (workspace_id, activity_type, request_body) VALUES ($1, 'a2a_receive', $2::jsonb)`, [a.id, deep(8000)]);
    const marker = { omitted: 'stored value exceeds the JSON limits' };
    const list = await callJson('GET', '/workspaces', { token: ADMIN });
    expect(list.status).toBe(200);
    expect(list.body.find((w: any) => w.id === a.id).agent_card).toEqual(marker);
    const one = await callJson('GET', `/workspaces/${a.id}`, { token: a.token });
    expect(one).toMatchObject({ status: 200, body: { agent_card: marker } });
    const feed = await callJson('GET', `/workspaces/${a.id}/activity?limit=1`, { token: a.token });
    expect(feed.status).toBe(200);
    expect(feed.body[0].request_body).toEqual(marker);
  });
});

describe('JSON under an unusual media type', () => {
  it('is read as JSON whatever the Content-Type says, never a 5xx', async () => {
    const poll = await registeredAgent({ mode: 'poll' });
    const raw = JSON.stringify({ activity_type: 'agent_log', summary: 'odd media type' });
    for (const type of ['application/json;', 'application/json; foo', 'application/vnd.v2+json', 'APPLICATION/JSON ; charset=utf-8', 'text/plain', '']) {
      const res = await callJson('POST', `/workspaces/${poll.id}/activity`, { token: poll.token, raw, headers: type ? { 'Content-Type': type } : {} });
      expect(res.status, type).toBe(200);
    }
    expect(await countWhere('activity_logs', 'workspace_id', poll.id)).toBe(6);
  });
});

describe('hierarchy moves', () => {
  it("a child's own token cannot move it (nor detach it); an operator can", async () => {
    const root = await registeredAgent({ mode: 'poll' });
    const child = await registeredAgent({ mode: 'poll', parentId: root.id });
    const elsewhere = await registeredAgent({ mode: 'poll' });
    for (const parent_id of [elsewhere.id, null]) {
      const res = await callJson('PATCH', `/workspaces/${child.id}`, { token: child.token, body: { parent_id } });
      expect(res).toMatchObject({ status: 403, body: { error: 'moving a workspace in the tree is an operator action' } });
    }
    const [row] = await sql('SELECT parent_id FROM workspaces WHERE id = $1', [child.id]);
    expect(row.parent_id).toBe(root.id);
    // Other fields stay the agent's to change.
    expect((await call('PATCH', `/workspaces/${child.id}`, { token: child.token, body: { name: 'renamed' } })).status).toBe(200);
    expect((await call('PATCH', `/workspaces/${child.id}`, { token: ADMIN, body: { parent_id: elsewhere.id } })).status).toBe(200);
  });

  it('concurrent opposite moves never make a cycle', async () => {
    for (let round = 0; round < 15; round++) {
      const a = await createWorkspace();
      const b = await createWorkspace();
      const [ab, ba] = await Promise.all([
        callJson('PATCH', `/workspaces/${a.id}`, { token: ADMIN, body: { parent_id: b.id } }),
        callJson('PATCH', `/workspaces/${b.id}`, { token: ADMIN, body: { parent_id: a.id } }),
      ]);
      expect([ab.status, ba.status].sort()).toEqual([200, 400]);
      const loser = ab.status === 400 ? ab : ba;
      expect(loser.body).toEqual({ error: 'a workspace cannot be its own ancestor' });
      const rows = await sql('SELECT id, parent_id FROM workspaces WHERE id IN ($1, $2)', [a.id, b.id]);
      expect(rows.filter((r) => r.parent_id !== null)).toHaveLength(1);
    }
  });

  it('a three-way race (A→B, B→C, C→A) leaves no ring either', async () => {
    for (let round = 0; round < 5; round++) {
      const [a, b, c] = await Promise.all([createWorkspace(), createWorkspace(), createWorkspace()]);
      const moves = [
        [a.id, b.id],
        [b.id, c.id],
        [c.id, a.id],
      ];
      const results = await Promise.all(moves.map(([id, parent]) => callJson('PATCH', `/workspaces/${id}`, { token: ADMIN, body: { parent_id: parent } })));
      expect(results.filter((r) => r.status === 200).length).toBe(2);
      const rows = await sql('SELECT count(*)::int AS n FROM workspaces WHERE id IN ($1, $2, $3) AND parent_id IS NULL', [a.id, b.id, c.id]);
      expect(rows[0].n).toBe(1);
    }
  });
});

describe('input Postgres cannot store', () => {
  it('NUL in any text or JSON field is a 400, with nothing written', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const before = await sql('SELECT updated_at FROM workspaces WHERE id = $1', [a.id]);
    const cases: [string, string, string, unknown][] = [
      ['POST', '/workspaces', ADMIN, { name: `x${NUL}` }],
      ['POST', '/workspaces', ADMIN, { name: 'x', role: `r${NUL}` }],
      ['PATCH', `/workspaces/${a.id}`, ADMIN, { name: `x${NUL}` }],
      ['POST', '/registry/heartbeat', a.token, { workspace_id: a.id, sample_error: `e${NUL}` }],
      ['POST', '/registry/heartbeat', a.token, { workspace_id: a.id, current_task: `t${NUL}` }],
      ['POST', '/registry/register', a.token, { id: a.id, delivery_mode: 'poll', agent_card: { name: `n${NUL}` } }],
      ['POST', `/workspaces/${a.id}/activity`, a.token, { activity_type: 'agent_log', summary: `s${NUL}` }],
      ['POST', `/workspaces/${a.id}/activity`, a.token, { activity_type: 'agent_log', request_body: { [`k${NUL}`]: 1 } }],
      ['POST', `/workspaces/${a.id}/a2a`, ADMIN, message(`hello${NUL}world`)],
      ['POST', '/org/tokens', ADMIN, { name: `n${NUL}` }],
    ];
    for (const [method, path, token, body] of cases) {
      const res = await callJson(method, path, { token, body });
      expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(400);
      expect(res.body).toEqual({ error: 'JSON strings must not contain NUL (\\u0000)', code: 'json_unstorable_text' });
    }
    expect(await countWhere('activity_logs', 'workspace_id', a.id)).toBe(0);
    expect(await sql('SELECT updated_at FROM workspaces WHERE id = $1', [a.id])).toEqual(before);
  });

  it('NUL to a push target: refused before delivery, so nothing is delivered unrecorded', async () => {
    const name = crypto.randomUUID().slice(0, 8);
    const push = await registeredAgent({ url: loopback(`/agent/echo/${name}`) });
    const res = await callJson('POST', `/workspaces/${push.id}/a2a`, { token: ADMIN, body: message(`a${NUL}b`) });
    expect(res.status).toBe(400);
    expect(await received(name)).toEqual([]);
  });

  it('an escaped backslash before u0000 is ordinary text; unpaired surrogates are refused', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const fine = await callJson('POST', `/workspaces/${a.id}/activity`, { token: a.token, raw: '{"activity_type":"agent_log","summary":"C:\\\\u0000 \\ud83d\\ude00"}' });
    expect(fine.status).toBe(200);
    const [row] = await sql('SELECT summary FROM activity_logs WHERE id = $1', [fine.body.id]);
    expect(row.summary).toBe('C:\\u0000 😀');
    const lone = await callJson('POST', `/workspaces/${a.id}/activity`, { token: a.token, raw: '{"activity_type":"agent_log","request_body":{"t":"\\ud800"}}' });
    expect(lone).toMatchObject({ status: 400, body: { code: 'json_unstorable_text' } });
  });

  it('integers beyond a Postgres integer are a 400 naming the field', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    for (const uptime of [2 ** 31, 2 ** 53, 1e308]) {
      const res = await callJson('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, uptime_seconds: uptime } });
      expect(res.status).toBe(400);
      expect(res.body.issues[0].path).toBe('uptime_seconds');
    }
    expect((await call('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, uptime_seconds: 2 ** 31 - 1 } })).status).toBe(200);
  });
});

describe('operators and workspaces that are not there', () => {
  it('unknown workspace: activity read and write are 404, nothing written', async () => {
    const ghost = crypto.randomUUID();
    expect(await callJson('GET', `/workspaces/${ghost}/activity`, { token: ADMIN })).toMatchObject({ status: 404, body: { error: 'workspace not found' } });
    expect(await callJson('POST', `/workspaces/${ghost}/activity`, { token: ADMIN, body: { activity_type: 'agent_log' } })).toMatchObject({
      status: 404,
      body: { error: 'workspace not found' },
    });
    expect(await countWhere('activity_logs', 'workspace_id', ghost)).toBe(0);
  });

  it('deleted workspace: no activity can be written into it', async () => {
    const ws = await createWorkspace();
    expect((await call('DELETE', `/workspaces/${ws.id}`, { token: ADMIN })).status).toBe(200);
    const res = await callJson('POST', `/workspaces/${ws.id}/activity`, { token: ADMIN, body: { activity_type: 'agent_log', summary: 'ghost' } });
    expect(res).toMatchObject({ status: 404, body: { error: 'workspace not found' } });
    expect(await countWhere('activity_logs', 'workspace_id', ws.id)).toBe(0);
  });
});

describe('error bodies do not echo input', () => {
  it('a 5,000-character capability key comes back as a small fixed 400', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const key = `k${'A'.repeat(4999)}`;
    const res = await call('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, runtime_metadata: { capabilities: { [key]: true } } } });
    const text = await res.text();
    expect(res.status).toBe(400);
    expect(text.length).toBeLessThan(300);
    expect(text).not.toContain('AAAAAAAAAA');
  });

  it('3,000 bad fields still get a small answer', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const capabilities = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`c${i}`, 'yes']));
    const res = await call('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, runtime_metadata: { capabilities } } });
    expect(res.status).toBe(400);
    expect((await res.text()).length).toBeLessThan(2048);
  });
});

describe('concurrent deletes', () => {
  it('50 DELETEs of one workspace: one 200, the rest 404, one WORKSPACE_REMOVED', async () => {
    const ws = await createWorkspace();
    const results = await Promise.all(Array.from({ length: 50 }, () => callJson('DELETE', `/workspaces/${ws.id}`, { token: ADMIN })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    const rest = results.filter((r) => r.status !== 200);
    expect(rest).toHaveLength(49);
    for (const r of rest) expect(r).toMatchObject({ status: 404, body: { error: 'workspace not found' } });
    await new Promise((r) => setTimeout(r, 300));
    const events = await sql(`SELECT count(*)::int AS n FROM structure_events WHERE workspace_id = $1 AND event_type = 'WORKSPACE_REMOVED'`, [ws.id]);
    expect(events[0].n).toBe(1);
  });
});

describe('agent URLs', () => {
  it('control characters are refused; what is stored is the parsed form that dispatch contacts', async () => {
    const ws = await createWorkspace({ external: true });
    for (const url of [`${loopback("/agent/ec\tho/x")}`, `${loopback('/agent/echo/x')}\n123`, `http://exa\u0001mple.com/`]) {
      const res = await callJson('POST', '/registry/register', { token: ws.token, body: { id: ws.id, agent_card: card, url } });
      expect(res).toMatchObject({ status: 400, body: { error: 'invalid agent url', reason: 'url is not valid' } });
    }
    const ok = await callJson('POST', '/registry/register', { token: ws.token, body: { id: ws.id, agent_card: card, url: 'http://127.0.0.1:9/a/../agent' } });
    expect(ok.status).toBe(200);
    const [row] = await sql('SELECT url FROM workspaces WHERE id = $1', [ws.id]);
    expect(row.url).toBe('http://127.0.0.1:9/agent');
  });
});

describe('bootstrap is for a workspace that was never given a token', () => {
  it('a workspace waiting for its first register is not shown to other agents; once registered it is', async () => {
    const parent = await registeredAgent({ mode: 'poll' });
    const me = await registeredAgent({ mode: 'poll', parentId: parent.id });
    const pending = await createWorkspace({ external: true, url: 'http://example.com/agent', parent_id: parent.id });
    const ids = async () => (await callJson('GET', `/registry/${me.id}/peers`, { token: me.token })).body.map((p: any) => p.id);
    expect(await ids()).not.toContain(pending.id);
    expect((await call('GET', `/registry/discover/${pending.id}`, { token: me.token })).status).toBe(404);
    const reg = await callJson('POST', '/registry/register', { body: { id: pending.id, agent_card: card, delivery_mode: 'poll' } });
    expect(reg.body.auth_token).toMatch(/^mws_/);
    expect(await ids()).toContain(pending.id);
    expect((await call('GET', `/registry/discover/${pending.id}`, { token: me.token })).status).toBe(200);
  });

  it('revoking every token does not reopen the door: an unauthenticated register stays 401', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    await sql('UPDATE workspace_auth_tokens SET revoked_at = now() WHERE workspace_id = $1', [a.id]);
    const res = await callJson('POST', '/registry/register', { body: { id: a.id, agent_card: card, delivery_mode: 'poll' } });
    expect(res).toMatchObject({ status: 401, body: { error: 'missing workspace auth token' } });
    expect(res.body.auth_token).toBeUndefined();
  });
});

describe('the tree under concurrent deletes', () => {
  it('the database itself refuses a child, or a move, under a removed parent', async () => {
    const parent = await createWorkspace();
    const other = await createWorkspace();
    expect((await call('DELETE', `/workspaces/${parent.id}`, { token: ADMIN })).status).toBe(200);
    await expect(sql(`INSERT INTO workspaces (name, parent_id) VALUES ('late', $1)`, [parent.id])).rejects.toThrow(/parent workspace is not live/);
    await expect(sql(`UPDATE workspaces SET parent_id = $1 WHERE id = $2`, [parent.id, other.id])).rejects.toThrow(/parent workspace is not live/);
  });

  it('a child created or moved under a workspace being deleted is never left live under a tombstone', async () => {
    for (let round = 0; round < 8; round++) {
      const parent = await createWorkspace();
      const mover = await createWorkspace();
      const [del, created, moved] = await Promise.all([
        callJson('DELETE', `/workspaces/${parent.id}?confirm=true`, { token: ADMIN }),
        callJson('POST', '/workspaces', { token: ADMIN, body: { name: `child-${round}`, parent_id: parent.id } }),
        callJson('PATCH', `/workspaces/${mover.id}`, { token: ADMIN, body: { parent_id: parent.id } }),
      ]);
      expect(del.status).toBe(200);
      expect([201, 400]).toContain(created.status);
      expect([200, 400]).toContain(moved.status);
      if (created.status === 400) expect(created.body).toEqual({ error: 'parent workspace not found' });
      const orphans = await sql(
        `SELECT c.id FROM workspaces c JOIN workspaces p ON p.id = c.parent_id WHERE p.id = $1 AND c.status <> 'removed' AND p.status = 'removed'`,
        [parent.id],
      );
      expect(orphans).toEqual([]);
    }
  });
});

describe('a feed commits in seq order', () => {
  it('a write to a feed waits for an earlier, still uncommitted write to that feed (so a since_id poller can never step past a row)', async () => {
    const { env } = await import('cloudflare:test');
    const { Pool } = await import('@neondatabase/serverless');
    const inbox = await registeredAgent({ mode: 'poll' });
    await sql('SELECT 1'); // configures the driver for the local relay
    const pool = new Pool({ connectionString: env.DATABASE_URL });
    pool.on('error', () => {});
    const client = await pool.connect();
    try {
      // An in-flight writer to the same feed: it holds the feed's lock and an uncommitted row.
      await client.query('BEGIN');
      await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('activity_feed:' || $1, 0))`, [inbox.id]);
      const [early] = (await client.query(`INSERT INTO activity_logs (workspace_id, activity_type, summary) VALUES ($1, 'a2a_receive', 'early') RETURNING seq`, [inbox.id])).rows;
      let settled = false;
      const sending = callJson('POST', `/workspaces/${inbox.id}/a2a`, { token: ADMIN, body: message('late') }).finally(() => (settled = true));
      await new Promise((r) => setTimeout(r, 500));
      expect(settled).toBe(false); // queued behind the uncommitted row, not committed ahead of it
      await client.query('COMMIT');
      expect((await sending).status).toBe(200);
      const rows = await sql(`SELECT summary, seq FROM activity_logs WHERE workspace_id = $1 ORDER BY seq`, [inbox.id]);
      expect(rows.map((r) => r.summary)).toEqual(['early', 'message/send queued for poll']);
      expect(Number(rows[1].seq)).toBeGreaterThan(Number(early.seq));
    } finally {
      client.release();
      await pool.end();
    }
  });
});
