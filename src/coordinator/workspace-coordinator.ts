import { DurableObject } from 'cloudflare:workers';
import type { Bindings } from '../env';
import { drainQueue } from '../a2a/queue-drain';
import { runRestartCycle } from '../provisioning/restart';
import { deliverRestartContext, type RestartContext } from '../provisioning/restart-context';
import { RequestScope } from '../lib/request-scope';
import { orgTokenSubscriber, parseSubscriberHeader, SUBSCRIBER_CREDENTIAL_HEADER, workspaceTokenSubscriber, type CycleKind, type SubscriberCredential } from './index';
import { liveTokenIds } from '../auth/token-store';
import { forgetContexts } from '../a2a/context-cache';
import { publishEvent } from '../events/publish';
import { closeSockets } from '../events/sockets';
import { provisionerFor } from '../provisioning/provisioner';
import { markOfflineIfSilent } from '../workspaces/liveness';
import { dueTasks, nextWake, withDeadline, withoutTasks, withTask, type Schedule, type Task } from './schedule';

/** Coalescer state; absent = idle. `since` lets a cycle whose alarm died be recognised as stale. */
type RestartState = { running: boolean; pending: boolean; fresh: boolean; since: number };
/** The restart context waiting for the agent: sent once it is online, dropped at `deadline`. */
type PendingContext = { context: RestartContext; deadline: number; delayMs: number };

const KEYS = { schedule: 'schedule', restart: 'restart', context: 'context', livenessTtl: 'liveness-ttl' } as const;
/** A liveness check the datastore could not answer is tried again this much later. */
const LIVENESS_RETRY_MS = 30_000;
/** Longer than any alarm may run (15 minutes of wall time): a `running` flag this old is a dead run's. */
const STALE_RUN_MS = 16 * 60_000;
const CONTEXT_ONLINE_WAIT_MS = 30_000;
const CONTEXT_FIRST_POLL_MS = 500;
const CONTEXT_MAX_POLL_MS = 5_000;

/**
 * One per workspace, named by the workspace id (`this.ctx.id.name`). Three separate concerns:
 * - events: the live-event subscribers (WebSocket hibernation API, so idle canvases cost nothing);
 * - restart: the coalescer. N requests that overlap an in-flight cycle collapse into exactly one
 *   follow-up, so the last cycle sees the newest secrets and a burst never stacks restarts;
 * - drain: the A2A queue drain, one bounded run at a time;
 * - liveness: the agent's silence deadline, pushed forward by every register and heartbeat.
 * Timed work shares the one alarm through a small schedule (schedule.ts).
 */
export class WorkspaceCoordinator extends DurableObject<Bindings> {
  /** Set by forget(): work still running when the workspace was deleted must not write state back. */
  private forgotten = false;

  private get workspaceId(): string {
    const name = this.ctx.id.name;
    if (!name) throw new Error('coordinator addressed without a name');
    return name;
  }

  // ---- events ---------------------------------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get('Upgrade') !== 'websocket') return new Response('expected websocket', { status: 426 });
    const pair = new WebSocketPair();
    // Tagged with the token that opened it (named by the Worker, never by the client), so revoking
    // that token can close exactly its sockets. Tagged first, checked second: a revoke committed
    // after the Worker's check is either seen here or, committed after this check, reaches the
    // socket through its tag. Either way it cannot stay open.
    const credential = parseSubscriberHeader(request.headers.get(SUBSCRIBER_CREDENTIAL_HEADER));
    const tag = credential && (credential.kind === 'org' ? orgTokenSubscriber : workspaceTokenSubscriber)(credential.tokenId);
    this.ctx.acceptWebSocket(pair[1], tag ? [tag] : []);
    if (credential) {
      const live = await this.tokenIsLive(credential);
      if (live !== true) {
        try {
          pair[1].close(live === false ? 1008 : 1011, live === false ? 'credential revoked' : 'datastore unavailable');
        } catch {
          // a revocation closed it first
        }
        return live === false ? new Response('credential revoked', { status: 401 }) : new Response('datastore unavailable', { status: 503 });
      }
    }
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /** undefined: the datastore did not answer. */
  private async tokenIsLive({ kind, tokenId }: SubscriberCredential): Promise<boolean | undefined> {
    const scope = new RequestScope(this.env);
    try {
      return (await liveTokenIds(scope.db, { workspace: kind === 'workspace' ? [tokenId] : [], org: kind === 'org' ? [tokenId] : [] })).has(tokenId);
    } catch (err) {
      console.error('coordinator: subscriber token not checked', err);
      return undefined;
    } finally {
      await scope.close();
    }
  }

