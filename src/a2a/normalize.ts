/**
 * A2A JSON-RPC payload normaliser (edge shim).
 *
 * Some senders still post the A2A v0.2 message shape (`params.message.content`);
 * receivers speak v0.3 (`params.message.parts`). The proxy normalises every
 * request here so that no message is silently dropped by a receiver that does
 * not understand the old field.
 *
 * Pure TypeScript: no Node APIs, no dependencies. Runs in workerd, where
 * `crypto.randomUUID()` is available globally.
 *
 * Before anything is normalised, the envelope is validated: a body that is not a
 * JSON-RPC request (no string method, params that cannot carry the message,
 * malformed parts) is refused here, because for a poll-mode target the proxy
 * answers 200 "queued" and writes the body straight into the inbox.
 *
 * Error bodies follow the project convention (top-level human string `error`)
 * and also carry a JSON-RPC error object (`rpc_error`). Their texts are fixed:
 * they name the offending field (and at most its JSON type or part index), never
 * its value, the raw request body or parser exception text.
 *
 * Every change to this file must keep the replay corpus in
 * `test/fixtures/a2a_corpus/` green (see its README).
 */

export type JsonObject = Record<string, unknown>;
export type NormalizeOk = { ok: true; payload: JsonObject; method: string };
export type NormalizeErr = { ok: false; status: 400; body: JsonObject };

/** A rejection before it is rendered: JSON-RPC error code and fixed message text. */
type Problem = { code: number; message: string };

/** JSON-RPC 2.0 "Parse error". */
const RPC_PARSE_ERROR = -32700;
/** JSON-RPC 2.0 "Invalid Request": valid JSON, but not a request object. */
const RPC_INVALID_REQUEST = -32600;
/** JSON-RPC 2.0 "Invalid params". */
const RPC_INVALID_PARAMS = -32602;

/** Methods are short routing keys (A2A's longest is ~35 chars) stored in the activity log. */
const MAX_METHOD_LENGTH = 128;
/** Far above any real message; bounds the per-part validation work and the inbox row. */
const MAX_PARTS = 256;
/**
 * Longest caller id echoed back in an error. Longer ids are still accepted (JSON-RPC puts no
 * bound on them) but answered with `id: null`, so an error body stays small whatever was sent.
 */
const MAX_ECHOED_ID_LENGTH = 128;

/**
 * Methods whose params carry the message to deliver (A2A v0.3). The v0.1 names
 * (`tasks/send`, `tasks/sendSubscribe`) are not listed: no corpus sender uses them. A message
 * under any other method is still normalised and validated, just not required.
 */
const MESSAGE_METHODS: ReadonlySet<string> = new Set(["message/send", "message/stream"]);

/**
 * The payload field each known part kind must carry (A2A TextPart / FilePart / DataPart).
 * Unknown kinds pass unchecked so that a newer sender's parts are not refused. A Map, not an
 * object literal, so that a `kind` like "constructor" cannot hit a prototype property.
 */
const PART_PAYLOADS: ReadonlyMap<string, { field: string; expected: string; check: (v: unknown) => boolean }> = new Map([
  ["text", { field: "text", expected: "a string", check: (v: unknown) => typeof v === "string" }],
  ["file", { field: "file", expected: "an object", check: isJsonObject }],
  ["data", { field: "data", expected: "an object", check: isJsonObject }],
]);

/** Unicode category Cc (C0, DEL, C1): a newline in a method would forge log/summary lines. */
const CONTROL_CHARACTER = /\p{Cc}/u;

const INVALID_JSON_MESSAGE = "invalid JSON";
const MISSING_PARTS_MESSAGE =
  "params.message.parts is required (or v0.2 params.message.content)";

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Type class of a parsed JSON value, for error messages (never the value itself). */
function jsonTypeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

function invalidRequest(message: string): Problem {
  return { code: RPC_INVALID_REQUEST, message };
}

