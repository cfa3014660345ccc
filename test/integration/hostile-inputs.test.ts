// Property tests: the public routes under generated hostile input.
//
// For every response to a hostile request:
//   1. status < 500;
//   2. a 4xx body is small JSON (< 2 KB) shaped {error: string, ...};
//   3. an error body carries no internal text (driver / parser / stack wording) and never echoes
//      the input (every generated string embeds MARKER);
//   4. a 4xx writes nothing: the touched rows of the workspace under test are compared before
//      and after (workspaces row digest, activity_logs count, workspace_auth_tokens counts,
//      a2a_queue count + updated_at), so tests running in parallel cannot interfere.
// After a 2xx, the workspace's read routes must still answer < 500 (a stored hostile value must
// never break a read), and a final test re-reads everything that was written.
//
// Generators live in test/support/hostile.ts: one arbitrary per hostile value class, combined
// with fc.oneof; `substitutions` puts a hostile value into one field of a valid base body at a
// time (and into 2–4 fields at once in about a quarter of the runs).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { ADMIN, createWorkspace, loopback, registeredAgent, sql, waitFor } from '../support/api';
import {
  describeSubs,
  excerpt,
  MARKER,
  problemsOf,
  querySubstitutions,
  renderBody,
  send,
  substitutions,
  type Path,
  type Reply,
  type Sub,
} from '../support/hostile';

const NUM_RUNS = 60;
const PROPERTY_TIMEOUT_MS = 120_000;
const params = { numRuns: NUM_RUNS } satisfies fc.Parameters<unknown>;

type Agent = { id: string; token: string };
/** The workspaces a request may touch, and tags that find rows it should not have created. */
type Scope = { ids: string[]; workspaceTag?: string; orgTokenTag?: string };

/** One round trip: everything a 4xx must leave untouched, scoped to the workspaces under test. */
async function snapshot(scope: Scope): Promise<string> {
  const [row] = await sql(
    `SELECT
       (SELECT coalesce(json_agg(json_build_object('id', w.id, 'updated_at', w.updated_at, 'digest', md5(row_to_json(w)::text)) ORDER BY w.id), '[]'::json)
          FROM workspaces w WHERE w.id = ANY($1::uuid[])) AS workspaces,
       (SELECT count(*)::int FROM activity_logs WHERE workspace_id = ANY($1::uuid[])) AS activity_logs,
       (SELECT json_build_array(count(*)::int, count(revoked_at)::int) FROM workspace_auth_tokens WHERE workspace_id = ANY($1::uuid[])) AS workspace_auth_tokens,
       (SELECT json_build_array(count(*)::int, max(updated_at)) FROM a2a_queue WHERE workspace_id = ANY($1::uuid[])) AS a2a_queue,
       (SELECT count(*)::int FROM delegations WHERE source_id = ANY($1::uuid[]) OR target_id = ANY($1::uuid[])) AS delegations,
       (SELECT count(*)::int FROM workspaces
         WHERE $2::text IS NOT NULL AND (name LIKE $2 OR role LIKE $2 OR model LIKE $2 OR workspace_dir LIKE $2)) AS tagged_workspaces,
       (SELECT count(*)::int FROM org_api_tokens WHERE $3::text IS NOT NULL AND name LIKE $3) AS tagged_org_tokens`,
    [scope.ids, scope.workspaceTag ? `%${scope.workspaceTag}%` : null, scope.orgTokenTag ? `%${scope.orgTokenTag}%` : null],
  );
  return JSON.stringify(row);
}

/**
 * Read routes for a workspace: each must answer < 500 with JSON. After a single write only the
 * newest activity row is read (limit=1), so a failure points at the value just written; the
 * final test reads whole feeds.
 */
async function readProblems(id: string, feedLimit = 1): Promise<string[]> {
  const problems: string[] = [];
  for (const path of [`/workspaces/${id}`, `/workspaces/${id}/activity?limit=${feedLimit}`, `/workspaces/${id}/delegations?limit=${Math.min(feedLimit, 50)}`]) {
    const r = await send('GET', path, { token: ADMIN });
    if (r.status >= 500 || r.json === undefined) problems.push(`read GET ${path} → ${r.status} ${excerpt(r.text, 200)}`);
  }
  return problems;
}

/**
 * Sends one hostile request and throws (failing the property) with the route, the substituted
 * fields and their value classes, the status and the offending body, if any rule is broken.
 */
async function exercise(route: string, label: string, scope: Scope, request: () => Promise<Reply>, readBack: (r: Reply) => string[] = () => scope.ids) {
  const before = await snapshot(scope);
  const reply = await request();
  const problems = problemsOf(reply);
  if (reply.status >= 400) {
    const after = await snapshot(scope);
    if (after !== before) problems.push(`wrote despite ${reply.status}: before ${before} after ${after}`);
  } else {
    for (const id of readBack(reply)) problems.push(...(await readProblems(id)));
  }
  if (problems.length > 0) {
    throw new Error(`${route} [${label}] → ${reply.status} ${excerpt(reply.text)}\n  - ${problems.join('\n  - ')}`);
  }
}

