// The proxy's per-isolate context cache (src/a2a/context-cache.ts): a warm cache answers with no
// round trip before dispatch; writes made through this isolate take effect at once; writes made
// elsewhere (here: SQL that bypasses the query modules) within CONTEXT_TTL_MS. The test Worker is
// one isolate, so the module's test hooks see the same cache the requests use.
import { env } from 'cloudflare:test';
import { afterEach, describe, expect, it } from 'vitest';
import { CONTEXT_TTL_MS, contextCacheForTests, forgetContexts } from '../../src/a2a/context-cache';
import { ADMIN, call, callJson, createWorkspace, loopback, received, registeredAgent, sqlElsewhere, a2aMessage, uniq } from '../support/api';

const message = a2aMessage;
const a2a = (targetId: string, token: string | undefined, headers: Record<string, string> = {}) =>
  callJson('POST', `/workspaces/${targetId}/a2a`, { token, body: message(), headers });
const loads = contextCacheForTests.loads;
/** Just past the bound, measured on the cache's own clock. */
const pastTtl = () => contextCacheForTests.advanceClock(CONTEXT_TTL_MS + 1);

async function pair() {
  const name = uniq();
  const caller = await registeredAgent({ mode: 'poll' });
  const target = await registeredAgent({ url: loopback(`/agent/echo/${name}`) });
  return { caller, target, name };
}

/** Sends once to fill the cache and checks the next identical call needs no context query. */
async function warm(targetId: string, token: string) {
  expect((await a2a(targetId, token)).status).toBe(200);
  const before = loads();
  expect((await a2a(targetId, token)).status).toBe(200);
  expect(loads()).toBe(before);
}

async function tokenIdOf(workspaceId: string, token: string): Promise<string> {
  const listed = await callJson('GET', `/workspaces/${workspaceId}/tokens`, { token });
  expect(listed.body.tokens).toHaveLength(1);
  return listed.body.tokens[0].id;
}

afterEach(() => {
  contextCacheForTests.limitEntries(undefined);
  contextCacheForTests.forgetAll();
});

describe('warm cache', () => {
  it('a repeated call needs no context query; a different bearer, caller header or target is a separate entry', async () => {
    const { caller, target, name } = await pair();
    const other = await registeredAgent({ mode: 'poll' });
    const first = loads();
    expect((await a2a(target.id, caller.token)).status).toBe(200);
    expect(loads()).toBe(first + 1);
    for (let i = 0; i < 5; i++) expect((await a2a(target.id, caller.token)).status).toBe(200);
    expect(loads()).toBe(first + 1);
    expect((await a2a(target.id, other.token)).status).toBe(200);
    expect((await a2a(target.id, caller.token, { 'X-Workspace-ID': caller.id })).status).toBe(200);
    expect((await a2a(target.id, ADMIN)).status).toBe(200);
    expect(loads()).toBe(first + 4);
    expect(await received(name)).toHaveLength(9);
  });

  it('a cached token answers only for its own hash: another bearer naming the same caller is still refused', async () => {
    const { caller, target } = await pair();
    await warm(target.id, caller.token);
    const intruder = await registeredAgent({ mode: 'poll' });
    expect(await a2a(target.id, intruder.token, { 'X-Workspace-ID': caller.id })).toMatchObject({ status: 401, body: { error: 'invalid caller auth token' } });
  });

  it('the entry expires after CONTEXT_TTL_MS', async () => {
    const { caller, target } = await pair();
    await warm(target.id, caller.token);
    const before = loads();
    pastTtl();
    expect((await a2a(target.id, caller.token)).status).toBe(200);
    expect(loads()).toBe(before + 1);
  });

  it('refusals are not cached: an unknown bearer is looked up on every call', async () => {
    const { caller, target } = await pair();
    await sqlElsewhere('UPDATE workspace_auth_tokens SET revoked_at = now() WHERE workspace_id = $1', [caller.id]);
    const before = loads();
    expect((await a2a(target.id, caller.token)).status).toBe(401);
    expect((await a2a(target.id, caller.token)).status).toBe(401);
    expect(loads()).toBe(before + 2);
    expect((await a2a(crypto.randomUUID(), ADMIN)).status).toBe(404);
    expect((await a2a(crypto.randomUUID(), ADMIN)).status).toBe(404);
    expect(loads()).toBe(before + 4);
  });

  it('the cache is bounded: past the limit the least recently used entry goes first', async () => {
    const { caller, target } = await pair();
    const other = await registeredAgent({ mode: 'poll' });
    contextCacheForTests.limitEntries(2);
    await warm(target.id, caller.token);
    await warm(target.id, other.token);
    // Touch the first so the second is now the least recently used.
    expect((await a2a(target.id, caller.token)).status).toBe(200);
    expect((await a2a(target.id, ADMIN)).status).toBe(200);
    expect(contextCacheForTests.size()).toBe(2);
    const before = loads();
    expect((await a2a(target.id, caller.token)).status).toBe(200);
    expect(loads()).toBe(before);
    expect((await a2a(target.id, other.token)).status).toBe(200);
    expect(loads()).toBe(before + 1);
  });

  it('a load that overlaps an invalidation is not kept (it may have read the row before the write)', async () => {
    const { RequestScope } = await import('../../src/lib/request-scope');
    const { cachedProxyContext } = await import('../../src/a2a/context-cache');
    const { caller, target } = await pair();
    const scope = new RequestScope(env as never);
    const key = { targetId: target.id, headerCaller: caller.id, workspaceTokenHash: null, orgTokenHash: null };
    try {
      const before = loads();
      const loading = cachedProxyContext(scope, key);
      forgetContexts({ workspaceIds: [target.id] });
      await loading;
      await cachedProxyContext(scope, key);
      expect(loads()).toBe(before + 2);
      await cachedProxyContext(scope, key);
      expect(loads()).toBe(before + 2);
    } finally {
      await scope.close();
    }
  });
});

