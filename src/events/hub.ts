import { DurableObject } from 'cloudflare:workers';
import { liveTokenIdsQuery } from '../auth/token-store';
import type { Bindings } from '../env';
import { RequestScope } from '../lib/request-scope';
import { reachablePairsQuery, reachableSets } from '../workspaces/queries';
import type { SerializedEvent } from './publish';
import { closeSockets } from './sockets';

/**
 * This deployment serves one tenant (one org), so its hub is one instance with this name. A
 * multi-tenant deployment would name each hub by its org id instead.
 */
export const TENANT_HUB = 'tenant';

/** Internal header from the Worker to the hub naming who a socket belongs to (never the client's). */
export const HUB_SUBSCRIBER_HEADER = 'X-Molecule-Hub-Subscriber';

const ORG_FEED_PREFIX = 'org-feed:';
/** Per revocation: one coordinator call each, well inside a request's subrequest budget. */
const ORG_FEEDS_PER_REVOKE = 500;

/** Who holds a hub socket: operators see everything; a workspace token sees what its workspace may reach. */
export type HubSubscriber = { kind: 'admin' } | { kind: 'org'; tokenId: string } | { kind: 'workspace'; tokenId: string; workspaceId: string };

/** Socket tags, so a revoked credential (or a removed workspace) closes exactly its sockets. */
export const hubTag = {
  workspaceToken: (tokenId: string) => `workspace-token:${tokenId}`,
  orgToken: (tokenId: string) => `org-token:${tokenId}`,
  workspace: (workspaceId: string) => `workspace:${workspaceId}`,
};

/**
 * The staleness bound: no event is filtered with a reachable set, or delivered on a credential,
 * checked longer ago than this. A move in the tree (which announces nothing) or a token revoked
 * behind the API's back therefore shows within this bound; revocations through the API and
 * workspace removals act at once.
 */
export const REACH_MAX_AGE_MS = 30_000;
/** A refresh that cannot finish in time (datastore down) keeps the previous sets and is retried. */
const REFRESH_TIMEOUT_MS = 5_000;
const REFRESH_RETRY_MS = 5_000;
/** Reads restarted because the tree kept moving under them, before a publish goes ahead anyway. */
const MAX_REFRESH_ROUNDS = 3;

/** Lifecycle events that may introduce a workspace no subscriber could reach a moment ago. */
const ARRIVALS = new Set(['WORKSPACE_PROVISIONING', 'WORKSPACE_AWAITING_AGENT', 'WORKSPACE_ONLINE', 'WORKSPACE_PROVISION_FAILED']);

export function eventHub(env: Pick<Bindings, 'EVENT_HUB'>) {
  return env.EVENT_HUB.getByName(TENANT_HUB);
}

/**
 * Tells the hub the tree changed, before the mover's response: an event published after it is
 * filtered with the new tree. A hub that cannot be told is logged (the staleness bound still holds).
 */
export async function announceTreeChange(env: Pick<Bindings, 'EVENT_HUB'>): Promise<void> {
  try {
    await eventHub(env).treeChanged();
  } catch (err) {
    console.error('event hub: tree change not announced', err);
  }
}

/**
 * The tenant's live-event hub: every event of every workspace arrives here once per batch and is
 * fanned out to the tenant's subscribers (GET /ws, GET /events/stream) over hibernatable
 * WebSockets, so idle canvases cost nothing. Sending never waits on a subscriber: `send` only
 * queues, and a socket that fails is closed, not retried. Publishers call from deferred tasks, so
 * even a slow hub never delays a response.
 */