const auth = fc.constantFrom<'admin' | 'own'>('admin', 'own');
const tokenFor = (who: 'admin' | 'own', agent: Agent) => (who === 'admin' ? ADMIN : agent.token);
const paths = (...ps: (string | Path)[]): Path[] => ps.map((p) => (typeof p === 'string' ? [p] : p));

describe('hostile inputs on the public routes', () => {
  const tag = `hx${crypto.randomUUID().slice(0, 8)}`;
  const written: string[] = [];
  let parent: { id: string };
  let patchWs: Agent;
  let activityWs: Agent;
  let registerWs: Agent;
  let heartbeatWs: Agent;
  let a2aTarget: Agent;
  let delegateWs: Agent;
  let cursorId: string;

  beforeAll(async () => {
    parent = await createWorkspace({ external: true, name: `${tag}-parent` });
    [patchWs, activityWs, registerWs, heartbeatWs, a2aTarget, delegateWs] = await Promise.all([
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
    ]);
    const [row] = await sql(`INSERT INTO activity_logs (workspace_id, activity_type, summary) VALUES ($1, 'agent_log', 'seed') RETURNING id`, [activityWs.id]);
    cursorId = row.id;
    written.push(parent.id, patchWs.id, activityWs.id, registerWs.id, heartbeatWs.id, a2aTarget.id, delegateWs.id);
  });

  // GET /workspaces (admin) lists every live workspace's agent_card, and other test files list
  // them too: a hostile card stored here must not outlive the run that checks it, and nothing
  // written here may stay listed after the file. (Only matters while reads can still break.)
  const calmAgentCard = () => sql(`UPDATE workspaces SET agent_card = '{"name":"hostile-agent"}'::jsonb WHERE id = $1`, [registerWs.id]);
  afterAll(async () => {
    if (written.length > 0) await sql(`UPDATE workspaces SET status = 'removed' WHERE id = ANY($1::uuid[])`, [written]);
  });

  it('POST /workspaces (admin)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    // Its own tag: rows found by it can only come from this property.
    const createTag = `${tag}c`;
    const base = () => ({
      name: `${createTag}-create`,
      role: `${createTag} role`,
      tier: 2,
      model: `${createTag}-model`,
      runtime: 'langgraph',
      external: true,
      url: loopback('/agent/echo/hostile-create'),
      parent_id: parent.id,
      budget_limit: 1000,
      max_concurrent_tasks: 2,
      delivery_mode: 'push',
      workspace_dir: `/tmp/${createTag}`,
      workspace_access: 'read_only',
      secrets: { API_KEY: 'value', OTHER_KEY: 'other' },
    });
    const fields = paths(
      [],
      'name',
      'role',
      'tier',
      'model',
      'runtime',
      'external',
      'url',
      'parent_id',
      'budget_limit',
      'max_concurrent_tasks',
      'delivery_mode',
      'workspace_dir',
      'workspace_access',
      'secrets',
      ['secrets', 'API_KEY'],
    );
    // The tag must survive in at least one column so a row written despite a 4xx is found.
    const tagged = paths('name', 'role', 'model', 'workspace_dir');
    await fc.assert(
      fc.asyncProperty(substitutions(base(), fields, { keepOne: tagged }), async (subs: Sub[]) => {
        await exercise(
          'POST /workspaces',
          describeSubs(subs),
          { ids: [parent.id], workspaceTag: createTag },
          () => send('POST', '/workspaces', { token: ADMIN, raw: renderBody(base(), subs) }),
          (r) => {
            const id = (r.json as { id?: string } | undefined)?.id;
            if (id) written.push(id);
            return id ? [id] : [];
          },
        );
      }),
      params,
    );
  });

  it('PATCH /workspaces/:id (admin and own token)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const base = () => ({
      name: `${tag}-patched`,
      role: 'patched role',
      tier: 2,
      runtime: 'external',
      parent_id: parent.id,
      workspace_dir: `/tmp/${tag}-patched`,
      max_concurrent_tasks: 2,
    });
    const fields = paths([], 'name', 'role', 'tier', 'runtime', 'parent_id', 'workspace_dir', 'max_concurrent_tasks');
    await fc.assert(
      fc.asyncProperty(substitutions(base(), fields), auth, async (subs, who) => {
        await exercise(`PATCH /workspaces/:id as ${who}`, describeSubs(subs), { ids: [patchWs.id, parent.id] }, () =>
          send('PATCH', `/workspaces/${patchWs.id}`, { token: tokenFor(who, patchWs), raw: renderBody(base(), subs) }),
        );
      }),
      params,
    );
  });

  it('GET /workspaces/:id/activity (query params)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const names = ['type', 'source', 'limit', 'since_secs', 'since_id'];
    const baseValue: Record<string, string> = { type: 'agent_log', source: 'agent', limit: '5', since_secs: '3600', since_id: cursorId };
    await fc.assert(
      fc.asyncProperty(querySubstitutions(names), auth, async (subs, who) => {
        const query = names
          .map((p) => subs.find((s) => s.param === p)?.value.render(p) ?? `${p}=${encodeURIComponent(baseValue[p]!)}`)
          .join('&');
        const label = subs.map((s) => `${s.param}=${s.value.cls}`).join(', ');
        await exercise(`GET /workspaces/:id/activity as ${who}`, label, { ids: [activityWs.id] }, () =>
          send('GET', `/workspaces/${activityWs.id}/activity?${query}`, { token: tokenFor(who, activityWs) }),
        );
      }),
      params,
    );
  });

  it('POST /workspaces/:id/activity (own token and admin)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    // request_body wins over metadata, so metadata is only stored (and exercised) without it.
    const base = (withRequestBody: boolean) => ({
      activity_type: 'agent_log',
      method: 'tools/call',
      summary: 'did a thing',
      source_id: activityWs.id,
      target_id: parent.id,
      status: 'ok',
      error_detail: 'none',
      duration_ms: 12,
      ...(withRequestBody ? { request_body: { text: 'hello', nested: { k: 'v' } } } : {}),
      response_body: { ok: true },
      metadata: { k: 'v', list: [1, 2] },
      tool_trace: [{ tool: 'search', input: 'q' }],
    });
    const fields = paths(
      [],
      'activity_type',
      'method',
      'summary',
      'source_id',
      'target_id',
      'status',
      'error_detail',
      'duration_ms',
      'request_body',
      ['request_body', 'text'],
      ['request_body', 'nested'],
      'response_body',
      'metadata',
      ['metadata', 'k'],
      'tool_trace',
      ['tool_trace', 0, 'input'],
    );
    await fc.assert(
      fc.asyncProperty(substitutions(base(true), fields), auth, async (subs, who) => {
        const body = base(subs.some((s) => s.path[0] === 'request_body'));
        await exercise(`POST /workspaces/:id/activity as ${who}`, describeSubs(subs), { ids: [activityWs.id, parent.id] }, () =>
          send('POST', `/workspaces/${activityWs.id}/activity`, { token: tokenFor(who, activityWs), raw: renderBody(body, subs) }),
        );
      }),
      params,
    );
  });

  it('POST /registry/register (own token)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const base = () => ({
      id: registerWs.id,
      url: loopback('/agent/echo/hostile-register'),
      agent_card: { name: 'hostile-agent', version: '1.0.0', skills: [{ id: 'echo', name: 'Echo' }] },
      delivery_mode: 'poll',
    });
    const fields = paths([], 'id', 'url', 'agent_card', ['agent_card', 'name'], ['agent_card', 'skills'], 'delivery_mode');
    await fc.assert(
      fc.asyncProperty(substitutions(base(), fields), async (subs) => {
        try {
          await exercise('POST /registry/register', describeSubs(subs), { ids: [registerWs.id] }, () =>
            send('POST', '/registry/register', { token: registerWs.token, raw: renderBody(base(), subs) }),
          );
        } finally {
          await calmAgentCard();
        }
      }),
      params,
    );
  });

  it('POST /registry/heartbeat (own token)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const base = () => ({
      workspace_id: heartbeatWs.id,
      error_rate: 0.01,
      sample_error: 'none',
      active_tasks: 1,
      uptime_seconds: 120,
      current_task: 'working',
      monthly_spend: 10,
      runtime_state: '',
      runtime_metadata: { capabilities: { status_mgmt: false, session: false }, idle_timeout_seconds: 600 },
    });
    const fields = paths(
      [],
      'workspace_id',
      'error_rate',
      'sample_error',
      'active_tasks',
      'uptime_seconds',
      'current_task',
      'monthly_spend',
      'runtime_state',
      'runtime_metadata',
      ['runtime_metadata', 'capabilities'],
      ['runtime_metadata', 'capabilities', 'status_mgmt'],
      ['runtime_metadata', 'idle_timeout_seconds'],
    );
    await fc.assert(
      fc.asyncProperty(substitutions(base(), fields), async (subs) => {
        await exercise('POST /registry/heartbeat', describeSubs(subs), { ids: [heartbeatWs.id] }, () =>
          send('POST', '/registry/heartbeat', { token: heartbeatWs.token, raw: renderBody(base(), subs) }),
        );
      }),
      params,
    );
  });

  it('POST /workspaces/:id/a2a to a poll-mode target', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const base = () => ({
      jsonrpc: '2.0',
      id: 'req-1',
      method: 'message/send',
      params: {
        message: {
          role: 'user',
          messageId: 'msg-1',
          parts: [{ kind: 'text', text: 'hello' }],
          metadata: { k: 'v' },
        },
      },
    });
    const m = ['params', 'message'];
    const fields = paths(
      [],
      'jsonrpc',
      'id',
      'method',
      'params',
      m,
      [...m, 'role'],
      [...m, 'messageId'],
      [...m, 'parts'],
      [...m, 'parts', 0],
      [...m, 'parts', 0, 'kind'],
      [...m, 'parts', 0, 'text'],
      [...m, 'metadata'],
      [...m, 'metadata', 'k'],
    );
    await fc.assert(
      fc.asyncProperty(substitutions(base(), fields), async (subs) => {
        await exercise('POST /workspaces/:id/a2a (poll)', describeSubs(subs), { ids: [a2aTarget.id] }, () =>
          send('POST', `/workspaces/${a2aTarget.id}/a2a`, { token: ADMIN, raw: renderBody(base(), subs) }),
        );
      }),
      params,
    );
  });

  it('POST /workspaces/:id/delegate (own token and admin)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const base = () => ({ target_id: a2aTarget.id, task: 'look into it', idempotency_key: `${tag}-key` });
    const fields = paths([], 'target_id', 'task', 'idempotency_key');
    // A delegation is sent in the background: wait until it has settled, so its inbox row cannot
    // land inside the next request's before/after snapshot.
    const settled = (id: string) =>
      waitFor(async () => ['queued', 'completed', 'failed'].includes((await sql('SELECT status FROM delegations WHERE id = $1', [id]))[0]?.status));
    await fc.assert(
      fc.asyncProperty(substitutions(base(), fields), auth, async (subs, who) => {
        await exercise(`POST /workspaces/:id/delegate as ${who}`, describeSubs(subs), { ids: [delegateWs.id, a2aTarget.id] }, async () => {
          const reply = await send('POST', `/workspaces/${delegateWs.id}/delegate`, { token: tokenFor(who, delegateWs), raw: renderBody(base(), subs) });
          const id = (reply.json as { delegation_id?: string } | undefined)?.delegation_id;
          if (reply.status === 202 && id) await settled(id);
          return reply;
        });
      }),
      params,
    );
  });

  it('POST /org/tokens (admin)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    // No workspace is touched; a token written despite a 4xx is found by the marker in its name.
    await fc.assert(
      fc.asyncProperty(substitutions({ name: `${tag}-token` }, paths([], 'name')), async (subs) => {
        await exercise('POST /org/tokens', describeSubs(subs), { ids: [], orgTokenTag: MARKER }, () =>
          send('POST', '/org/tokens', { token: ADMIN, raw: renderBody({ name: `${tag}-token` }, subs) }),
        );
      }),
      params,
    );
  });

  it('read routes still answer < 500 after the hostile writes', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const problems: string[] = [];
    // Whatever the properties happened to store, make sure the deepest values were offered to
    // every route that stores free-form JSON (accepting or refusing them is the route's call).
    const deep = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000);
    const message = (metadata: string) =>
      `{"jsonrpc":"2.0","id":"r","method":"message/send","params":{"message":{"role":"user","messageId":"m","parts":[{"kind":"text","text":"x"}],"metadata":${metadata}}}}`;
    const offers: [string, () => Promise<Reply>][] = [
      ['POST /workspaces/:id/activity request_body=deep-object(10000)', () =>
        send('POST', `/workspaces/${activityWs.id}/activity`, { token: activityWs.token, raw: `{"activity_type":"agent_log","request_body":${deep}}` })],
      ['POST /workspaces/:id/a2a params.message.metadata=deep-object(10000)', () =>
        send('POST', `/workspaces/${a2aTarget.id}/a2a`, { token: ADMIN, raw: message(deep) })],
      ['POST /registry/register agent_card.name=deep-object(10000)', () =>
        send('POST', '/registry/register', { token: registerWs.token, raw: `{"id":"${registerWs.id}","delivery_mode":"poll","agent_card":{"name":${deep}}}` })],
    ];
    try {
      for (const [label, offer] of offers) {
        const r = await offer();
        if (r.status >= 500) problems.push(`${label} → ${r.status} ${excerpt(r.text, 200)}`);
      }
      const list = await send('GET', '/workspaces', { token: ADMIN });
      if (list.status >= 500 || list.json === undefined) problems.push(`GET /workspaces → ${list.status} ${excerpt(list.text, 200)}`);
      for (const id of new Set(written)) problems.push(...(await readProblems(id, 500)));
    } finally {
      await calmAgentCard();
    }
    if (problems.length > 0) throw new Error(problems.join('\n'));
  });
});