function invalidParams(message: string): Problem {
  return { code: RPC_INVALID_PARAMS, message };
}

function fail(
  code: number,
  message: string,
  id: string | number | null,
): NormalizeErr {
  return {
    ok: false,
    status: 400,
    body: { error: message, jsonrpc: "2.0", id, rpc_error: { code, message } },
  };
}

/** The caller's id to echo in errors, if it sent a usable (and short enough) one. */
function echoableId(id: unknown): string | number | null {
  if (typeof id === "number") return id;
  // Printable ASCII only: the id goes back in an error body, and a log line may quote it.
  if (typeof id === "string" && id.length <= MAX_ECHOED_ID_LENGTH && /^[\x20-\x7e]*$/.test(id)) return id;
  return null;
}

/** `jsonrpc`, `method` and `id`: is this a JSON-RPC 2.0 request object at all? */
function envelopeProblem(request: JsonObject): Problem | null {
  // Absent `jsonrpc` means a legacy bare body, which is wrapped below; present means 2.0.
  if (Object.hasOwn(request, "jsonrpc") && request.jsonrpc !== "2.0") {
    return invalidRequest('jsonrpc must be "2.0"');
  }
  const method = request.method;
  if (typeof method !== "string" || method.length === 0) {
    return invalidRequest("method must be a non-empty string");
  }
  if (method.length > MAX_METHOD_LENGTH) {
    return invalidRequest(`method must be at most ${MAX_METHOD_LENGTH} characters`);
  }
  if (CONTROL_CHARACTER.test(method)) {
    return invalidRequest("method must not contain control characters");
  }
  const id = request.id;
  if (Object.hasOwn(request, "id") && id !== null && typeof id !== "string" && typeof id !== "number") {
    return invalidRequest("id must be a string, number or null");
  }
  return null;
}

/**
 * Message methods need `params.message` (its own shape is checked by `normaliseMessage`).
 * Any other method follows JSON-RPC 2.0: params may be omitted, else it must be structured
 * (object or array). Arrays are allowed because the proxy is a transport: an agent may expose
 * its own methods with by-position params, and refusing them would break it for no gain. A
 * scalar (or null) is never a valid JSON-RPC params and is refused rather than queued.
 */
function paramsProblem(method: string, request: JsonObject): Problem | null {
  const params = request.params;
  if (MESSAGE_METHODS.has(method)) {
    if (!isJsonObject(params)) return invalidParams("params must be an object");
    if (!Object.hasOwn(params, "message")) return invalidParams("params.message is required");
    return null;
  }
  if (Object.hasOwn(request, "params") && (params === null || typeof params !== "object")) {
    return invalidParams("params must be an object or array");
  }
  return null;
}

/**
 * One part: an object with a `kind`, carrying the payload field its kind needs. The channel
 * plugin and `molecule connect` tag parts with the older `type`; it is copied into `kind` (in
 * place, like the rest of normalisation) so v0.3 receivers see the part.
 */
function partProblem(part: unknown, path: string): Problem | null {
  if (!isJsonObject(part)) return invalidParams(`${path} must be an object`);
  if (!Object.hasOwn(part, "kind") && typeof part.type === "string") part.kind = part.type;
  const kind = part.kind;
  if (typeof kind !== "string" || kind.length === 0) {
    return invalidParams(`${path}.kind must be a non-empty string`);
  }
  const payload = PART_PAYLOADS.get(kind);
  if (payload && !payload.check(part[payload.field])) {
    return invalidParams(`${path}.${payload.field} must be ${payload.expected}`);
  }
  return null;
}

/**
 * A parts list: a non-empty, bounded array of well-formed parts. `path` is the field the
 * sender used (`parts`, or v0.2 `content`), so the error points at what they actually sent.
 */
