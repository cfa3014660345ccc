// The tenant event hub (src/events/hub.ts) at scale and at the edges of a socket's life: one refresh
// for many workspace subscribers costs one round trip (a Durable Object call has a subrequest
// budget), and a socket whose credential is revoked while it is being opened never stays open.
import { env, runInDurableObject } from 'cloudflare:test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { coordinatorOf, SUBSCRIBER_CREDENTIAL_HEADER, subscriberHeaderValue } from '../../src/coordinator';
import { eventHub, HUB_SUBSCRIBER_HEADER, hubTag, type EventHub, type HubSubscriber } from '../../src/events/hub';
import { ADMIN, call, callJson, createWorkspace, sql, uniq, waitFor } from '../support/api';
import { subscribeEvents, subscribeHub } from '../support/events';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What this isolate sends to Neon's SQL-over-HTTP endpoint: one entry per HTTP request, its statements' texts. */
function watchSqlRequests() {
  const requests: string[][] = [];
  const real = globalThis.fetch;
  vi.spyOn(globalThis, 'fetch').mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    if (new URL(url).pathname === '/sql' && typeof init?.body === 'string') {
      const body = JSON.parse(init.body) as { query?: string; queries?: { query: string }[] };
      requests.push(body.queries ? body.queries.map((q) => q.query) : [body.query ?? '']);
    }
    return real(input as RequestInfo, init);
  });
  return requests;
}

afterEach(() => {
  vi.restoreAllMocks();
});

/** A synthetic event from each workspace, straight into the hub (as publishEvent's batches arrive). */
function probes(ids: string[], marker: string) {
  return ids.map((id) => {
    const message = { event: 'AGENT_MESSAGE', workspace_id: id, timestamp: new Date().toISOString(), payload: { message: marker } };
    return { event: message.event, workspace_id: id, data: JSON.stringify(message) };
  });
}

/** The hierarchy rule on a known tree: self, siblings (roots included), ancestors, descendants. */
function mayReach(parentOf: Map<string, string | null>, a: string, b: string): boolean {
  if (a === b || parentOf.get(a) === parentOf.get(b)) return true;
  const ancestors = (id: string) => {
    const out: string[] = [];
    for (let p = parentOf.get(id); p; p = parentOf.get(p)) out.push(p);
    return out;
  };
  return ancestors(a).includes(b) || ancestors(b).includes(a);
}

describe('EventHub refresh with many workspace subscribers', () => {
  it('60 workspace subscribers: one refresh is one round trip (two statements), and every reachable set is right after a tree move', async () => {
    // 20 roots, each with two children: 60 workspaces, one socket each.
    const parentOf = new Map<string, string | null>();
    const tokens = new Map<string, string>();
    for (let i = 0; i < 20; i += 1) {
      const root = await createWorkspace({ external: true });
      parentOf.set(root.id, null);
      tokens.set(root.id, root.token!);
      for (let j = 0; j < 2; j += 1) {
        const child = await createWorkspace({ external: true, parent_id: root.id });
        parentOf.set(child.id, root.id);
        tokens.set(child.id, child.token!);
      }
    }
    const ids = [...parentOf.keys()];
    const feeds = new Map<string, Awaited<ReturnType<typeof subscribeHub>>>();
    for (let i = 0; i < ids.length; i += 10) {
      const batch = ids.slice(i, i + 10);
      const opened = await Promise.all(batch.map((id) => subscribeHub(tokens.get(id)!)));
      batch.forEach((id, k) => feeds.set(id, opened[k]!));
    }

    // Move the first root's first child under the second root, and the second root under the third.
    const roots = ids.filter((id) => parentOf.get(id) === null);
    const moved = ids.find((id) => parentOf.get(id) === roots[0])!;
    for (const [id, parent] of [
      [moved, roots[1]!],
      [roots[1]!, roots[2]!],
    ] as const) {
      expect((await call('PATCH', `/workspaces/${id}`, { token: ADMIN, body: { parent_id: parent } })).status).toBe(200);
      parentOf.set(id, parent);
    }
    await sleep(300); // the creations' and moves' own deferred broadcasts settle

    const hub = eventHub(env);
    await hub.treeChanged();
    const requests = watchSqlRequests();
    const marker = `probe-${uniq()}`;
    expect(await hub.publish(probes(ids, marker))).toBeGreaterThan(0);
    const refreshes = requests.filter((statements) => statements.some((q) => q.includes('WITH RECURSIVE me')));
    // Before: one request per subscribed workspace (60) plus the token read.
    expect(refreshes).toHaveLength(1);
    expect(refreshes[0]).toHaveLength(2);
    vi.restoreAllMocks();

    for (const [viewer, feed] of feeds) {
      const want = ids.filter((source) => mayReach(parentOf, viewer, source)).sort();
      await waitFor(async () => feed.messages.filter((m) => m.payload?.message === marker).length >= want.length);
      await sleep(50);
      const got = feed.messages.filter((m) => m.payload?.message === marker).map((m) => m.workspace_id as string);
      expect(got.sort(), viewer).toEqual(want);
    }
    // Not vacuous: the move changed what the moved workspace and its old and new relatives see.
    expect(mayReach(parentOf, moved, roots[1]!)).toBe(true);
    expect(mayReach(parentOf, moved, roots[0]!)).toBe(false);
    for (const feed of feeds.values()) expect(feed.closeCode()).toBeUndefined();
    for (const feed of feeds.values()) feed.close();
  });

  it('a refresh closes exactly the sockets whose credentials died behind the API, in the same round trip', async () => {
    const a = await createWorkspace({ external: true });
    const b = await createWorkspace({ external: true });
    const [feedA, feedB] = await Promise.all([subscribeHub(a.token!), subscribeHub(b.token!)]);
    // Revoked without the API (so nothing closes it by tag): only the refresh can notice.
    await sql(`UPDATE workspace_auth_tokens SET revoked_at = now() WHERE workspace_id = $1`, [b.id]);
    const hub = eventHub(env);
    await hub.treeChanged();
    await hub.publish(probes([a.id], 'after-revoke'));
    await waitFor(async () => feedB.closeCode() === 1008);
    expect(feedA.closeCode()).toBeUndefined();
    await feedA.next((m) => m.payload?.message === 'after-revoke');
    feedA.close();
  });
});

