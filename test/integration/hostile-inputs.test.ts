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
// time (and into 2–4 fields at once in about a quarter of the runs). Query parameters, path ids
// and caller headers (X-Workspace-ID, X-Source-Workspace-Id) get the same classes, plus values
// that only make sense there (id spellings, timestamps at Postgres's limits, reserved prefixes).
// Some routes add a rule of their own: a caller header naming anyone but the bearer is never
// answered, another workspace's token is never revoked, a wildcard in `q` matches only itself.
import fc from 'fast-check';
import { LAST_ERROR_BYTES } from '../../src/routes/bootstrap';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { ADMIN, createWorkspace, loopback, registeredAgent, sql, waitFor } from '../support/api';
import {
  describeQuery,
  describeSubs,
  excerpt,
  headerValue,
  hostileHeaderValue,
  hostilePathSegment,
  hostileTimestamp,
  hostileValue,
  hv,
  MARKER,
  pctEncode,
  problemsOf,
  querySubstitutions,
  queryText,
  renderBody,
  renderQuery,
  send,
  substitutions,
  uuidVariants,
  type Path,
  type Reply,
  type Segment,
  type Sub,
} from '../support/hostile';

const NUM_RUNS = 60;
const PROPERTY_TIMEOUT_MS = 120_000;
const params = { numRuns: NUM_RUNS } satisfies fc.Parameters<unknown>;
/** The discovery, notify, token and feed-filter properties: fewer runs each, to keep the file well under a minute. */
const fewer = { numRuns: 30 } satisfies fc.Parameters<unknown>;

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
 * What else to check. `readBack`: the workspaces whose read routes must still answer after a 2xx
 * (default: the scope's). `check`: the route's own rules on any reply (e.g. "never a 2xx here").
 */
type Checks = { readBack?: (r: Reply) => string[]; check?: (r: Reply) => string[] | Promise<string[]> };

/**
 * Sends one hostile request and throws (failing the property) with the route, the substituted
 * fields and their value classes, the status and the offending body, if any rule is broken.
 */
async function exercise(route: string, label: string, scope: Scope, request: () => Promise<Reply>, { readBack = () => scope.ids, check }: Checks = {}) {
  const before = await snapshot(scope);
  const reply = await request();
  const problems = problemsOf(reply);
  if (check) problems.push(...(await check(reply)));
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
  // cardWs and discoverWs are siblings under peerParent, which no other property writes to or
  // under: the peers list then holds only workspaces whose names and roles are known.
  let peerParent: { id: string };
  let cardWs: Agent;
  let discoverWs: Agent;
  let notifyWs: Agent;
  let tokenWs: Agent;
  let otherTokenWs: Agent;
  /** A live token of otherTokenWs: revoking it through tokenWs's route must be a 404. */
  let otherTokenId: string;

  beforeAll(async () => {
    [parent, peerParent] = await Promise.all([createWorkspace({ external: true, name: `${tag}-parent` }), createWorkspace({ external: true, name: `${tag}-peers` })]);
    [patchWs, activityWs, registerWs, heartbeatWs, a2aTarget, delegateWs, cardWs, discoverWs, notifyWs, tokenWs, otherTokenWs] = await Promise.all([
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll', parentId: peerParent.id }),
      registeredAgent({ mode: 'poll', parentId: peerParent.id }),
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
      registeredAgent({ mode: 'poll' }),
    ]);
    [{ id: otherTokenId }] = await sql<{ id: string }>(`SELECT id FROM workspace_auth_tokens WHERE workspace_id = $1 AND revoked_at IS NULL LIMIT 1`, [otherTokenWs.id]) as [{ id: string }];
    const [row] = await sql(`INSERT INTO activity_logs (workspace_id, activity_type, summary) VALUES ($1, 'agent_log', 'seed') RETURNING id`, [activityWs.id]);
    cursorId = row.id;
    written.push(parent.id, patchWs.id, activityWs.id, registerWs.id, heartbeatWs.id, a2aTarget.id, delegateWs.id);
    written.push(peerParent.id, cardWs.id, discoverWs.id, notifyWs.id, tokenWs.id, otherTokenWs.id);
  });

  // GET /workspaces (admin) lists every live workspace's agent_card, and other test files list
  // them too: a hostile card stored here must not outlive the run that checks it, and nothing
  // written here may stay listed after the file. (Only matters while reads can still break.)
  const calmAgentCard = () => sql(`UPDATE workspaces SET agent_card = '{"name":"hostile-agent"}'::jsonb WHERE id = ANY($1::uuid[])`, [[registerWs.id, cardWs.id]]);
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
          {
            readBack: (r) => {
              const id = (r.json as { id?: string } | undefined)?.id;
              if (id) written.push(id);
              return id ? [id] : [];
            },
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
    const base: Record<string, string> = { type: 'agent_log', source: 'agent', limit: '5', since_secs: '3600', since_id: cursorId };
    await fc.assert(
      fc.asyncProperty(querySubstitutions(Object.keys(base)), auth, async (subs, who) => {
        await exercise(`GET /workspaces/:id/activity as ${who}`, describeQuery(subs), { ids: [activityWs.id] }, () =>
          send('GET', `/workspaces/${activityWs.id}/activity?${renderQuery(base, subs)}`, { token: tokenFor(who, activityWs) }),
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

  // ---------------------------------------------------------------------------------------------
  // Discovery, notify, workspace tokens, and the activity feed's peer/time/order filters.

  /** After a card is stored: the workspace, and the peers list and discovery that show it, still read. */
  const cardReadProblems = async () => {
    const problems = await readProblems(cardWs.id);
    for (const [path, token] of [
      [`/registry/${peerParent.id}/peers`, ADMIN],
      [`/registry/${discoverWs.id}/peers`, discoverWs.token],
      [`/registry/discover/${cardWs.id}`, discoverWs.token],
    ] as const) {
      const r = await send('GET', path, { token });
      if (r.status !== 200) problems.push(`read GET ${path} → ${r.status} ${excerpt(r.text, 200)}`);
    }
    return problems;
  };

  const tokenReadProblems = async (id: string) => {
    const r = await send('GET', `/workspaces/${id}/tokens?limit=200`, { token: ADMIN });
    return r.status === 200 ? [] : [`read GET /workspaces/:id/tokens → ${r.status} ${excerpt(r.text, 200)}`];
  };

  it('POST /registry/update-card (own token)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const base = () => ({
      workspace_id: cardWs.id,
      agent_card: {
        name: 'hostile-card',
        version: '1.0.0',
        url: 'http://agent.internal:8000/a2a',
        capabilities: { streaming: false },
        skills: [{ id: 'echo', name: 'Echo', description: 'echoes' }],
      },
    });
    const fields = paths(
      [],
      'workspace_id',
      'agent_card',
      ['agent_card', 'name'],
      ['agent_card', 'url'],
      ['agent_card', 'capabilities'],
      ['agent_card', 'skills'],
      ['agent_card', 'skills', 0, 'description'],
    );
    // Also near-miss spellings of its own id, and a sibling's id (the token is not the sibling's).
    const values = fc.oneof(
      { weight: 4, arbitrary: hostileValue },
      { weight: 1, arbitrary: fc.oneof(uuidVariants(cardWs.id), fc.constant(discoverWs.id)).map((v) => hv('id-variant', v)) },
    );
    await fc.assert(
      fc.asyncProperty(substitutions(base(), fields, { values }), async (subs) => {
        try {
          await exercise(
            'POST /registry/update-card',
            describeSubs(subs),
            { ids: [cardWs.id, discoverWs.id] },
            () => send('POST', '/registry/update-card', { token: cardWs.token, raw: renderBody(base(), subs) }),
            { readBack: () => [], check: (r) => (r.status < 400 ? cardReadProblems() : []) },
          );
        } finally {
          await calmAgentCard();
        }
      }),
      fewer,
    );
  });

  /** X-Workspace-ID / X-Source-Workspace-Id values: hostile text, reserved prefixes, other and own ids. */
  const callerHeader = (own: string, others: string[]) =>
    fc.oneof(
      { weight: 3, arbitrary: hostileHeaderValue },
      {
        weight: 2,
        arbitrary: fc.oneof(
          fc.constantFrom(own, ...others).map((value) => ({ cls: value === own ? 'own-id' : 'other-id', value })),
          fc
            .constantFrom('webhook:x', 'system:scheduler', 'test:1', 'channel:abc', `WEBHOOK:${own}`, ` system:${own}`)
            .map((value) => ({ cls: `reserved(${value.trim().split(':')[0]})`, value })),
          uuidVariants(own).map((v) => ({ cls: 'own-id-variant', value: headerValue(v) })),
        ),
      },
    );
  const callerHeaders = (own: string, others: string[]) =>
    fc
      .record({ named: fc.option(callerHeader(own, others), { nil: undefined }), source: fc.option(callerHeader(own, others), { nil: undefined }) })
      .map(({ named, source }) => ({
        headers: { ...(named ? { 'X-Workspace-ID': named.value } : {}), ...(source ? { 'X-Source-Workspace-Id': source.value } : {}) } as Record<string, string>,
        label: [named && `X-Workspace-ID=${named.cls}`, source && `X-Source-Workspace-Id=${source.cls}`].filter(Boolean).join(', ') || 'no caller headers',
      }));
  /** Caller headers a 2xx may come with: none, or `id` itself (fetch trims; case does not matter). */
  const namesOnly = (headers: Record<string, string>, id: string) => Object.values(headers).every((v) => ['', id].includes(v.trim().toLowerCase()));
  const pathSegment = (id: string): fc.Arbitrary<Segment> =>
    fc.oneof({ weight: 3, arbitrary: hostilePathSegment }, { weight: 1, arbitrary: uuidVariants(id).map((v) => ({ cls: 'id-variant', raw: pctEncode(v) })) });

  it('GET /registry/discover/:id (hostile ids and caller headers)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const request = fc.oneof(
      pathSegment(cardWs.id).map((seg) => ({ seg: seg.raw, headers: {} as Record<string, string>, label: `id=${seg.cls}` })),
      callerHeaders(discoverWs.id, [cardWs.id, peerParent.id, notifyWs.id]).map(({ headers, label }) => ({ seg: cardWs.id, headers, label })),
    );
    await fc.assert(
      fc.asyncProperty(request, auth, async ({ seg, headers, label }, who) => {
        await exercise(
          `GET /registry/discover/:id as ${who}`,
          label,
          { ids: [discoverWs.id, cardWs.id] },
          () => send('GET', `/registry/discover/${seg}`, { token: tokenFor(who, discoverWs), headers }),
          {
            readBack: () => [],
            // The bearer is the authority: a header naming anyone else is never answered.
            check: (r) => (r.status < 400 && who === 'own' && !namesOnly(headers, discoverWs.id) ? [`${r.status} for a caller header that is not the bearer's`] : []),
          },
        );
      }),
      fewer,
    );
  });

  it('GET /registry/:id/peers?q= (hostile q and caller headers)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    // Wildcards match themselves, and no peer's name or role holds one (nor the marker).
    const literal = fc
      .constantFrom('%', '_', '\\', '%_%', '\\%', `%${MARKER}%`)
      .map((v) => ({ ...queryText(`literal(${v.replace(MARKER, 'M')})`, v), literal: true }));
    const q = fc.oneof(querySubstitutions(['q']).map(([s]) => ({ ...s!.value, literal: false })), literal);
    const headers = fc.oneof(
      { weight: 2, arbitrary: fc.constant({ headers: {} as Record<string, string>, label: '' }) },
      { weight: 1, arbitrary: callerHeaders(discoverWs.id, [cardWs.id, notifyWs.id]) },
    );
    await fc.assert(
      fc.asyncProperty(q, headers, auth, async (value, h, who) => {
        await exercise(
          `GET /registry/:id/peers as ${who}`,
          [`q=${value.cls}`, h.label].filter(Boolean).join(', '),
          { ids: [discoverWs.id, cardWs.id, peerParent.id] },
          () => send('GET', `/registry/${discoverWs.id}/peers?${value.render('q')}`, { token: tokenFor(who, discoverWs), headers: h.headers }),
          {
            readBack: () => [],
            check: (r) => {
              if (r.status >= 400) return [];
              if (!namesOnly(h.headers, discoverWs.id)) return [`${r.status} for a caller header that is not the path's`];
              return value.literal && (r.json as unknown[]).length > 0 ? ['a literal q (wildcard or marker) matched peers'] : [];
            },
          },
        );
      }),
      fewer,
    );
  });

  it('POST /workspaces/:id/notify (own token and admin)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const base = () => ({
      message: 'the report is ready',
      attachments: [
        { uri: 'https://files.example.com/report.pdf', name: 'report.pdf', mimeType: 'application/pdf', size: 1024 },
        { uri: 'workspace:/workspace/.molecule/chat-uploads/notes.txt', name: 'notes.txt' },
      ],
    });
    const a = (i: number, ...rest: string[]): Path => ['attachments', i, ...rest];
    const fields = paths([], 'message', 'attachments', a(0), a(0, 'uri'), a(0, 'name'), a(0, 'mimeType'), a(0, 'size'), a(1, 'uri'), a(1, 'name'));
    // Also URIs the canvas must never be handed, and attachment lists past the cap.
    const domain = fc.oneof(
      fc
        .constantFrom(
          'javascript:alert(1)',
          'JavaScript:alert(1)',
          'data:text/html,<script>x</script>',
          'file:///etc/passwd',
          '//evil.example/x',
          '/\\evil.example/x',
          'https://',
          'https:///x',
          `platform-pending:${notifyWs.id}/`,
          `platform-pending:${notifyWs.id}/a/b`,
          'https://exa mple.com/x',
          'https://example.com\\@evil.example',
          `https://${'a'.repeat(2100)}.example`,
        )
        .map((v) => hv('uri', v)),
      fc.constantFrom(33, 1000).map((n) => ({ cls: `attachments(${n})`, json: `[${Array(n).fill('{"uri":"/f","name":"f"}').join(',')}]` })),
    );
    const values = fc.oneof({ weight: 4, arbitrary: hostileValue }, { weight: 1, arbitrary: domain });
    await fc.assert(
      fc.asyncProperty(substitutions(base(), fields, { values }), auth, async (subs, who) => {
        await exercise(`POST /workspaces/:id/notify as ${who}`, describeSubs(subs), { ids: [notifyWs.id] }, () =>
          send('POST', `/workspaces/${notifyWs.id}/notify`, { token: tokenFor(who, notifyWs), raw: renderBody(base(), subs) }),
        );
      }),
      fewer,
    );
  });

  /** A minted token is revoked again at once: the workspace must stay under its live-token cap. */
  async function mintProperty(route: string, path: string, who: fc.Arbitrary<'admin' | 'own'>) {
    const base = () => ({ label: 'claude-channel' });
    await fc.assert(
      fc.asyncProperty(substitutions(base(), paths([], 'label')), who, async (subs, as) => {
        let minted: string | undefined;
        try {
          await exercise(
            `${route} as ${as}`,
            describeSubs(subs),
            { ids: [tokenWs.id] },
            async () => {
              const reply = await send('POST', path, { token: tokenFor(as, tokenWs), raw: renderBody(base(), subs) });
              minted = (reply.json as { id?: string } | undefined)?.id;
              return reply;
            },
            { readBack: () => [], check: (r) => (r.status < 400 ? tokenReadProblems(tokenWs.id) : []) },
          );
        } finally {
          if (minted) await sql(`UPDATE workspace_auth_tokens SET revoked_at = now() WHERE id = $1`, [minted]);
        }
      }),
      fewer,
    );
  }

  it('POST /workspaces/:id/tokens (own token and admin)', { timeout: PROPERTY_TIMEOUT_MS }, () =>
    mintProperty('POST /workspaces/:id/tokens', `/workspaces/${tokenWs.id}/tokens`, auth),
  );

  it('POST /admin/workspaces/:id/tokens (admin)', { timeout: PROPERTY_TIMEOUT_MS }, () =>
    mintProperty('POST /admin/workspaces/:id/tokens', `/admin/workspaces/${tokenWs.id}/tokens`, fc.constant('admin')),
  );

  it('POST /admin/workspaces/:id/bootstrap-failed (admin)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    // A workspace put back into provisioning before every report, so each accepted one writes and broadcasts.
    const ws = await createWorkspace({ external: true, name: `${tag}-bootstrap` });
    const base = () => ({ error: 'runtime crashed', log_tail: 'Traceback\n  line 1\n' });
    await fc.assert(
      fc.asyncProperty(substitutions(base(), paths([], 'error', 'log_tail')), async (subs) => {
        await sql(`UPDATE workspaces SET status = 'provisioning', last_sample_error = NULL WHERE id = $1`, [ws.id]);
        await exercise(
          'POST /admin/workspaces/:id/bootstrap-failed as admin',
          describeSubs(subs),
          { ids: [ws.id] },
          () => send('POST', `/admin/workspaces/${ws.id}/bootstrap-failed`, { token: ADMIN, raw: renderBody(base(), subs) }),
          {
            check: async (r) => {
              if (r.status >= 400) return [];
              const [row] = await sql<{ last_sample_error: string }>(`SELECT last_sample_error FROM workspaces WHERE id = $1`, [ws.id]);
              const text = row?.last_sample_error ?? '';
              const problems: string[] = [];
              if (new TextEncoder().encode(text).byteLength > LAST_ERROR_BYTES) problems.push('last_sample_error past its bound');
              if (/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/.test(text)) problems.push('a control character kept');
              return problems;
            },
          },
        );
      }),
      fewer,
    );
  });

  it('GET /workspaces/:id/tokens?limit=&offset=', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const base: Record<string, string> = { limit: '5', offset: '0' };
    await fc.assert(
      fc.asyncProperty(querySubstitutions(Object.keys(base)), auth, async (subs, who) => {
        await exercise(
          `GET /workspaces/:id/tokens as ${who}`,
          describeQuery(subs),
          { ids: [tokenWs.id] },
          () => send('GET', `/workspaces/${tokenWs.id}/tokens?${renderQuery(base, subs)}`, { token: tokenFor(who, tokenWs) }),
          { readBack: () => [] },
        );
      }),
      fewer,
    );
  });

  it('DELETE /workspaces/:id/tokens/:tokenId (hostile tokenId)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    // Every id offered is another workspace's token or nobody's: none may be revoked here.
    const segment = fc.oneof(pathSegment(otherTokenId), fc.constant({ cls: 'other-workspace-token', raw: otherTokenId }));
    await fc.assert(
      fc.asyncProperty(segment, auth, async (seg, who) => {
        await exercise(
          `DELETE /workspaces/:id/tokens/:tokenId as ${who}`,
          `tokenId=${seg.cls}`,
          { ids: [tokenWs.id, otherTokenWs.id] },
          () => send('DELETE', `/workspaces/${tokenWs.id}/tokens/${seg.raw}`, { token: tokenFor(who, tokenWs) }),
          { readBack: () => [], check: (r) => (r.status < 400 ? [`${r.status}: revoked a token that is not this workspace's`] : []) },
        );
      }),
      fewer,
    );
  });

  it('GET /workspaces/:id/activity (peer_id, before_ts, order)', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const base: Record<string, string> = { peer_id: parent.id, before_ts: new Date(Date.now() + 3_600_000).toISOString(), order: 'desc' };
    const extra = {
      peer_id: uuidVariants(parent.id).map((v) => queryText('id-variant', v)),
      before_ts: hostileTimestamp.map((v) => queryText(`timestamp(${v})`, v)),
      order: fc.constantFrom('ASC', 'Desc', ' asc', 'asc ', 'ascending', 'random', '1', '-1', 'asc,desc').map((v) => queryText(`order(${v})`, v)),
    };
    await fc.assert(
      fc.asyncProperty(querySubstitutions(Object.keys(base), extra), auth, async (subs, who) => {
        await exercise(
          `GET /workspaces/:id/activity as ${who}`,
          describeQuery(subs),
          { ids: [activityWs.id] },
          () => send('GET', `/workspaces/${activityWs.id}/activity?${renderQuery(base, subs)}`, { token: tokenFor(who, activityWs) }),
          { readBack: () => [] },
        );
      }),
      fewer,
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
      ['POST /registry/update-card agent_card.name=deep-object(10000)', () =>
        send('POST', '/registry/update-card', { token: cardWs.token, raw: `{"workspace_id":"${cardWs.id}","agent_card":{"name":${deep}}}` })],
    ];
    try {
      for (const [label, offer] of offers) {
        const r = await offer();
        if (r.status >= 500) problems.push(`${label} → ${r.status} ${excerpt(r.text, 200)}`);
      }
      const list = await send('GET', '/workspaces', { token: ADMIN });
      if (list.status >= 500 || list.json === undefined) problems.push(`GET /workspaces → ${list.status} ${excerpt(list.text, 200)}`);
      for (const id of new Set(written)) problems.push(...(await readProblems(id, 500)));
      problems.push(...(await cardReadProblems()), ...(await tokenReadProblems(tokenWs.id)));
    } finally {
      await calmAgentCard();
    }
    if (problems.length > 0) throw new Error(problems.join('\n'));
  });
});
