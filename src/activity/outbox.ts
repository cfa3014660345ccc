import type { Bindings } from '../env';
import type { PendingActivity, WireEntry } from './pending';

/** Entries per `append` call, and their characters (a call carries at most 32 MiB; a string may take two bytes a character). */
const APPEND_MAX_ENTRIES = 128;
const APPEND_MAX_CHARS = 8 * 1024 * 1024;
/** How long the first exchange of a batch waits for others before the shared call goes out. */
const APPEND_WINDOW_MS = 10;
/** How long a request waits for another request's send to carry its entry before sending it itself. */
const CARRIED_ACK_TIMEOUT_MS = 10_000;
/** How often a waiting request looks at its entry's outcome (a shared call takes a few ms). */
const ACK_POLL_MS = 20;

/** One exchange's entry in an outbox, and what became of it (set by whoever sent it). */
type Waiting = { entry: WireEntry; outcome: 'waiting' | 'carried' | 'refused' };
/** Per isolate and target: entries waiting for the send in flight, and whether one is. */
type Outbox = { waiting: Waiting[]; sending: boolean; since: number };
const outboxes = new Map<string, Outbox>();

/**
 * Hands an exchange's rows to the target's writer; once this resolves they are durable.
 *
 * One call to the writer per exchange cost the Worker as much CPU as the rest of the proxy (the
 * bench: 0.26× direct with it, 0.45× without), so exchanges of one isolate share calls: the
 * first caller waits a few milliseconds and sends what gathered; entries that arrive while its
 * call is in flight wait for it, and it then sends them together.
 *
 * Nothing depends on the sender's request living on: every caller watches its own entry and, if
 * the carrying call failed or never answered, sends it itself. It watches by looking, on its own
 * timer, at the outcome the sender wrote, never by awaiting a promise the sender resolves: a
 * promise settled from another request's context is carried over by workerd with an error per
 * settlement ("Cannot perform I/O on behalf of a different request", RefcountedFulfiller), and
 * its continuation is dropped if either request has ended. A duplicate send is harmless (row ids
 * are minted before, the flush writes each once).
 */
export async function appendActivity(env: Bindings, targetId: string, pending: PendingActivity, opts: { ackTimeoutMs?: number } = {}): Promise<void> {
  const ackTimeoutMs = opts.ackTimeoutMs ?? CARRIED_ACK_TIMEOUT_MS; // tests shorten it
  const mine: Waiting = { entry: JSON.stringify(pending), outcome: 'waiting' };
  let box = outboxes.get(targetId);
  // A sender whose request was cut off mid-send never clears its flag: after the wait its callers
  // give up on, the next caller starts a fresh outbox (the old one's waiters send their own).
  if (!box || (box.sending && Date.now() - box.since > ackTimeoutMs)) {
    box = { waiting: [], sending: false, since: 0 };
    outboxes.set(targetId, box);
  }
  box.waiting.push(mine);
  if (box.sending) {
    const deadline = Date.now() + ackTimeoutMs;
    while (mine.outcome === 'waiting' && Date.now() < deadline) await sleep(ACK_POLL_MS);
    if (mine.outcome === 'carried') return;
    // Given up on: later callers start a fresh outbox rather than wait on this one too.
    if (mine.outcome === 'waiting' && outboxes.get(targetId) === box) outboxes.delete(targetId);
  } else {
    box.sending = true;
    box.since = Date.now();
    // The first caller waits a moment for company: exchanges answered within the window share one
    // call (one RPC, one storage write), where sending at once carried barely one entry per call
    // under load (the call returns before the next exchange ends). Nobody waits on this but the
    // write-behind: the caller's response has already gone.
    try {
      await sleep(APPEND_WINDOW_MS);
    } finally {
      await sendWaiting(env, targetId, box);
    }
    if (mine.outcome === 'carried') return;
  }
  await env.ACTIVITY_WRITER.getByName(targetId).append([mine.entry]);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The sender's loop: everything that queued behind its call, in batches, until none is left. */
async function sendWaiting(env: Bindings, targetId: string, box: Outbox): Promise<void> {
  const writer = env.ACTIVITY_WRITER.getByName(targetId);
  while (box.waiting.length > 0) {
    let count = 0;
    for (let chars = 0; count < box.waiting.length && count < APPEND_MAX_ENTRIES; count++) {
      chars += box.waiting[count]!.entry.length;
      if (count > 0 && chars > APPEND_MAX_CHARS) break;
    }
    const batch = box.waiting.splice(0, count);
    box.since = Date.now();
    try {
      await writer.append(batch.map((w) => w.entry));
      for (const w of batch) w.outcome = 'carried';
    } catch (err) {
      console.error('activity append failed; its callers send their own', err);
      for (const w of batch) w.outcome = 'refused';
    }
  }
  box.sending = false;
  if (outboxes.get(targetId) === box) outboxes.delete(targetId);
}