function partsProblem(parts: unknown, path: string): Problem | null {
  if (!Array.isArray(parts)) return invalidParams(`${path} must be an array`);
  if (parts.length === 0) return invalidParams(`${path} must not be empty`);
  if (parts.length > MAX_PARTS) return invalidParams(`${path} must have at most ${MAX_PARTS} parts`);
  for (let i = 0; i < parts.length; i++) {
    const problem = partProblem(parts[i], `${path}[${i}]`);
    if (problem) return problem;
  }
  return null;
}

/**
 * Validate `params.message` and bring it to v0.3 in place: `parts` (kept as the very same
 * array), no `content`, a non-empty `messageId`.
 */
function normaliseMessage(message: unknown): Problem | null {
  if (!isJsonObject(message)) {
    // Not in the v0.2/v0.3 shapes at all; rejecting beats silently dropping it.
    return invalidParams(`params.message must be an object, got ${jsonTypeName(message)}`);
  }

  if (Object.hasOwn(message, "parts")) {
    const problem = partsProblem(message.parts, "params.message.parts");
    if (problem) return problem;
    // v0.3: leave `parts` untouched (no copy); drop any stale v0.2 field.
    delete message.content;
  } else if (Object.hasOwn(message, "content")) {
    const content = message.content;
    if (typeof content === "string") {
      // v0.2 string content -> single text part.
      message.parts = [{ kind: "text", text: content }];
      delete message.content;
    } else if (Array.isArray(content)) {
      // Client meant parts but used the old field name.
      const problem = partsProblem(content, "params.message.content");
      if (problem) return problem;
      message.parts = content;
      delete message.content;
    } else {
      return invalidParams(
        `params.message.content must be a string or a list of parts, got ${jsonTypeName(content)}`,
      );
    }
  } else {
    return invalidParams(MISSING_PARTS_MESSAGE);
  }

  const messageId = message.messageId;
  if (typeof messageId !== "string" || messageId.length === 0) {
    message.messageId = crypto.randomUUID();
  }
  return null;
}

/**
 * Parse and normalise a raw A2A JSON-RPC request body to the canonical v0.3 shape.
 * Exception text from the parser is deliberately discarded.
 */
export function normalizeA2APayload(raw: string): NormalizeOk | NormalizeErr {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return A2A_PARSE_ERROR;
  }
  return normalizeA2ARequest(parsed);
}

/** The JSON-RPC answer to a body that is not JSON (or not an object) at all. */
export const A2A_PARSE_ERROR: NormalizeErr = fail(RPC_PARSE_ERROR, INVALID_JSON_MESSAGE, null);

/**
 * Normalise an already parsed A2A request (the edge parses every body once, behind its JSON
 * gate). The value is mutated in place (it is freshly parsed and owned by this call); a v0.3
 * `parts` array is kept as the very same object (hot path).
 */
export function normalizeA2ARequest(parsed: unknown): NormalizeOk | NormalizeErr {
  if (!isJsonObject(parsed)) return A2A_PARSE_ERROR;

  // 2. Envelope and params, on the body as sent (so a bare legacy body is checked too).
  const errorId = echoableId(parsed.id);
  const envelope = envelopeProblem(parsed);
  if (envelope) return fail(envelope.code, envelope.message, errorId);
  const method = parsed.method as string;
  const params = paramsProblem(method, parsed);
  if (params) return fail(params.code, params.message, errorId);

  // 3. Legacy senders post a bare `{ method, params }`: wrap it in an envelope.
  let payload: JsonObject = parsed;
  if (!Object.hasOwn(parsed, "jsonrpc")) {
    payload = {
      jsonrpc: "2.0",
      id: crypto.randomUUID(),
      method: parsed.method,
      params: parsed.params,
    };
  }

  // 4. Message shape (only when there is a message, e.g. not tasks/list).
  const carried = payload.params;
  if (isJsonObject(carried) && Object.hasOwn(carried, "message")) {
    const problem = normaliseMessage(carried.message);
    if (problem) return fail(problem.code, problem.message, errorId);
  }

  return { ok: true, payload, method };
}
