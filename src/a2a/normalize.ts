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
 * Error bodies follow the project convention (top-level human string `error`)
 * and also carry a JSON-RPC error object (`rpc_error`). They never contain the
 * raw request body or parser exception text.
 *
 * Every change to this file must keep the replay corpus in
 * `test/fixtures/a2a_corpus/` green (see its README).
 */

export type JsonObject = Record<string, unknown>;
export type NormalizeOk = { ok: true; payload: JsonObject; method: string };
export type NormalizeErr = { ok: false; status: 400; body: JsonObject };

/** JSON-RPC 2.0 "Parse error". */
const RPC_PARSE_ERROR = -32700;
/** JSON-RPC 2.0 "Invalid params". */
const RPC_INVALID_PARAMS = -32602;

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

/**
 * Parse and normalise a raw A2A JSON-RPC request body to the canonical v0.3 shape.
 *
 * The parsed object is mutated in place (it is freshly parsed and owned by this
 * call); a v0.3 `parts` array is kept as the very same object (hot path).
 */
export function normalizeA2APayload(raw: string): NormalizeOk | NormalizeErr {
  // 1. Parse. Exception text is deliberately discarded.
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return fail(RPC_PARSE_ERROR, INVALID_JSON_MESSAGE, null);
  }
  if (!isJsonObject(parsed)) {
    return fail(RPC_PARSE_ERROR, INVALID_JSON_MESSAGE, null);
  }

  // Id to echo in errors: the caller's own id, if it sent a usable one.
  const rawId = parsed.id;
  const errorId: string | number | null =
    typeof rawId === "string" || typeof rawId === "number" ? rawId : null;

  // 2. Legacy senders post a bare `{ method, params }`: wrap it in an envelope.
  let payload: JsonObject = parsed;
  if (!Object.hasOwn(parsed, "jsonrpc")) {
    payload = {
      jsonrpc: "2.0",
      id: crypto.randomUUID(),
      method: parsed.method,
      params: parsed.params,
    };
  }

  // 3./4. Message shape (only when there is a message, e.g. not tasks/list).
  const params = payload.params;
  if (isJsonObject(params) && Object.hasOwn(params, "message")) {
    const message = params.message;
    if (!isJsonObject(message)) {
      // Not in the v0.2/v0.3 shapes at all; rejecting beats silently dropping it.
      return fail(
        RPC_INVALID_PARAMS,
        `params.message must be an object, got ${jsonTypeName(message)}`,
        errorId,
      );
    }

    if (Object.hasOwn(message, "parts")) {
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
        message.parts = content;
        delete message.content;
      } else {
        return fail(
          RPC_INVALID_PARAMS,
          `params.message.content must be a string or a list of parts, got ${jsonTypeName(content)}`,
          errorId,
        );
      }
    } else {
      return fail(RPC_INVALID_PARAMS, MISSING_PARTS_MESSAGE, errorId);
    }

    const messageId = message.messageId;
    if (typeof messageId !== "string" || messageId.length === 0) {
      message.messageId = crypto.randomUUID();
    }
  }

  // 5. Method for routing/metrics.
  const method = typeof payload.method === "string" ? payload.method : "";
  return { ok: true, payload, method };
}