/** A hub socket requested as the Worker does after its own credential check passed. */
const openHubSocket = (subscriber: HubSubscriber) =>
  eventHub(env).fetch(new Request('https://hub/connect', { headers: { Upgrade: 'websocket', [HUB_SUBSCRIBER_HEADER]: JSON.stringify(subscriber) } }));

async function openSockets(tag: string): Promise<number> {
  return runInDurableObject(eventHub(env), (_instance: EventHub, state) => state.getWebSockets(tag).filter((s) => s.readyState === WebSocket.OPEN).length);
}

describe('a credential revoked while its socket is being opened', () => {
  // The window: the Worker checked the credential, then the revoke (and its close-by-tag) ran, and
  // only then does the hub or coordinator accept the socket. Calling the Durable Object directly,
  // after the revoke, is that exact interleaving.
  it('the hub refuses a workspace token revoked after the Worker checked it (401, no socket left open)', async () => {
    const ws = await createWorkspace({ external: true });
    const extra = await callJson('POST', `/workspaces/${ws.id}/tokens`, { token: ADMIN, body: {} });
    expect(extra.status).toBe(201);
    const subscriber: HubSubscriber = { kind: 'workspace', tokenId: extra.body.id, workspaceId: ws.id };
    const live = await openHubSocket(subscriber);
    expect(live.status).toBe(101);
    live.webSocket!.accept();
    live.webSocket!.close();

    expect((await call('DELETE', `/workspaces/${ws.id}/tokens/${extra.body.id}`, { token: ADMIN })).status).toBe(200);
    const late = await openHubSocket(subscriber);
    expect(late.status).toBe(401);
    expect(late.webSocket).toBeNull();
    expect(await openSockets(hubTag.workspaceToken(extra.body.id))).toBe(0);
  });

  it('the hub refuses an org token revoked after the Worker checked it', async () => {
    const org = await callJson('POST', '/org/tokens', { token: ADMIN, body: { name: `late-${uniq()}` } });
    expect(org.status).toBe(201);
    expect((await call('DELETE', `/org/tokens/${org.body.id}`, { token: ADMIN })).status).toBe(200);
    const late = await openHubSocket({ kind: 'org', tokenId: org.body.id });
    expect(late.status).toBe(401);
    expect(await openSockets(hubTag.orgToken(org.body.id))).toBe(0);
  });

  it("the workspace's coordinator refuses a token revoked after the Worker checked it", async () => {
    const ws = await createWorkspace({ external: true });
    const extra = await callJson('POST', `/workspaces/${ws.id}/tokens`, { token: ADMIN, body: {} });
    const open = (tokenId: string) =>
      coordinatorOf(env, ws.id).fetch(new Request(`https://coordinator/events`, { headers: { Upgrade: 'websocket', [SUBSCRIBER_CREDENTIAL_HEADER]: subscriberHeaderValue({ kind: 'workspace', tokenId }) } }));
    const live = await open(extra.body.id);
    expect(live.status).toBe(101);
    live.webSocket!.accept();
    live.webSocket!.close();
    expect((await call('DELETE', `/workspaces/${ws.id}/tokens/${extra.body.id}`, { token: ADMIN })).status).toBe(200);
    const late = await open(extra.body.id);
    expect(late.status).toBe(401);
    expect(late.webSocket).toBeNull();
  });

  it('connections racing a revoke through the Worker all end closed, well inside the 30 s refresh bound', async () => {
    const ws = await createWorkspace({ external: true });
    const extra = await callJson('POST', `/workspaces/${ws.id}/tokens`, { token: ADMIN, body: {} });
    const token = extra.body.auth_token as string;
    const attempts = Array.from({ length: 12 }, (_, i) =>
      sleep(i * 5).then(async () => {
        const opened = await Promise.all([subscribeHub(token).catch(() => undefined), subscribeEvents(ws.id, token).catch(() => undefined)]);
        return opened;
      }),
    );
    await sleep(25);
    expect((await call('DELETE', `/workspaces/${ws.id}/tokens/${extra.body.id}`, { token: ADMIN })).status).toBe(200);
    const [hubFeeds, ownFeeds] = [(await Promise.all(attempts)).map((o) => o[0]), (await Promise.all(attempts)).map((o) => o[1])];
    // Every hub socket that opened is closed by the revoke, soon.
    await waitFor(async () => hubFeeds.every((f) => f === undefined || f.closeCode() === 1008), 3_000);
    expect(await openSockets(hubTag.workspaceToken(extra.body.id))).toBe(0);
    const ownOpen = await runInDurableObject(coordinatorOf(env, ws.id), (_i, state) =>
      state.getWebSockets(`workspace-token:${extra.body.id}`).filter((s) => s.readyState === WebSocket.OPEN).length,
    );
    expect(ownOpen).toBe(0);
    for (const f of ownFeeds) f?.close();
  });
});
