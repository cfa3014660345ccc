// Agent memories: /workspaces/:id/memories*. The client calls replayed here are, byte for byte
// in what they send and field for field in what they read:
//   RT builtin  workspace/builtin_tools/memory.py (EnterOS-AI/enteros-core @ 7b40a03)
//               commit_memory :132-140 POST {content, scope}, success only on status 201, reads `id`;
//               recall_memory :292-297 GET ?q&scope, 200 must be a list
//   RT3 tools   workspace/a2a_tools_memory.py (same commit) :76-91 POST {content, scope, workspace_id},
//               200/201 + `id`; :126-137 GET ?workspace_id&q&scope, a list of {scope, content}
//   CH          server.ts (molecule-mcp-claude-channel @ fb7a89c) :1007-1023 POST {content, scope, workspace_id},
//               any 2xx; :1043-1055 GET ?workspace_id&q&scope, the JSON as is
//   MCPS        src/tools/memory.ts (molecule-mcp-server @ 2b47fda) :11 POST {content, scope}, :24 GET ?q&scope
//               (a bare `?` when neither), :30 DELETE /memories/:mid; it sends no bearer, so against Edge it
//               only works with one added: its calls are replayed with the workspace token.
import { env } from 'cloudflare:test';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { sql as q } from 'drizzle-orm';
import { RequestScope } from '../../src/lib/request-scope';
import { communicableWorkspaceIds, mayCommunicate, reachablePairsQuery, reachableSets } from '../../src/workspaces/queries';
import { ADMIN, api, call, callJson, createWorkspace, sql } from '../support/api';
import { describeSubs, problemsOf, renderBody, send, substitutions, type Sub } from '../support/hostile';

type Ws = { id: string; token: string };

async function workspace(parent?: Ws): Promise<Ws> {
  const created = await createWorkspace({ external: true, delivery_mode: 'poll', ...(parent ? { parent_id: parent.id } : {}) });
  return { id: created.id, token: created.token! };
}

const memoriesPath = (ws: Ws) => `/workspaces/${ws.id}/memories`;