export class EventHub extends DurableObject<Bindings> {
  /** Per subscribed workspace: the workspaces it may see. In memory: after hibernation it is read again before use. */
  private readonly reach = new Map<string, Set<string>>();
  private refreshedAt = 0;
  /** Bumped by every tree move: a read that started before the bump may predate the move. */
  private generation = 0;
  /** The generation the sets in `reach` were read at. */
  private readGeneration = 0;
  private refreshing: { generation: number; done: Promise<void> } | undefined;

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get('Upgrade') !== 'websocket') return new Response('expected websocket', { status: 426 });
    const subscriber = parseSubscriber(request.headers.get(HUB_SUBSCRIBER_HEADER));
    if (!subscriber) return new Response('unknown subscriber', { status: 400 });
    const pair = new WebSocketPair();
    // Tagged first, checked second. The Worker checked the credential before calling here; a revoke
    // committed since then is either seen by the check below or, committed after it, reaches this
    // socket through its tag (revocations close by tag after they commit). Either way it cannot
    // stay open until the next refresh.
    this.ctx.acceptWebSocket(pair[1], tagsOf(subscriber));
    pair[1].serializeAttachment(subscriber);
    const admitted = await this.admit(subscriber);
    if (admitted !== 'live') {
      closeQuietly(pair[1], admitted === 'revoked' ? 1008 : 1011, admitted === 'revoked' ? 'credential revoked' : 'datastore unavailable');
      return admitted === 'revoked' ? new Response('credential revoked', { status: 401 }) : new Response('datastore unavailable', { status: 503 });
    }
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /**
   * A new socket's credential, re-checked now that the socket is tagged, and (a workspace's first
   * socket) its reachable set: one round trip.
   */
  private async admit(subscriber: HubSubscriber): Promise<'live' | 'revoked' | 'unavailable'> {
    if (subscriber.kind === 'admin') return 'live';
    const workspaceIds = subscriber.kind === 'workspace' && !this.reach.has(subscriber.workspaceId) ? [subscriber.workspaceId] : [];
    const tokens = subscriber.kind === 'org' ? { workspace: [], org: [subscriber.tokenId] } : { workspace: [subscriber.tokenId], org: [] };
    const scope = new RequestScope(this.env);
    const generation = this.generation;
    try {
      const [live, pairs] = await oneRoundTrip(scope, [liveTokenIdsQuery(scope.db, tokens), reachablePairsQuery(scope.db, workspaceIds)] as const);
      if (live.rows.length === 0) return 'revoked';
      // Read before a tree move: left unset, so the next publish reads it again.
      if (generation === this.generation) for (const [id, reach] of reachableSets(workspaceIds, pairs.rows)) this.reach.set(id, reach);
      return 'live';
    } catch (err) {
      console.error('event hub: subscriber not admitted', err);
      return 'unavailable';
    } finally {
      await scope.close();
    }
  }

  /** A credential was revoked (or its workspace removed): its sockets end now, not at their next event. */
  closeSubscribers(tag: string): number {
    return closeSockets(this.ctx, tag, 1008, 'credential revoked');
  }

  /**
   * An org token opened a workspace's own feed (GET /workspaces/:id/events, served by that
   * workspace's coordinator). Org tokens reach every workspace, so on revocation nobody could tell
   * which coordinators hold their sockets: the tenant's hub keeps the list. Noted before the socket
   * is opened, so a revoke always finds it.
   */
  async noteOrgFeed(tokenId: string, workspaceId: string): Promise<void> {
    await this.ctx.storage.put(`${ORG_FEED_PREFIX}${tokenId}:${workspaceId}`, 1);
  }

  /** The workspaces whose feeds a revoked org token opened (forgotten as they are handed out). */
  async takeOrgFeeds(tokenId: string): Promise<string[]> {
    const prefix = `${ORG_FEED_PREFIX}${tokenId}:`;
    const keys = [...(await this.ctx.storage.list({ prefix, limit: ORG_FEEDS_PER_REVOKE })).keys()];
    await this.ctx.storage.delete(keys);
    return keys.map((k) => k.slice(prefix.length));
  }

  /**
   * A workspace moved in the tree (which announces no event): every reachable set may be wrong
   * now, so the next publish re-reads them before it filters anything. The staleness bound alone
   * would let a moved-away workspace's events reach its former relatives for up to 30 s.
   */
  treeChanged(): void {
    this.generation += 1;
    this.refreshedAt = 0;
  }

  /** One batch of events, in order; returns how many sends were queued. */
  async publish(messages: SerializedEvent[]): Promise<number> {
    // Nobody listening (the common case between canvas sessions): nothing to refresh or serialise.
    if (this.ctx.getWebSockets().length === 0) return 0;
    if (this.needsRefresh(messages)) await this.refresh();
    const subscribers = this.subscribers();
    let delivered = 0;
    for (const message of messages) {
      const data = message.data;
      for (const [socket, subscriber] of subscribers) {
        if (!this.maySee(subscriber, message.workspace_id)) continue;
        try {
          socket.send(data);
          delivered += 1;
        } catch {
          socket.close(1011, 'send failed');
        }
      }
      if (message.event === 'WORKSPACE_REMOVED') this.forgetWorkspace(message.workspace_id);
    }
    return delivered;
  }

  override webSocketMessage(): void {
    // Subscribers only listen; anything they send is ignored.
  }

  override webSocketClose(socket: WebSocket): void {
    // Complete the close handshake; the peer's code may be a reserved one (1005/1006) we cannot echo.
    socket.close(1000, 'closing');
  }

  private subscribers(): [WebSocket, HubSubscriber][] {
    return this.ctx.getWebSockets().map((socket) => [socket, socket.deserializeAttachment() as HubSubscriber]);
  }

  private maySee(subscriber: HubSubscriber, workspaceId: string): boolean {
    if (subscriber.kind !== 'workspace') return true;
    return subscriber.workspaceId === workspaceId || this.reach.get(subscriber.workspaceId)?.has(workspaceId) === true;
  }

  /**
   * Before filtering: when the sets or credentials are older than the bound, when a subscribed
   * workspace has no set (the hub woke from hibernation), or when a lifecycle event names a
   * workspace nobody reaches yet (most likely a new one, which its relatives must see arrive).
   */
  private needsRefresh(messages: SerializedEvent[]): boolean {
    const subscribers = this.subscribers();
    if (!subscribers.some(([, s]) => s.kind !== 'admin')) return false;
    if (Date.now() - this.refreshedAt > REACH_MAX_AGE_MS) return true;
    if (subscribers.some(([, s]) => s.kind === 'workspace' && !this.reach.has(s.workspaceId))) return true;
    return messages.some((m) => ARRIVALS.has(m.event) && ![...this.reach.values()].some((ids) => ids.has(m.workspace_id)));
  }

  /**
   * One refresh at a time; publishes arriving meanwhile wait for it, in arrival order. A read that
   * began before a tree move is not good enough: the publish waits for one that began after it.
   */
  private async refresh(): Promise<void> {
    for (let attempt = 0; attempt < MAX_REFRESH_ROUNDS; attempt += 1) {
      const generation = this.generation;
      if (this.refreshing?.generation !== generation) {
        const done: Promise<void> = this.readReach(generation).finally(() => {
          if (this.refreshing?.done === done) this.refreshing = undefined;
        });
        this.refreshing = { generation, done };
      }
      await this.refreshing.done;
      if (generation === this.generation) return;
    }
  }

  /**
   * Re-reads every subscribed workspace's reachable set and which credentials are still live, in
   * ONE round trip of two statements however many subscribers there are (a Durable Object call has
   * a subrequest budget: a statement per workspace would exhaust it, and then every refresh would
   * fail), and closes the sockets of dead credentials. On failure the old sets stay in use (unless
   * the tree moved since they were read) and the next publish after REFRESH_RETRY_MS tries again.
   */
  private async readReach(generation: number): Promise<void> {
    const subscribers = this.subscribers();
    const workspaceIds = [...new Set(subscribers.flatMap(([, s]) => (s.kind === 'workspace' ? [s.workspaceId] : [])))];
    const tokens = {
      workspace: subscribers.flatMap(([, s]) => (s.kind === 'workspace' ? [s.tokenId] : [])),
      org: subscribers.flatMap(([, s]) => (s.kind === 'org' ? [s.tokenId] : [])),
    };
    const scope = new RequestScope(this.env);
    try {
      const read = oneRoundTrip(scope, [liveTokenIdsQuery(scope.db, tokens), reachablePairsQuery(scope.db, workspaceIds)] as const);
      const [liveRows, pairs] = await withTimeout(read, REFRESH_TIMEOUT_MS);
      // The tree moved while this read ran: its sets may predate the move (the caller reads again).
      if (generation !== this.generation) return;
      for (const [id, reach] of reachableSets(workspaceIds, pairs.rows)) this.reach.set(id, reach);
      // Sets of workspaces nobody subscribes for any more go; one read for a socket that connected
      // meanwhile stays.
      const subscribed = new Set(this.subscribers().flatMap(([, s]) => (s.kind === 'workspace' ? [s.workspaceId] : [])));
      for (const id of this.reach.keys()) if (!subscribed.has(id)) this.reach.delete(id);
      const live = new Set(liveRows.rows.map((r) => r.id));
      for (const [socket, subscriber] of subscribers) {
        if (subscriber.kind !== 'admin' && !live.has(subscriber.tokenId)) closeQuietly(socket, 1008, 'credential revoked');
      }
      this.refreshedAt = Date.now();
      this.readGeneration = generation;
    } catch (err) {
      console.error('event hub: reachable sets not refreshed; keeping the previous ones', err);
      // After a tree move the previous sets are known to be wrong: until a read succeeds, each
      // workspace subscriber sees its own workspace only.
      if (generation !== this.readGeneration) for (const id of this.reach.keys()) this.reach.set(id, new Set());
      this.refreshedAt = Date.now() - REACH_MAX_AGE_MS + REFRESH_RETRY_MS;
    } finally {
      await scope.close();
    }
  }

  /** A removed workspace's tokens were revoked with it: its sockets close, and nobody reaches it any more. */
  private forgetWorkspace(workspaceId: string): void {
    closeSockets(this.ctx, hubTag.workspace(workspaceId), 1008, 'workspace removed');
    this.reach.delete(workspaceId);
    for (const ids of this.reach.values()) ids.delete(workspaceId);
  }
}

