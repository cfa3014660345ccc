import { addAbortSignal } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type Docker from 'dockerode';
import { CONSOLE_CAP_BYTES, tailBytes } from '../backend.ts';

// A container's console is the tail of GET /containers/{id}/logs. dockerode's `logs()` only
// streams with `follow: true` (which never ends on a running container); with `follow: false`
// docker-modem buffers the whole body, and `tail` counts lines, not bytes: 2000 lines can be tens
// of MiB per call. So the body is read as a stream, demultiplexed as it arrives, and only its last
// bytes are kept. Held per call: the window (cap + 1 bytes), one 8-byte header and the chunk in
// hand (the socket's read size), whatever the log size; frames are never assembled whole.

/** Keeps the last `size` bytes pushed into it, in one fixed buffer. */
export class ByteWindow {
  readonly #buffer: Buffer;
  #end = 0;
  #total = 0;

  constructor(size: number) {
    this.#buffer = Buffer.alloc(size);
  }

  push(bytes: Buffer): void {
    const size = this.#buffer.length;
    this.#total += bytes.length;
    if (bytes.length >= size) {
      bytes.copy(this.#buffer, 0, bytes.length - size);
      this.#end = 0;
      return;
    }
    const first = Math.min(bytes.length, size - this.#end);
    bytes.copy(this.#buffer, this.#end, 0, first);
    bytes.copy(this.#buffer, 0, first);
    this.#end = (this.#end + bytes.length) % size;
  }

  /** The kept bytes, oldest first. */
  bytes(): Buffer {
    if (this.#total < this.#buffer.length) return this.#buffer.subarray(0, this.#total);
    return Buffer.concat([this.#buffer.subarray(this.#end), this.#buffer.subarray(0, this.#end)]);
  }
}

/** [stream (0 stdin, 1 stdout, 2 stderr), 0, 0, 0, size (u32 BE)]. */
const isFrameHeader = (h: Buffer) => h[0]! <= 2 && h[1] === 0 && h[2] === 0 && h[3] === 0;

/**
 * Demultiplexes a log body chunk by chunk and keeps the last `cap` bytes of its payload.
 * A non-TTY container's body is frames; a TTY container's is raw bytes, recognised (as before) by
 * a first 8 bytes that are not a frame header, or a body under 8 bytes. Unlike the old buffered
 * reader, which gave the whole body back raw when any later frame failed to parse, a bad header
 * after good frames makes only the rest of the body raw text, and a frame cut short by the end of
 * the body keeps the payload that arrived (a header cut short is dropped).
 */
export class LogTail {
  readonly #cap: number;
  // One byte over the cap, so tailBytes still sees that the start was cut and skips a split character.
  readonly #window: ByteWindow;
  readonly #header = Buffer.alloc(8);
  #headerFill = 0;
  #payloadLeft = 0;
  #mode: 'first' | 'frames' | 'raw' = 'first';

  constructor(cap = CONSOLE_CAP_BYTES) {
    this.#cap = cap;
    this.#window = new ByteWindow(cap + 1);
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#mode === 'raw') {
        this.#window.push(chunk.subarray(offset));
        return;
      }
      if (this.#payloadLeft > 0) {
        const n = Math.min(this.#payloadLeft, chunk.length - offset);
        this.#window.push(chunk.subarray(offset, offset + n));
        this.#payloadLeft -= n;
        offset += n;
        continue;
      }
      const n = Math.min(8 - this.#headerFill, chunk.length - offset);
      chunk.copy(this.#header, this.#headerFill, offset, offset + n);
      this.#headerFill += n;
      offset += n;
      if (this.#headerFill < 8) return;
      this.#headerFill = 0;
      if (isFrameHeader(this.#header)) {
        this.#mode = 'frames';
        this.#payloadLeft = this.#header.readUInt32BE(4);
      } else {
        this.#mode = 'raw';
        this.#window.push(this.#header);
      }
    }
  }

  /** The kept tail as text, cut on a character boundary. */
  text(): string {
    if (this.#mode === 'first') this.#window.push(this.#header.subarray(0, this.#headerFill));
    return tailBytes(this.#window.bytes(), this.#cap);
  }
}

/** Why a console read stopped early; the agent's log reads it, the Worker sees a fixed text. */
export class ConsoleReadTimeout extends Error {
  constructor(ms: number) {
    super(`container log read did not finish within ${ms} ms`);
    this.name = 'ConsoleReadTimeout';
  }
}

/** The subset of docker-modem used here (dockerode types it as `any`). */
interface Modem {
  dial(
    options: { path: string; method: 'GET'; isStream: true; statusCodes: Record<number, true>; options: Record<string, unknown>; abortSignal: AbortSignal },
    callback: (err: unknown, res: IncomingMessage | null) => void,
  ): void;
}

// Every status is handed back as a stream: docker-modem's own stream errors drop the daemon's
// JSON body, which ./errors.ts needs to tell "No such container" from any other 404.
const ANY_STATUS: Record<number, true> = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [100 + i, true]));
const ERROR_BODY_MAX_BYTES = 64 * 1024;

/** An error shaped like docker-modem's (`statusCode`, `json`), from a bounded read of the body. */
async function daemonError(res: IncomingMessage): Promise<Error> {
  const window = new ByteWindow(ERROR_BODY_MAX_BYTES);
  for await (const chunk of res) window.push(chunk as Buffer);
  let json: unknown = null;
  try {
    json = JSON.parse(window.bytes().toString('utf8'));
  } catch {
    // Not JSON: the status alone classifies it.
  }
  return Object.assign(new Error(`container logs answered HTTP ${res.statusCode}`), { statusCode: res.statusCode, json });
}

/**
 * The last `cap` bytes of a container's stdout and stderr (its last `tailLines` lines at most).
 * A read that has not finished after `timeoutMs` (a stalled or trickling daemon) is abandoned and
 * throws ConsoleReadTimeout rather than answer with a partial tail: what arrived first is the
 * oldest part, and it would pass for the latest output. The request is aborted however it ends.
 */
export async function readLogTail(container: Docker.Container, options: { tailLines: number; timeoutMs: number; cap?: number }): Promise<string> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new ConsoleReadTimeout(options.timeoutMs)), options.timeoutMs);
  let res: IncomingMessage | null = null;
  try {
    res = await new Promise<IncomingMessage | null>((resolve, reject) => {
      (container.modem as Modem).dial(
        {
          path: `/containers/${container.id}/logs?`,
          method: 'GET',
          isStream: true,
          statusCodes: ANY_STATUS,
          options: { stdout: true, stderr: true, follow: false, tail: options.tailLines },
          abortSignal: controller.signal,
        },
        (err, answer) => (err ? reject(err) : resolve(answer)),
      );
    });
    if (!res) throw new Error('container logs: no response');
    addAbortSignal(controller.signal, res);
    if (res.statusCode !== 200) throw await daemonError(res);
    const tail = new LogTail(options.cap);
    for await (const chunk of res) tail.push(chunk as Buffer);
    return tail.text();
  } catch (err) {
    throw controller.signal.reason instanceof ConsoleReadTimeout ? controller.signal.reason : err;
  } finally {
    clearTimeout(timer);
    // Destroyed before the abort, so the abort never raises an error on a stream nobody reads.
    res?.destroy();
    controller.abort();
  }
}
