/**
 * Upstream HTTP statuses that mean "the origin agent is probably dead".
 *
 * Dead:
 *   502 Bad Gateway, 503 Service Unavailable, 504 Gateway Timeout
 *   521 Web Server Is Down, 522 Connection Timed Out,
 *   523 Origin Is Unreachable, 524 A Timeout Occurred
 *
 * Deliberately NOT dead:
 *   520 "Unknown Error": the origin did answer, just with something empty or
 *       malformed; the agent process is alive, so treat it as an ordinary error.
 *   525 "SSL Handshake Failed": the origin is reachable but its TLS setup is
 *       wrong; that is a configuration problem, not a dead agent, and marking it
 *       dead would hide the real fault.
 */
const DEAD_STATUSES: ReadonlySet<number> = new Set([
  502, 503, 504, 521, 522, 523, 524,
]);

/** Upstream statuses that mean "the origin agent is probably dead" (Cloudflare origin-failure family + gateway errors). */
export function isUpstreamDeadStatus(status: number): boolean {
  return DEAD_STATUSES.has(status);
}
