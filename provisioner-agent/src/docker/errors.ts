import { AgentError, TEXT } from '../errors.ts';

// The one place Docker Engine answers are read. dockerode (docker-modem) rejects with an Error
// carrying `statusCode` and the daemon's JSON body in `json`; transport failures carry neither.
// Texts differ between engines (Docker: "No such container: x", Podman: "no container with name
// or ID "x" found: no such container"), hence case-insensitive substrings next to the status.

interface DaemonError {
  statusCode?: number;
  json?: { message?: unknown } | null;
}

/**
 * The daemon's own words only (its JSON body's `message`). Not `err.message`: docker-modem writes
 * its own reading of the status into it ("(HTTP code 404) no such container - …" for ANY 404 of a
 * container call), so a 404 from something else on the socket (a proxy, an unsupported API path)
 * would read as "gone" — a stop that did nothing reported as done, a running agent as not_found.
 */
function daemonText(err: unknown): string {
  const e = (err ?? {}) as DaemonError;
  return (e.json && typeof e.json === 'object' && typeof e.json.message === 'string' ? e.json.message : '').toLowerCase();
}

function statusOf(err: unknown): number | undefined {
  const code = (err as DaemonError | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** A container (or volume) the daemon says does not exist: "No such container", "no such volume". */
export function isGone(err: unknown): boolean {
  const text = daemonText(err);
  return text.includes('no such container') || text.includes('no such volume');
}

/** Another removal of the same container is under way: both substrings, as the daemon words it. */
export function isRemovalInProgress(err: unknown): boolean {
  const text = daemonText(err);
  return text.includes('removal of container') && text.includes('already in progress');
}

export function isImageMissing(err: unknown): boolean {
  const text = daemonText(err);
  return text.includes('no such image') || (statusOf(err) === 404 && text.includes('image not known'));
}

export function isConflict(err: unknown): boolean {
  return statusOf(err) === 409;
}

/** Creating a container: a missing image is actionable, a name clash is a conflict, the rest is the daemon failing. */
export function startError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  if (isImageMissing(err)) return new AgentError('image_missing', TEXT.dockerImageMissing, err);
  if (isConflict(err)) return new AgentError('conflict', TEXT.conflict, err);
  return new AgentError('unavailable', TEXT.backendFailed, err);
}

/** Reading one container (status, console): gone is not_found, everything else is a failure. */
export function readError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  if (isGone(err)) return new AgentError('not_found', TEXT.workspaceNotFound, err);
  return new AgentError('unavailable', TEXT.backendFailed, err);
}

/** Removing: callers treat gone and removal-in-progress as success before they get here. */
export function removeError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  if (isConflict(err)) return new AgentError('conflict', TEXT.conflict, err);
  return new AgentError('unavailable', TEXT.backendFailed, err);
}
