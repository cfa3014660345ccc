/**
 * Ends the hibernatable WebSockets carrying `tag` (all of them without one) with a fixed reason;
 * how many. Both Durable Objects that hold live feeds end them this way.
 */
export function closeSockets(ctx: DurableObjectState, tag: string | undefined, code: number, reason: string): number {
  const sockets = ctx.getWebSockets(tag);
  for (const socket of sockets) socket.close(code, reason);
  return sockets.length;
}
