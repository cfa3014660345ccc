import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bearerSecurity, errors, newRouter } from '../api/openapi';
import { resolveCredential } from '../auth/credentials';
import { isDevMode, type AppEnv } from '../env';
import { ApiError } from '../errors';
import { eventHub, HUB_SUBSCRIBER_HEADER, type HubSubscriber } from '../events/hub';

export const liveEventRoutes = newRouter();

/** Comment lines on an idle stream: proxies keep it open, and a vanished client is noticed. */
export const SSE_HEARTBEAT_MS = 15_000;
/** Events queued for a stream client that is not reading; past this, events are dropped (as Go's 64-slot buffer). */
const SSE_BUFFERED_EVENTS = 64;

const subscriberDescription =
  'Operators (ADMIN_TOKEN, org tokens) receive every event of the tenant; a workspace token receives the events of its own ' +
  'workspace and of the workspaces it may communicate with (the A2A hierarchy rule). Each message is ' +
  '`{event, workspace_id, timestamp, payload}`. A revoked credential or removed workspace ends the connection.';

liveEventRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/ws',
    tags: ['events'],
    summary: "The tenant's live events over a WebSocket (the canvas feed)",
    description: subscriberDescription,
    security: bearerSecurity,
    responses: { 101: { description: 'Switching to the WebSocket protocol' }, ...errors(401, 426, 503) },
  }),
  async (c) => {
    const subscriber = await authorizeSubscriber(c);
    if (c.req.header('Upgrade') !== 'websocket') throw new ApiError(426, 'expected a websocket upgrade');
    return (await connectToHub(c, subscriber)) as never;
  },
);

liveEventRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/events/stream',
    tags: ['events'],
    summary: 'The same live events as GET /ws, as Server-Sent Events (for clients that cannot hold a WebSocket)',
    description:
      `${subscriberDescription} Each event is \`event: <EVENT>\` plus \`data: <message JSON>\`; a comment line every ` +
      `${SSE_HEARTBEAT_MS / 1000} s keeps the stream open. A client that stops reading loses events past ${SSE_BUFFERED_EVENTS} queued ones.`,
    security: bearerSecurity,
    responses: {
      200: { description: 'An endless event stream', content: { 'text/event-stream': { schema: z.string() } } },
      ...errors(401, 503),
    },
  }),
  async (c) => {
    const subscriber = await authorizeSubscriber(c);
    const upstream = await connectToHub(c, subscriber);
    if (!upstream.webSocket) throw new ApiError(503, 'live events unavailable — retry shortly');
    return eventStream(upstream.webSocket);
  },
);

/** Operators see everything; a live workspace token sees what its workspace may reach. */
async function authorizeSubscriber(c: Context<AppEnv>): Promise<HubSubscriber> {
  const credential = await resolveCredential(c.var.scope, c.req.header('Authorization'));
  switch (credential.kind) {
    case 'admin':
      return { kind: 'admin' };
    case 'org':
      return { kind: 'org', tokenId: credential.tokenId };
    case 'workspace':
      return { kind: 'workspace', tokenId: credential.tokenId, workspaceId: credential.workspaceId };
    case 'none':
      // As every operator route: a local dev stack without ADMIN_TOKEN is open to its operator.
      if (!c.env.ADMIN_TOKEN && isDevMode(c.env)) return { kind: 'admin' };
      throw new ApiError(401, 'missing auth token');
    default:
      throw new ApiError(401, 'invalid auth token');
  }
}

/** Opens a hub socket for the subscriber; only what the Worker established reaches the hub, no client header. */
async function connectToHub(c: Context<AppEnv>, subscriber: HubSubscriber): Promise<Response> {
  const res = await eventHub(c.env).fetch(
    new Request('https://hub/connect', { headers: { Upgrade: 'websocket', [HUB_SUBSCRIBER_HEADER]: JSON.stringify(subscriber) } }),
  );
  // The hub re-checks the credential once the socket is tagged: a revoke since our check lands here.
  if (res.status === 401) throw new ApiError(401, 'invalid auth token');
  if (res.status !== 101) throw new ApiError(503, 'live events unavailable — retry shortly');
  return res;
}

/**
 * Pipes a hub socket into an SSE response. Nothing here waits on the client: events are written
 * into a bounded queue and dropped when it is full, and a client that went away (the write fails)
 * closes the hub socket.
 */
function eventStream(socket: WebSocket): Response {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>(undefined, new CountQueuingStrategy({ highWaterMark: SSE_BUFFERED_EVENTS }));
  const writer = writable.getWriter();
  const encoder = new TextEncoder();
  let open = true;
  const end = () => {
    if (!open) return;
    open = false;
    clearInterval(heartbeat);
    try {
      socket.close(1000, 'stream ended');
    } catch {
      // already closed
    }
    writer.close().catch(() => {});
  };
  const write = (text: string) => {
    if (!open) return;
    writer.write(encoder.encode(text)).catch(end);
  };
  socket.accept();
  socket.addEventListener('message', (e) => {
    if ((writer.desiredSize ?? 0) <= 0) return;
    const data = String(e.data);
    const event = (JSON.parse(data) as { event?: unknown }).event;
    write(`event: ${typeof event === 'string' ? event : 'message'}\ndata: ${data}\n\n`);
  });
  socket.addEventListener('close', end);
  socket.addEventListener('error', end);
  const heartbeat = setInterval(() => write(': ping\n\n'), SSE_HEARTBEAT_MS);
  write(': connected\n\n');
  return new Response(readable, {
    status: 200,
    headers: { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' },
  });
}