describe('revocation', () => {
  it('a token revoked through the API is refused at once by this isolate', async () => {
    const { caller, target, name } = await pair();
    await warm(target.id, caller.token);
    const tokenId = await tokenIdOf(caller.id, caller.token);
    expect((await call('DELETE', `/workspaces/${caller.id}/tokens/${tokenId}`, { token: ADMIN })).status).toBe(200);
    expect(await a2a(target.id, caller.token)).toMatchObject({ status: 401, body: { error: 'invalid auth token' } });
    expect(await received(name)).toHaveLength(2);
  });

  it('an org token revoked through the API is refused at once', async () => {
    const { target } = await pair();
    const minted = await callJson('POST', '/org/tokens', { token: ADMIN, body: { name: `org-${uniq()}` } });
    expect(minted.status).toBe(201);
    await warm(target.id, minted.body.auth_token);
    expect((await call('DELETE', `/org/tokens/${minted.body.id}`, { token: ADMIN })).status).toBe(200);
    expect((await a2a(target.id, minted.body.auth_token)).status).toBe(401);
  });

  it("deleting the caller's workspace refuses its token at once", async () => {
    const { caller, target } = await pair();
    await warm(target.id, caller.token);
    expect((await call('DELETE', `/workspaces/${caller.id}`, { token: ADMIN })).status).toBe(200);
    expect((await a2a(target.id, caller.token)).status).toBe(401);
  });

  it("deleting the target answers 404 at once", async () => {
    const { caller, target } = await pair();
    await warm(target.id, caller.token);
    expect((await call('DELETE', `/workspaces/${target.id}`, { token: ADMIN })).status).toBe(200);
    expect((await a2a(target.id, caller.token)).status).toBe(404);
  });

  it('a revocation made elsewhere (another isolate, by hand) is refused within CONTEXT_TTL_MS', async () => {
    const { caller, target, name } = await pair();
    await warm(target.id, caller.token);
    await sqlElsewhere('UPDATE workspace_auth_tokens SET revoked_at = now() WHERE workspace_id = $1', [caller.id]);
    // Inside the bound this isolate may still answer from what it read: that is the documented staleness.
    contextCacheForTests.advanceClock(CONTEXT_TTL_MS - 1_000);
    expect((await a2a(target.id, caller.token)).status).toBe(200);
    contextCacheForTests.advanceClock(1_001);
    expect(await a2a(target.id, caller.token)).toMatchObject({ status: 401, body: { error: 'invalid auth token' } });
    expect(await received(name)).toHaveLength(3);
  });
});

describe('budget, routing and the tree', () => {
  it('a budget change made elsewhere is enforced within CONTEXT_TTL_MS', async () => {
    const { caller, target } = await pair();
    await warm(target.id, caller.token);
    await sqlElsewhere('UPDATE workspaces SET budget_limit = 100, monthly_spend = 100 WHERE id = $1', [target.id]);
    pastTtl();
    expect(await a2a(target.id, caller.token)).toMatchObject({ status: 402, body: { error: 'workspace budget limit exceeded' } });
    await sqlElsewhere('UPDATE workspaces SET monthly_spend = 99 WHERE id = $1', [target.id]);
    pastTtl();
    expect((await a2a(target.id, caller.token)).status).toBe(200);
  });

  it('spend reported by heartbeat is enforced at once', async () => {
    const { caller, target } = await pair();
    await sqlElsewhere('UPDATE workspaces SET budget_limit = 100 WHERE id = $1', [target.id]);
    await warm(target.id, caller.token);
    expect((await call('POST', '/registry/heartbeat', { token: target.token, body: { workspace_id: target.id, monthly_spend: 150 } })).status).toBe(200);
    expect((await a2a(target.id, caller.token)).status).toBe(402);
  });

  it('register switching push → poll and a new URL take effect at once', async () => {
    const { caller, target, name } = await pair();
    await warm(target.id, caller.token);
    const moved = uniq();
    const reg = (body: Record<string, unknown>) => call('POST', '/registry/register', { token: target.token, body: { id: target.id, agent_card: { name: 'test-agent' }, ...body } });
    expect((await reg({ url: loopback(`/agent/echo/${moved}`) })).status).toBe(200);
    expect((await a2a(target.id, caller.token)).status).toBe(200);
    expect(await received(moved)).toHaveLength(1);
    expect((await reg({ delivery_mode: 'poll' })).status).toBe(200);
    expect(await a2a(target.id, caller.token)).toMatchObject({ status: 200, body: { status: 'queued', delivery_mode: 'poll' } });
    expect(await received(name)).toHaveLength(2);
    expect(await received(moved)).toHaveLength(1);
  });

  it("a move of a workspace in the caller's chain re-checks the hierarchy at once", async () => {
    const rootB = await createWorkspace();
    const name = uniq();
    const target = await registeredAgent({ url: loopback(`/agent/echo/${name}`) });
    const mid = await createWorkspace({ parent_id: target.id });
    const caller = await registeredAgent({ mode: 'poll', parentId: mid.id });
    // The target is the caller's grandparent (a direct line); the move cuts that line without
    // touching the caller's own row.
    await warm(target.id, caller.token);
    expect((await call('PATCH', `/workspaces/${mid.id}`, { token: ADMIN, body: { parent_id: rootB.id } })).status).toBe(200);
    expect(await a2a(target.id, caller.token)).toMatchObject({ status: 403 });
    expect(await received(name)).toHaveLength(2);
  });
});
