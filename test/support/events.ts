// A live subscription to GET /workspaces/:id/events (the canvas WebSocket), for asserting broadcasts.
import { exports } from 'cloudflare:workers';
import { BASE } from './api';

export async function subscribeEvents(workspaceId: string, token: string) {
  const res = await (exports as unknown as { default: Fetcher }).default.fetch(
    new Request(`${BASE}/workspaces/${workspaceId}/events`, { headers: { Upgrade: 'websocket', Authorization: `Bearer ${token}` } }),
  );
  if (res.status !== 101 || !res.webSocket) throw new Error(`events subscription failed: ${res.status}`);
  const socket = res.webSocket;
  socket.accept();
  const messages: any[] = [];
  socket.addEventListener('message', (e) => messages.push(JSON.parse(String(e.data))));
  /** The first message matching `match`, waiting up to `ms`. */
  async function next(match: (m: any) => boolean, ms = 10_000): Promise<any> {
    const end = Date.now() + ms;
    for (;;) {
      const found = messages.find(match);
      if (found) return found;
      if (Date.now() > end) throw new Error('event not received');
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return { messages, next, close: () => socket.close() };
}