async function remember(ws: Ws, content: string, scope: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await callJson('POST', memoriesPath(ws), { token: ws.token, body: { content, scope, ...extra } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

async function recall(ws: Ws, query: string): Promise<any[]> {
  const res = await callJson('GET', `${memoriesPath(ws)}?${query}`, { token: ws.token });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

const countOf = async (ws: Ws) => (await sql('SELECT count(*)::int AS n FROM memories WHERE workspace_id = $1', [ws.id]))[0].n as number;
const tagged = () => `t${crypto.randomUUID().slice(0, 8)}`;

describe('client replays', () => {
  it('RT builtin commit_memory / recall_memory: exactly 201 with id; 200 with a list', async () => {
    const ws = await workspace();
    const tag = tagged();
    const res = await api.POST('/workspaces/{id}/memories', {
      params: { path: { id: ws.id } },
      body: { content: `${tag} the deploy key lives in vault`, scope: 'LOCAL' },
      headers: { Authorization: `Bearer ${ws.token}` },
    });
    expect(res.response.status).toBe(201);
    expect(typeof res.data!.id).toBe('string');
    expect(res.data).toEqual({ id: res.data!.id, scope: 'LOCAL', namespace: 'general' });

    const list = await api.GET('/workspaces/{id}/memories', {
      params: { path: { id: ws.id }, query: { q: tag, scope: 'LOCAL' } },
      headers: { Authorization: `Bearer ${ws.token}` },
    });
    expect(list.response.status).toBe(200);
    expect(Array.isArray(list.data)).toBe(true);
    expect(list.data).toEqual([
      { id: res.data!.id, workspace_id: ws.id, content: `${tag} the deploy key lives in vault`, scope: 'LOCAL', namespace: 'general', created_at: expect.any(String) },
    ]);
  });

  it('RT3 a2a_tools_memory and CH: workspace_id in the body and the query is ignored; the list carries scope and content', async () => {
    const ws = await workspace();
    const other = await workspace();
    const tag = tagged();
    // Even a different workspace_id: the path (and the token) decide whose memory it is.
    const id = await remember(ws, `${tag} team fact`, 'TEAM', { workspace_id: other.id });
    const [row] = await sql('SELECT workspace_id, scope FROM memories WHERE id = $1', [id]);
    expect(row).toEqual({ workspace_id: ws.id, scope: 'TEAM' });

    const list = await recall(ws, `workspace_id=${ws.id}&q=${tag}&scope=TEAM`);
    expect(list.map((m) => `[${m.scope}] ${m.content}`)).toEqual([`[TEAM] ${tag} team fact`]);
  });

  it('MCPS commit_memory / search_memory / delete_memory', async () => {
    const ws = await workspace();
    const tag = tagged();
    const id = await remember(ws, `${tag} mcps`, 'LOCAL');
    // search_memory with neither query nor scope builds `/memories?`.
    expect((await recall(ws, '')).map((m) => m.id)).toContain(id);
    expect((await recall(ws, `q=${tag}&scope=LOCAL`)).map((m) => m.id)).toEqual([id]);
    const del = await callJson('DELETE', `${memoriesPath(ws)}/${id}`, { token: ws.token });
    expect(del.status).toBe(200);
    expect(del.body).toEqual({ status: 'deleted' });
    expect(await recall(ws, `q=${tag}`)).toEqual([]);
    expect((await callJson('DELETE', `${memoriesPath(ws)}/${id}`, { token: ws.token })).status).toBe(404);
  });

  it('scope is case-insensitive on input and stored upper case; namespace defaults to general', async () => {
    const ws = await workspace();
    const tag = tagged();
    const res = await callJson('POST', memoriesPath(ws), { token: ws.token, body: { content: `${tag} a`, scope: 'team', namespace: '' } });
    expect(res.body).toEqual({ id: expect.any(String), scope: 'TEAM', namespace: 'general' });
    await remember(ws, `${tag} b`, 'Local', { namespace: 'procedures' });
    expect((await sql('SELECT scope, namespace FROM memories WHERE workspace_id = $1 ORDER BY scope', [ws.id]))).toEqual([
      { scope: 'LOCAL', namespace: 'procedures' },
      { scope: 'TEAM', namespace: 'general' },
    ]);
    expect((await recall(ws, `scope=team&q=${tag}`)).map((m) => m.content)).toEqual([`${tag} a`]);
    expect((await recall(ws, `namespace=procedures`)).map((m) => m.content)).toEqual([`${tag} b`]);
    // An empty scope (CH/MCPS "all accessible") is no scope.
    expect((await recall(ws, `scope=&q=${tag}`)).length).toBe(2);
  });
});

describe('visibility across the tree', () => {
  // R ─┬─ A ── A1      S (another root)     Z (a removed root)
  //    ├─ B ── B1
  //    └─ X (removed)
  const tag = tagged();
  const t: Record<string, Ws> = {};
  const name = new Map<string, string>();

  beforeAll(async () => {
    t.R = await workspace();
    t.S = await workspace();
    t.Z = await workspace();
    [t.A, t.B, t.X] = await Promise.all([workspace(t.R), workspace(t.R), workspace(t.R)]);
    [t.A1, t.B1] = await Promise.all([workspace(t.A), workspace(t.B)]);
    for (const [n, ws] of Object.entries(t)) {
      name.set(ws.id, n);
      await remember(ws, `${tag} ${n} LOCAL`, 'LOCAL');
      await remember(ws, `${tag} ${n} TEAM`, 'TEAM');
      if (['R', 'S', 'Z'].includes(n)) await remember(ws, `${tag} ${n} GLOBAL`, 'GLOBAL');
    }
    for (const gone of [t.X!, t.Z!]) expect((await call('DELETE', `/workspaces/${gone.id}`, { token: ADMIN })).status).toBe(200);
  });

  const seen = async (viewer: string, scope: string) =>
    (await recall(t[viewer]!, `q=${tag}${scope ? `&scope=${scope}` : ''}`)).map((m) => m.content.slice(tag.length + 1)).sort();
  const team = (...names: string[]) => names.map((n) => `${n} TEAM`).sort();

  it('LOCAL: only the workspace’s own', async () => {
    for (const n of ['R', 'S', 'A', 'B', 'A1', 'B1']) expect(await seen(n, 'LOCAL'), n).toEqual([`${n} LOCAL`]);
  });

  it('TEAM: the A2A hierarchy rule (siblings incl. other roots, ancestors, descendants); never cousins, uncles or removed', async () => {
    const expected: Record<string, string[]> = {
      R: team('R', 'S', 'A', 'B', 'A1', 'B1'),
      S: team('S', 'R'),
      A: team('A', 'R', 'B', 'A1'),
      B: team('B', 'R', 'A', 'B1'),
      A1: team('A1', 'A', 'R'),
      B1: team('B1', 'B', 'R'),
    };
    for (const [n, want] of Object.entries(expected)) expect(await seen(n, 'TEAM'), n).toEqual(want);
  });

  it('GLOBAL: every live workspace’s GLOBAL memories, for everyone', async () => {
    for (const n of ['R', 'S', 'A', 'B', 'A1', 'B1']) expect(await seen(n, 'GLOBAL'), n).toEqual(['R GLOBAL', 'S GLOBAL']);
  });

  it('no scope: the workspace’s own memories of every scope, newest first', async () => {
    const list = await recall(t.R!, `q=${tag}`);
    expect(list.map((m) => m.content.slice(tag.length + 1))).toEqual(['R GLOBAL', 'R TEAM', 'R LOCAL']);
    expect(await seen('A1', '')).toEqual(['A1 LOCAL', 'A1 TEAM']);
  });

  it('the SQL form of the rule agrees with mayCommunicate for every pair (removed ones included)', async () => {
    // Plus a great-grandchild, and a live workspace under a tombstone (only SQL leaves that state).
    const deep = await workspace(t.A1);
    const tomb = await workspace(t.B1);
    const orphan = await workspace(tomb);
    await sql(`UPDATE workspaces SET status = 'removed', removed_at = now() WHERE id = $1`, [tomb.id]);
    for (const [n, ws] of Object.entries({ deep, tomb, orphan })) name.set(ws.id, n);
    const reach = new Map<string, string[]>();
    const scope = new RequestScope(env);
    try {
      const ids = [...name.keys()];
      for (const viewer of ids) {
        const rows = await scope.db.execute<{ id: string }>(q`SELECT id FROM (${communicableWorkspaceIds(viewer)}) v`);
        const bySql = rows.rows.flatMap((r) => (name.has(r.id) ? [name.get(r.id)!] : [])).sort();
        const byRule: string[] = [];
        for (const target of ids) if (await mayCommunicate(scope.db, viewer, target)) byRule.push(name.get(target)!);
        expect(bySql, name.get(viewer)).toEqual(byRule.sort());
        reach.set(name.get(viewer)!, bySql);
      }
      // The batch form (the event hub's refresh: every viewer in one statement) agrees too.
      const batch = reachableSets(ids, (await reachablePairsQuery(scope.db, ids)).rows);
      for (const viewer of ids) {
        const named = [...batch.get(viewer)!].flatMap((id) => (name.has(id) ? [name.get(id)!] : [])).sort();
        expect(named, `batch ${name.get(viewer)}`).toEqual(reach.get(name.get(viewer)!));
      }
      // Not vacuous: the walk passes the tombstone both ways, and reaches three generations down.
      expect(reach.get('orphan')).toEqual(['B', 'B1', 'R', 'orphan']);
      expect(reach.get('R')).toEqual(expect.arrayContaining(['deep', 'orphan', 'S']));
      expect(reach.get('tomb')).toEqual([]);
    } finally {
      await scope.close();
    }
  });

  it('a removed workspace’s memories are gone from its own token and 404 to operators', async () => {
    expect((await call('GET', memoriesPath(t.X!), { token: t.X!.token })).status).toBe(401);
    expect((await call('GET', memoriesPath(t.X!), { token: ADMIN })).status).toBe(404);
    expect((await call('POST', memoriesPath(t.X!), { token: ADMIN, body: { content: 'x', scope: 'LOCAL' } })).status).toBe(404);
  });
});

describe('writes', () => {
  it('GLOBAL from a child is 403 and writes nothing; a root may', async () => {
    const root = await workspace();
    const child = await workspace(root);
    const res = await callJson('POST', memoriesPath(child), { token: child.token, body: { content: 'org-wide', scope: 'GLOBAL' } });
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ error: 'only root workspaces can write GLOBAL memories' });
    // Operators act for the workspace: the rule is the workspace's, not the caller's.
    expect((await call('POST', memoriesPath(child), { token: ADMIN, body: { content: 'org-wide', scope: 'global' } })).status).toBe(403);
    expect(await countOf(child)).toBe(0);
    await remember(root, 'org-wide', 'GLOBAL');
  });

  it('PATCH edits content and namespace of an own memory and answers it', async () => {
    const ws = await workspace();
    const id = await remember(ws, 'first draft', 'TEAM');
    const res = await callJson('PATCH', `${memoriesPath(ws)}/${id}`, { token: ws.token, body: { content: 'second draft', namespace: 'facts' } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id, workspace_id: ws.id, content: 'second draft', scope: 'TEAM', namespace: 'facts', created_at: expect.any(String) });
    const ns = await callJson('PATCH', `${memoriesPath(ws)}/${id}`, { token: ws.token, body: { namespace: 'blockers' } });
    expect(ns.body).toMatchObject({ content: 'second draft', namespace: 'blockers' });
    const [row] = await sql('SELECT content, namespace, updated_at > created_at AS touched FROM memories WHERE id = $1', [id]);
    expect(row).toEqual({ content: 'second draft', namespace: 'blockers', touched: true });
  });

  it("PATCH and DELETE of another workspace's memory are 404 (even to a TEAM peer that can read it) and change nothing", async () => {
    const root = await workspace();
    const [a, b] = await Promise.all([workspace(root), workspace(root)]);
    const id = await remember(a, 'a owns this', 'TEAM');
    expect((await recall(b, 'scope=TEAM')).map((m) => m.id)).toContain(id);
    for (const [method, body] of [['PATCH', { content: 'hijacked' }], ['DELETE', undefined]] as const) {
      const res = await callJson(method, `${memoriesPath(b)}/${id}`, { token: b.token, body });
      expect(res.status, method).toBe(404);
      expect(res.body).toEqual({ error: 'memory not found' });
    }
    // Unknown ids look the same.
    expect((await call('DELETE', `${memoriesPath(b)}/${crypto.randomUUID()}`, { token: b.token })).status).toBe(404);
    expect((await sql('SELECT content FROM memories WHERE id = $1', [id]))).toEqual([{ content: 'a owns this' }]);
  });

  it('PATCH needs something to change and refuses empty values', async () => {
    const ws = await workspace();
    const id = await remember(ws, 'keep', 'LOCAL');
    for (const body of [{}, { content: '' }, { content: '  ' }, { namespace: '' }, { namespace: 'n'.repeat(51) }, { content: 7 }]) {
      expect((await call('PATCH', `${memoriesPath(ws)}/${id}`, { token: ws.token, body })).status, JSON.stringify(body)).toBe(400);
    }
    expect((await sql('SELECT content, namespace FROM memories WHERE id = $1', [id]))).toEqual([{ content: 'keep', namespace: 'general' }]);
  });
});

describe('auth', () => {
  it("another workspace's token, a missing token and a bad token are 401 on every route", async () => {
    const [ws, other] = await Promise.all([workspace(), workspace()]);
    const id = await remember(ws, 'private', 'LOCAL');
    const attempts = [
      ['POST', memoriesPath(ws), { content: 'planted', scope: 'LOCAL' }],
      ['GET', `${memoriesPath(ws)}?scope=LOCAL`, undefined],
      ['PATCH', `${memoriesPath(ws)}/${id}`, { content: 'changed' }],
      ['DELETE', `${memoriesPath(ws)}/${id}`, undefined],
    ] as const;
    for (const [method, path, body] of attempts) {
      for (const token of [other.token, undefined, 'mws_not-a-token']) {
        expect((await call(method, path, { token, body })).status, `${method} ${token}`).toBe(401);
      }
    }
    expect((await sql('SELECT content FROM memories WHERE workspace_id = $1', [ws.id]))).toEqual([{ content: 'private' }]);
  });

  it('operators may act for a live workspace; unknown workspaces are 404; bad ids are 400', async () => {
    const ws = await workspace();
    expect((await call('POST', memoriesPath(ws), { token: ADMIN, body: { content: 'by operator', scope: 'LOCAL' } })).status).toBe(201);
    expect((await call('GET', `/workspaces/${crypto.randomUUID()}/memories`, { token: ADMIN })).status).toBe(404);
    const bad = await callJson('GET', '/workspaces/not-a-uuid/memories', { token: ADMIN });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid workspace ID');
    const badMemory = await callJson('DELETE', `${memoriesPath(ws)}/mem-42`, { token: ws.token });
    expect(badMemory.status).toBe(400);
    expect(badMemory.body.error).toBe('invalid memory ID');
  });
});

describe('hostile input', () => {
  it('content: empty, NUL, lone surrogate, over 64 KiB, wrong type; deep JSON; unknown scope; long namespace → 400, nothing written', async () => {
    const ws = await workspace();
    const raws = [
      JSON.stringify({ content: '', scope: 'LOCAL' }),
      JSON.stringify({ content: ' \n\t', scope: 'LOCAL' }),
      '{"content":"a\\u0000b","scope":"LOCAL"}',
      '{"content":"a\\ud800b","scope":"LOCAL"}',
      JSON.stringify({ content: 'x'.repeat(64 * 1024 + 1), scope: 'LOCAL' }),
      JSON.stringify({ content: 'é'.repeat(32 * 1024 + 1), scope: 'LOCAL' }), // 64 KiB + 2 bytes in UTF-8
      JSON.stringify({ content: 42, scope: 'LOCAL' }),
      JSON.stringify({ content: ['a'], scope: 'LOCAL' }),
      JSON.stringify({ scope: 'LOCAL' }),
      JSON.stringify({ content: 'a' }),
      JSON.stringify({ content: 'a', scope: 'PRIVATE' }),
      JSON.stringify({ content: 'a', scope: 'LOCAL ' }),
      JSON.stringify({ content: 'a', scope: 'LOCAL', namespace: 'n'.repeat(51) }),
      JSON.stringify({ content: 'a', scope: 'LOCAL', namespace: 7 }),
      `{"content":"a","scope":"LOCAL","meta":${'['.repeat(10_000)}${']'.repeat(10_000)}}`,
      '[]',
      'null',
      'not json',
    ];
    for (const raw of raws) {
      const res = await send('POST', memoriesPath(ws), { token: ws.token, raw });
      expect(res.status, raw.slice(0, 60)).toBe(400);
      expect(problemsOf(res), raw.slice(0, 60)).toEqual([]);
    }
    const huge = await send('POST', memoriesPath(ws), { token: ws.token, raw: JSON.stringify({ content: 'x'.repeat(200 * 1024), scope: 'LOCAL' }) });
    expect(huge.status).toBe(413);
    expect(await countOf(ws)).toBe(0);
    // The boundary itself is accepted: exactly 64 KiB of UTF-8.
    await remember(ws, 'é'.repeat(32 * 1024), 'LOCAL');
  });

  it('query: limit 2^31 is clamped to 50; 0, negative, fraction are 400; q and namespace are bounded; LIKE metacharacters are literal', async () => {
    const ws = await workspace();
    await sql(`INSERT INTO memories (workspace_id, content, scope) SELECT $1, 'bulk ' || g, 'LOCAL' FROM generate_series(1, 60) g`, [ws.id]);
    await remember(ws, '100% sure_thing \\ done', 'LOCAL');
    expect((await recall(ws, 'limit=2147483648')).length).toBe(50);
    expect((await recall(ws, 'limit=3')).length).toBe(3);
    for (const bad of ['limit=0', 'limit=-1', 'limit=1.5', 'limit=abc', 'scope=PRIVATE', `q=${'x'.repeat(257)}`, 'q=a%00b', `namespace=${'n'.repeat(51)}`]) {
      const res = await send('GET', `${memoriesPath(ws)}?${bad}`, { token: ws.token });
      expect(res.status, bad).toBe(400);
      expect(problemsOf(res), bad).toEqual([]);
    }
    expect((await recall(ws, `q=${encodeURIComponent('100%')}`)).map((m) => m.content)).toEqual(['100% sure_thing \\ done']);
    expect(await recall(ws, `q=${encodeURIComponent('%')}&limit=50`)).toHaveLength(1);
    expect(await recall(ws, `q=${encodeURIComponent('_')}`)).toHaveLength(1);
    expect(await recall(ws, `q=${encodeURIComponent('\\')}`)).toHaveLength(1);
    expect(await recall(ws, 'q=BULK%2059')).toHaveLength(1);
  });

  it('generated hostile bodies on POST and PATCH: < 500, small errors, nothing written on a 4xx', { timeout: 120_000 }, async () => {
    const ws = await workspace();
    const id = await remember(ws, 'target', 'LOCAL');
    const state = async () => JSON.stringify(await sql('SELECT id, content, scope, namespace, updated_at FROM memories WHERE workspace_id = $1 ORDER BY id', [ws.id]));
    const check = async (label: string, request: () => ReturnType<typeof send>) => {
      const before = await state();
      const reply = await request();
      const problems = problemsOf(reply);
      if (reply.status >= 400 && (await state()) !== before) problems.push('wrote despite an error');
      if (reply.status < 400 && (await recall(ws, 'limit=1')).length !== 1) problems.push('read back failed');
      if (problems.length > 0) throw new Error(`${label} → ${reply.status} ${reply.text.slice(0, 200)}\n${problems.join('\n')}`);
    };
    const post = { content: 'fact', scope: 'TEAM', namespace: 'general', workspace_id: ws.id };
    await fc.assert(
      fc.asyncProperty(substitutions(post, [[], ['content'], ['scope'], ['namespace'], ['workspace_id']]), async (subs: Sub[]) => {
        await check(`POST ${describeSubs(subs)}`, () => send('POST', memoriesPath(ws), { token: ws.token, raw: renderBody(post, subs) }));
      }),
      { numRuns: 40 },
    );
    const patch = { content: 'edited', namespace: 'facts' };
    await fc.assert(
      fc.asyncProperty(substitutions(patch, [[], ['content'], ['namespace']]), async (subs: Sub[]) => {
        await check(`PATCH ${describeSubs(subs)}`, () => send('PATCH', `${memoriesPath(ws)}/${id}`, { token: ws.token, raw: renderBody(patch, subs) }));
      }),
      { numRuns: 30 },
    );
  });
});

describe('concurrency', () => {
  it('50 concurrent writes: 50 distinct memories', async () => {
    const ws = await workspace();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => callJson('POST', memoriesPath(ws), { token: ws.token, body: { content: `same fact ${i % 2}`, scope: 'LOCAL' } })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(201));
    expect(new Set(results.map((r) => r.body.id)).size).toBe(50);
    expect(await countOf(ws)).toBe(50);
  });

  it('the per-workspace cap holds exactly under 50 concurrent writes: 429 past it, other workspaces unaffected', async () => {
    const [ws, neighbour] = await Promise.all([workspace(), workspace()]);
    await sql(`INSERT INTO memories (workspace_id, content, scope) SELECT $1, 'filler', 'LOCAL' FROM generate_series(1, 9990)`, [ws.id]);
    const results = await Promise.all(
      Array.from({ length: 50 }, () => callJson('POST', memoriesPath(ws), { token: ws.token, body: { content: 'one more', scope: 'LOCAL' } })),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(40);
    expect(results.find((r) => r.status === 429)!.body).toEqual({ error: 'memory limit reached for this workspace: delete memories to store more', limit: 10_000 });
    expect(await countOf(ws)).toBe(10_000);
    await remember(neighbour, 'unaffected', 'LOCAL');
    // Forgetting one makes room for one.
    const [victim] = await sql('SELECT id FROM memories WHERE workspace_id = $1 LIMIT 1', [ws.id]);
    expect((await call('DELETE', `${memoriesPath(ws)}/${victim.id}`, { token: ws.token })).status).toBe(200);
    await remember(ws, 'room again', 'LOCAL');
    expect((await call('POST', memoriesPath(ws), { token: ws.token, body: { content: 'too many', scope: 'LOCAL' } })).status).toBe(429);
  });

  it('50 concurrent deletes of one memory: exactly one 200, the rest 404', async () => {
    const ws = await workspace();
    const id = await remember(ws, 'once', 'LOCAL');
    const statuses = await Promise.all(Array.from({ length: 50 }, async () => (await call('DELETE', `${memoriesPath(ws)}/${id}`, { token: ws.token })).status));
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 404)).toHaveLength(49);
  });
});