  /** A credential was revoked: its live feeds end now, not when the socket happens to close. */
  closeSubscribers(credential: string): number {
    return closeSockets(this.ctx, credential, 1008, 'credential revoked');
  }

  /** Fans a serialized event out to every subscriber; a dead socket is dropped, not retried. */
  broadcast(message: string): number {
    let delivered = 0;
    for (const socket of this.ctx.getWebSockets()) {
      try {
        socket.send(message);
        delivered += 1;
      } catch {
        socket.close(1011, 'send failed');
      }
    }
    return delivered;
  }

  /** Several serialized events, in order, in one call. */
  broadcastMany(messages: string[]): number {
    let delivered = 0;
    for (const message of messages) delivered += this.broadcast(message);
    return delivered;
  }

  override webSocketMessage(): void {
    // Subscribers only listen; anything they send is ignored.
  }

  override webSocketClose(socket: WebSocket): void {
    // Complete the close handshake; the peer's code may be a reserved one (1005/1006) we cannot echo.
    socket.close(1000, 'closing');
  }

  // ---- restart --------------------------------------------------------------------------------

  /**
   * Coalesced restart (or first provision) request; the cycle runs from the alarm, detached from
   * the caller. A request during a run sets `pending`: that run does exactly one more cycle.
   */
  async requestRestart(kind: CycleKind = 'restart'): Promise<{ coalesced: boolean }> {
    const state = await this.ctx.storage.get<RestartState>(KEYS.restart);
    if (state?.running && Date.now() - state.since < STALE_RUN_MS) {
      await this.put(KEYS.restart, { ...state, pending: true, fresh: false });
      return { coalesced: true };
    }
    await this.put(KEYS.restart, { running: true, pending: false, fresh: kind === 'provision', since: Date.now() } satisfies RestartState);
    await this.schedule('restart', Date.now());
    return { coalesced: false };
  }

  private async runRestarts(): Promise<void> {
    let state = await this.ctx.storage.get<RestartState>(KEYS.restart);
    if (!state?.running) return;
    try {
      for (;;) {
        await this.put(KEYS.restart, { ...state, pending: false, since: Date.now() });
        const context = await this.cycle(state.fresh);
        if (context) await this.awaitContext(context);
        state = await this.ctx.storage.get<RestartState>(KEYS.restart);
        if (!state?.pending || this.forgotten) break;
        state = { ...state, fresh: false };
      }
    } finally {
      if (!this.forgotten) await this.ctx.storage.delete(KEYS.restart);
    }
  }

  /** One cycle; never rethrows, so a failing cycle cannot wedge the coalescer or retry-storm the alarm. */
  private async cycle(fresh: boolean): Promise<RestartContext | undefined> {
    const scope = new RequestScope(this.env);
    try {
      return await runRestartCycle(scope, this.workspaceId, { fresh });
    } catch (err) {
      console.error('restart cycle failed', this.workspaceId, err);
      return undefined;
    } finally {
      await scope.close();
    }
  }

  // ---- restart context ------------------------------------------------------------------------

  /** After a restart: poll (backing off) until the agent is online, for at most 30 s. */
  private async awaitContext(context: RestartContext): Promise<void> {
    const now = Date.now();
    await this.put(KEYS.context, { context, deadline: now + CONTEXT_ONLINE_WAIT_MS, delayMs: CONTEXT_FIRST_POLL_MS } satisfies PendingContext);
    await this.schedule('context', now + CONTEXT_FIRST_POLL_MS);
  }

  private async runContext(): Promise<void> {
    const pending = await this.ctx.storage.get<PendingContext>(KEYS.context);
    if (!pending) return;
    const outcome = await deliverRestartContext(this.env, this.workspaceId, pending.context);
    if (outcome === 'waiting' && Date.now() < pending.deadline) {
      const delayMs = Math.min(pending.delayMs * 2, CONTEXT_MAX_POLL_MS);
      await this.put(KEYS.context, { ...pending, delayMs });
      await this.schedule('context', Math.min(Date.now() + delayMs, pending.deadline));
      return;
    }
    if (outcome === 'waiting') console.warn('restart context dropped: the agent did not come online in time', this.workspaceId);
    if (!this.forgotten) await this.ctx.storage.delete(KEYS.context);
  }

  // ---- drain ----------------------------------------------------------------------------------

  /** Asks for a queue drain; requests that arrive before it runs fold into it. */
  async requestDrain(): Promise<void> {
    await this.schedule('drain', Date.now());
  }

  /** One bounded run; stopped on its budget, it continues in a fresh alarm (fresh wall time and subrequests). */
  private async runDrain(): Promise<void> {
    const stop = await drainQueue(this.env, this.workspaceId);
    if (stop === 'budget') await this.schedule('drain', Date.now());
  }

