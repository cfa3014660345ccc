// A live subscription to GET /workspaces/:id/events (the canvas WebSocket), for asserting broadcasts.
import { exports } from 'cloudflare:workers';
import { BASE } from './api';

/** The first item of `items` matching `match`, polling as items arrive, for at most `ms`. */
async function firstMatching<T>(items: T[], match: (item: T) => boolean, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const found = items.find(match);
    if (found) return found;
    if (Date.now() > end) throw new Error('event not received');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function subscribeEvents(workspaceId: string, token: string) {
  const res = await (exports as unknown as { default: Fetcher }).default.fetch(
    new Request(`${BASE}/workspaces/${workspaceId}/events`, { headers: { Upgrade: 'websocket', Authorization: `Bearer ${token}` } }),
  );
  if (res.status !== 101 || !res.webSocket) throw new Error(`events subscription failed: ${res.status}`);
  const socket = res.webSocket;
  socket.accept();
  const messages: any[] = [];
  let closeCode: number | undefined;
  socket.addEventListener('message', (e) => messages.push(JSON.parse(String(e.data))));
  socket.addEventListener('close', (e) => (closeCode = e.code));
  /** The first message matching `match`, waiting up to `ms`. */
  const next = (match: (m: any) => boolean, ms = 10_000): Promise<any> => firstMatching(messages, match, ms);
  return { messages, next, closeCode: () => closeCode, close: () => socket.close() };
}

/**
 * A live subscription to the tenant hub, GET /ws, as the canvas holds it: every message parsed
 * and stamped with its arrival time, and the close (code) observable.
 */
export async function subscribeHub(token: string) {
  const res = await (exports as unknown as { default: Fetcher }).default.fetch(
    new Request(`${BASE}/ws`, { headers: { Upgrade: 'websocket', Authorization: `Bearer ${token}` } }),
  );
  if (res.status !== 101 || !res.webSocket) throw new Error(`hub subscription failed: ${res.status}`);
  const socket = res.webSocket;
  socket.accept();
  const messages: any[] = [];
  const arrivals: number[] = [];
  let closeCode: number | undefined;
  socket.addEventListener('message', (e) => {
    arrivals.push(performance.now());
    messages.push(JSON.parse(String(e.data)));
  });
  socket.addEventListener('close', (e) => {
    closeCode = e.code;
  });
  const next = (match: (m: any) => boolean, ms = 10_000): Promise<any> => firstMatching(messages, match, ms);
  /** Arrival time (performance.now()) of the first message matching. */
  const arrivedAt = (match: (m: any) => boolean) => {
    const i = messages.findIndex(match);
    return i < 0 ? undefined : arrivals[i];
  };
  return { messages, next, arrivedAt, closeCode: () => closeCode, close: () => socket.close() };
}

/** GET /events/stream read as an SSE client does: `event:`/`data:` blocks, comments skipped. */
export async function subscribeStream(token: string) {
  const res = await (exports as unknown as { default: Fetcher }).default.fetch(new Request(`${BASE}/events/stream`, { headers: { Authorization: `Bearer ${token}` } }));
  if (res.status !== 200 || !res.body) throw new Error(`stream subscription failed: ${res.status}`);
  const events: { event: string; data: any }[] = [];
  const comments: string[] = [];
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let reading = true;
  void (async () => {
    while (reading) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) break;
      buffer += value;
      for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (block.startsWith(':')) comments.push(block);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) });
      }
    }
  })();
  const next = (match: (e: { event: string; data: any }) => boolean, ms = 10_000) => firstMatching(events, match, ms);
  return {
    res,
    events,
    comments,
    next,
    close: () => {
      reading = false;
      void reader.cancel().catch(() => {});
    },
  };
}