type QueryResult<Row> = { rows: Row[] };

/**
 * Lazy statements (drizzle `db.execute(...)`) sent as ONE Neon HTTP batch: one subrequest and one
 * transaction however many statements. `scope.db` is the HTTP driver for everything but
 * `transaction`, so its `batch` is there; the Db type (the Pool driver's) does not declare it.
 */
async function oneRoundTrip<Rows extends readonly unknown[]>(
  scope: RequestScope,
  queries: { readonly [K in keyof Rows]: PromiseLike<QueryResult<Rows[K]>> },
): Promise<{ [K in keyof Rows]: QueryResult<Rows[K]> }> {
  const db = scope.db as unknown as { batch(queries: readonly unknown[]): Promise<unknown[]> };
  return (await db.batch(queries)) as { [K in keyof Rows]: QueryResult<Rows[K]> };
}

/** A socket may already be closed (a revocation or a failed send got there first). */
function closeQuietly(socket: WebSocket, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // already closed
  }
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timed out')), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function tagsOf(subscriber: HubSubscriber): string[] {
  if (subscriber.kind === 'org') return [hubTag.orgToken(subscriber.tokenId)];
  if (subscriber.kind === 'workspace') return [hubTag.workspaceToken(subscriber.tokenId), hubTag.workspace(subscriber.workspaceId)];
  return [];
}

function parseSubscriber(header: string | null): HubSubscriber | undefined {
  if (!header) return undefined;
  try {
    const value = JSON.parse(header) as HubSubscriber;
    if (value.kind === 'admin') return { kind: 'admin' };
    if (value.kind === 'org' && typeof value.tokenId === 'string') return { kind: 'org', tokenId: value.tokenId };
    if (value.kind === 'workspace' && typeof value.tokenId === 'string' && typeof value.workspaceId === 'string') {
      return { kind: 'workspace', tokenId: value.tokenId, workspaceId: value.workspaceId };
    }
  } catch {
    // fall through: not a subscriber the Worker would have sent
  }
  return undefined;
}