  // ---- liveness -------------------------------------------------------------------------------

  /**
   * The agent was heard from (register, heartbeat): its deadline moves to `ttlSeconds` from now.
   * Nothing polls the datastore for silent agents: the deadline is this object's alarm, and the
   * datastore is read once, when it passes.
   */
  async noteAlive(ttlSeconds: number): Promise<void> {
    if (this.forgotten) return;
    await this.put(KEYS.livenessTtl, ttlSeconds);
    await this.setDeadline(Date.now() + ttlSeconds * 1000);
  }

  /**
   * The deadline passed. The datastore decides (a heartbeat whose deadline update was lost still
   * counts): silent → offline, WORKSPACE_OFFLINE, and a restart for a push agent we run; heard from
   * since → a new deadline; not online/degraded any more → nothing until the next register.
   */
  private async runLiveness(): Promise<void> {
    const ttl = await this.ctx.storage.get<number>(KEYS.livenessTtl);
    if (!ttl) return;
    const id = this.workspaceId;
    const scope = new RequestScope(this.env);
    try {
      const check = await markOfflineIfSilent(scope.db, id, ttl);
      if (check.kind === 'alive') await this.setDeadline(check.nextCheckAt);
      if (check.kind === 'offline') {
        forgetContexts({ workspaceIds: [id] });
        publishEvent(scope, 'WORKSPACE_OFFLINE', id, { reason: 'no heartbeat', silent_seconds: ttl });
        if (check.runtime !== 'external' && check.deliveryMode === 'push' && provisionerFor(this.env)) await this.requestRestart('restart');
      }
    } catch (err) {
      console.error('liveness check failed; retrying', id, err);
      await this.setDeadline(Date.now() + LIVENESS_RETRY_MS);
    } finally {
      await scope.close();
    }
  }

  private async setDeadline(at: number): Promise<void> {
    if (this.forgotten) return;
    const schedule = withDeadline(await this.readSchedule(), 'liveness', at);
    await this.writeSchedule(schedule);
    await this.arm(schedule);
  }

  // ---- the alarm ------------------------------------------------------------------------------

  override async alarm(): Promise<void> {
    const schedule = await this.readSchedule();
    const due = dueTasks(schedule, Date.now());
    // Claimed before running: a request made during the run schedules a fresh follow-up.
    await this.writeSchedule(withoutTasks(schedule, due));
    // Side by side: a restart must not wait minutes behind a drain run.
    const settled = await Promise.allSettled(due.map((task) => this.run(task)));
    await this.arm(await this.readSchedule());
    // Only storage failures get here (the tasks log their own); for those the platform's bounded
    // alarm retry is the right answer.
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private run(task: Task): Promise<void> {
    switch (task) {
      case 'restart':
        return this.runRestarts();
      case 'drain':
        return this.runDrain();
      case 'context':
        return this.runContext();
      case 'liveness':
        return this.runLiveness();
    }
  }

  private async schedule(task: Task, at: number): Promise<void> {
    if (this.forgotten) return;
    const schedule = withTask(await this.readSchedule(), task, at);
    await this.writeSchedule(schedule);
    await this.arm(schedule);
  }

  /** The alarm at the earliest due time (a running alarm reads as unset, so this also re-arms after a run). */
  private async arm(schedule: Schedule): Promise<void> {
    if (this.forgotten) return;
    const next = nextWake(schedule);
    if (next === undefined) return;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > next) await this.ctx.storage.setAlarm(next);
  }

  private async readSchedule(): Promise<Schedule> {
    return (await this.ctx.storage.get<Schedule>(KEYS.schedule)) ?? {};
  }

  private async writeSchedule(schedule: Schedule): Promise<void> {
    if (this.forgotten) return;
    if (nextWake(schedule) === undefined) await this.ctx.storage.delete(KEYS.schedule);
    else await this.ctx.storage.put(KEYS.schedule, schedule);
  }

  private async put(key: string, value: unknown): Promise<void> {
    if (!this.forgotten) await this.ctx.storage.put(key, value);
  }

  // ---- delete ---------------------------------------------------------------------------------

  /** The workspace was deleted: its subscribers, schedule and coalescer state must not outlive it. */
  async forget(): Promise<void> {
    this.forgotten = true;
    closeSockets(this.ctx, undefined, 1000, 'workspace removed');
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
  }

  /** What the coordinator holds, for tests and diagnostics: stored keys and the alarm. */
  async inspect(): Promise<{ keys: string[]; alarm: number | null }> {
    const keys = [...(await this.ctx.storage.list()).keys()];
    return { keys, alarm: await this.ctx.storage.getAlarm() };
  }
}
