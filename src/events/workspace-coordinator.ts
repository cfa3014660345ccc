import { DurableObject } from 'cloudflare:workers';
import type { Bindings } from '../env';
import { drainQueue } from '../a2a/queue-drain';
import { runRestartCycle } from '../provisioning/restart';

/** Internal header from the Worker to the coordinator naming the subscriber's credential. */
export const SUBSCRIBER_CREDENTIAL_HEADER = 'X-Molecule-Subscriber';

/** The tag of a subscriber socket opened with a workspace token. */
export const workspaceTokenSubscriber = (tokenId: string) => `workspace-token:${tokenId}`;

type RestartState = { running: boolean; pending: boolean };
const RESTART_KEY = 'restart';
const DRAIN_KEY = 'drain';

/**
 * One per workspace. Holds the workspace's live-event subscribers (WebSocket hibernation API,
 * so idle canvases cost nothing) and the restart coalescer: N restart requests that overlap an
 * in-flight cycle collapse into exactly one follow-up cycle, so the last cycle always sees the
 * newest secrets and a burst never stacks restarts. Its alarm also runs the A2A queue drain, one
 * bounded run at a time.
 */
export class WorkspaceCoordinator extends DurableObject<Bindings> {
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get('Upgrade') !== 'websocket') return new Response('expected websocket', { status: 426 });
    const pair = new WebSocketPair();
    // Tagged with the credential that opened it (set by the Worker, never by the client), so
    // revoking that credential can close exactly its sockets.
    const credential = request.headers.get(SUBSCRIBER_CREDENTIAL_HEADER);
    this.ctx.acceptWebSocket(pair[1], credential ? [credential] : []);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /** A credential was revoked: its live feeds end now, not when the socket happens to close. */
  closeSubscribers(credential: string): number {
    const sockets = this.ctx.getWebSockets(credential);
    for (const socket of sockets) socket.close(1008, 'credential revoked');
    return sockets.length;
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

  /** Coalesced restart request; the cycle itself runs from the alarm, detached from the caller. */
  async requestRestart(workspaceId: string): Promise<{ coalesced: boolean }> {
    const state = await this.restartState();
    if (state.running) {
      await this.ctx.storage.put(RESTART_KEY, { ...state, pending: true, workspaceId });
      return { coalesced: true };
    }
    await this.ctx.storage.put(RESTART_KEY, { running: true, pending: false, workspaceId });
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now());
    return { coalesced: false };
  }

  /**
   * Asks for a queue drain; requests that arrive before it runs fold into it. One that arrives
   * while a run is under way sets the flag and the alarm again (a running alarm reads as unset),
   * so that run gets exactly one follow-up.
   */
  async requestDrain(workspaceId: string): Promise<void> {
    await this.ctx.storage.put(DRAIN_KEY, workspaceId);
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now());
  }

  override async alarm(): Promise<void> {
    const restart = await this.ctx.storage.get<RestartState & { workspaceId: string }>(RESTART_KEY);
    // Side by side: a restart must not wait minutes behind a drain run, and together they must
    // still fit one alarm's wall time.
    const settled = await Promise.allSettled([this.runDrain(), restart?.running ? this.runRestarts(restart.workspaceId) : undefined]);
    // Only storage failures get here (drain runs and restart cycles log their own); for those the
    // platform's bounded alarm retry is the right answer.
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * One bounded drain run. When it stopped on its budget, items may be left: a fresh alarm (with
   * a fresh wall-time and subrequest budget) continues without waiting for a heartbeat. The flag
   * is re-checked too, in case a request during the run did not set the alarm itself.
   */
  private async runDrain(): Promise<void> {
    const workspaceId = await this.ctx.storage.get<string>(DRAIN_KEY);
    if (!workspaceId) return;
    await this.ctx.storage.delete(DRAIN_KEY);
    const stop = await drainQueue(this.env, workspaceId);
    if (stop === 'budget' || (await this.ctx.storage.get<string>(DRAIN_KEY))) {
      await this.ctx.storage.put(DRAIN_KEY, workspaceId);
      await this.ctx.storage.setAlarm(Date.now());
    }
  }

  private async runRestarts(workspaceId: string): Promise<void> {
    try {
      for (;;) {
        await this.ctx.storage.put(RESTART_KEY, { running: true, pending: false, workspaceId });
        try {
          await runRestartCycle(this.env, workspaceId);
        } catch (err) {
          // Never rethrow: a failing cycle must not wedge the coalescer or retry-storm the alarm.
          console.error('restart cycle failed', workspaceId, err);
        }
        if (!(await this.restartState()).pending) break;
      }
    } finally {
      await this.ctx.storage.put(RESTART_KEY, { running: false, pending: false, workspaceId });
    }
  }

  /** Called when the workspace is deleted: its coordination state must not outlive it. */
  async forget(): Promise<void> {
    for (const socket of this.ctx.getWebSockets()) socket.close(1000, 'workspace removed');
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
  }

  private async restartState(): Promise<RestartState> {
    return (await this.ctx.storage.get<RestartState>(RESTART_KEY)) ?? { running: false, pending: false };
  }
}
