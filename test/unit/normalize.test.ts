import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import {
  normalizeA2APayload,
  type JsonObject,
  type NormalizeErr,
  type NormalizeOk,
} from "../../src/a2a/normalize";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function ok(raw: string): NormalizeOk {
  const result = normalizeA2APayload(raw);
  if (!result.ok) throw new Error(`expected ok, got ${JSON.stringify(result.body)}`);
  return result;
}

function err(raw: string): NormalizeErr {
  const result = normalizeA2APayload(raw);
  if (result.ok) throw new Error(`expected error, got ${JSON.stringify(result.payload)}`);
  return result;
}

function messageOf(result: NormalizeOk): JsonObject {
  return (result.payload.params as JsonObject).message as JsonObject;
}

function sendBody(message: unknown, extra: JsonObject = {}): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id: "req-1",
    method: "message/send",
    params: { message },
    ...extra,
  });
}

describe("normalizeA2APayload", () => {
  it("ConvertsV02StringContentToParts", () => {
    const result = ok(sendBody({ role: "user", messageId: "m-1", content: "hello" }));
    const message = messageOf(result);
    expect(message.parts).toEqual([{ kind: "text", text: "hello" }]);
    expect(Object.hasOwn(message, "content")).toBe(false);
    expect(message.role).toBe("user");
    expect(result.method).toBe("message/send");
  });

  it("ConvertsV02ListContentToParts", () => {
    const list = [
      { kind: "text", text: "a" },
      { kind: "data", data: { k: 1 } },
    ];
    const message = messageOf(ok(sendBody({ role: "user", messageId: "m-1", content: list })));
    expect(message.parts).toEqual(list);
    expect(Object.hasOwn(message, "content")).toBe(false);
  });

  it("PreservesV03Parts (same array object, content removed)", () => {
    // The API takes a raw string, so observe identity by capturing the object
    // the real JSON.parse produced: the normaliser must hand back that very
    // `parts` array (hot path: no copy, no rebuild).
    const realParse = JSON.parse;
    let parsed: JsonObject | undefined;
    const spy = vi.spyOn(JSON, "parse").mockImplementationOnce((text: string) => {
      parsed = realParse(text) as JsonObject;
      return parsed;
    });
    let result: NormalizeOk;
    try {
      result = ok(
        sendBody({ role: "user", messageId: "m-1", parts: [{ kind: "text", text: "keep me" }], content: "stale" }),
      );
    } finally {
      spy.mockRestore();
    }
    expect(parsed).toBeDefined();
    const originalParts = ((parsed!.params as JsonObject).message as JsonObject).parts;
    const message = messageOf(result);
    expect(message.parts).toBe(originalParts);
    expect(message.parts).toEqual([{ kind: "text", text: "keep me" }]);
    expect(Object.hasOwn(message, "content")).toBe(false);
    expect(message.messageId).toBe("m-1");
  });

  it("PreservesV03Parts (serialised round trip)", () => {
    const message = messageOf(
      ok(sendBody({ role: "user", messageId: "m-1", parts: [{ kind: "text", text: "x" }], content: "y" })),
    );
    expect(message.parts).toEqual([{ kind: "text", text: "x" }]);
    expect(Object.hasOwn(message, "content")).toBe(false);
  });

  it("RejectsMessageWithNeitherContentNorParts", () => {
    const result = err(sendBody({ role: "user", messageId: "m-1" }));
    expect(result.status).toBe(400);
    expect(result.body.error).toBe(
      "params.message.parts is required (or v0.2 params.message.content)",
    );
    expect(result.body.error).toContain("params.message.parts");
    expect(result.body.jsonrpc).toBe("2.0");
    expect(result.body.id).toBe("req-1");
    expect(result.body.rpc_error).toEqual({ code: -32602, message: result.body.error });
  });

  it.each([
    ["number", 42],
    ["number", 1.5],
    ["boolean", true],
    ["boolean", false],
    ["object", { text: "nested" }],
    ["null", null],
  ])("RejectsContentWithUnsupportedType: %s (%j)", (typeName, content) => {
    const result = err(sendBody({ role: "user", messageId: "m-1", content }));
    expect(result.status).toBe(400);
    expect(result.body.error).toBe(
      `params.message.content must be a string or a list of parts, got ${typeName}`,
    );
    expect(result.body.rpc_error).toEqual({ code: -32602, message: result.body.error });
  });

  it.each([
    ["string", '"hello"'],
    ["array", "[]"],
    ["null", "null"],
  ])("rejects params.message that is not an object: %s", (typeName, json) => {
    const raw = `{"jsonrpc":"2.0","id":3,"method":"message/send","params":{"message":${json}}}`;
    const result = err(raw);
    expect(result.status).toBe(400);
    expect(result.body.error).toBe(`params.message must be an object, got ${typeName}`);
    expect(result.body.id).toBe(3);
  });

  it("NoMessageNoCheck (tasks/list passes)", () => {
    const raw = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tasks/list", params: {} });
    const result = ok(raw);
    expect(result.method).toBe("tasks/list");
    expect(result.payload).toEqual(JSON.parse(raw));
  });

  it("NoMessageNoCheck (tasks/get passes, no params.message)", () => {
    const raw = JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tasks/get", params: { id: "task-1" } });
    const result = ok(raw);
    expect(result.method).toBe("tasks/get");
    expect(result.payload).toEqual(JSON.parse(raw));
  });


  it.each([
    ["absent", undefined],
    ["empty string", ""],
    ["number", 12],
    ["null", null],
  ])("auto-fills messageId when %s", (_label, messageId) => {
    const message: JsonObject = { role: "user", content: "hi" };
    if (messageId !== undefined) message.messageId = messageId;
    const out = messageOf(ok(sendBody(message)));
    expect(out.messageId).toMatch(UUID_RE);
  });

  it("auto-fills messageId on the v0.3 path too", () => {
    const out = messageOf(ok(sendBody({ role: "user", parts: [{ kind: "text", text: "x" }] })));
    expect(out.messageId).toMatch(UUID_RE);
  });

  it("preserves an existing messageId", () => {
    expect(messageOf(ok(sendBody({ role: "user", messageId: "keep-me", content: "hi" }))).messageId).toBe(
      "keep-me",
    );
    expect(
      messageOf(ok(sendBody({ role: "user", messageId: "keep-me-too", parts: [{ kind: "text", text: "x" }] })))
        .messageId,
    ).toBe("keep-me-too");
  });

  it("wraps a bare {method, params} in a JSON-RPC envelope, keeping method and params and adding an id", () => {
    const params = { message: { role: "user", messageId: "m-1", parts: [{ kind: "text", text: "x" }] } };
    const result = ok(JSON.stringify({ method: "message/send", params }));
    expect(result.payload.jsonrpc).toBe("2.0");
    expect(result.payload.method).toBe("message/send");
    expect(result.payload.params).toEqual(params);
    expect(result.payload.id).toMatch(UUID_RE);
    expect(result.method).toBe("message/send");
  });

  it("wrapped bare v0.2 body is also normalised", () => {
    const result = ok(JSON.stringify({ method: "message/send", params: { message: { content: "hi" } } }));
    expect(result.payload.jsonrpc).toBe("2.0");
    expect(messageOf(result).parts).toEqual([{ kind: "text", text: "hi" }]);
  });

  it("does not wrap when jsonrpc is present", () => {
    const raw = JSON.stringify({ jsonrpc: "2.0", id: "abc", method: "tasks/list", extra: 1 });
    expect(ok(raw).payload).toEqual(JSON.parse(raw));
  });

  it.each([
    ["truncated JSON", '{"jsonrpc":"2.0","id":1,"method":"mes'],
    ["not JSON", "not json at all"],
    ["empty string", ""],
    ["whitespace only", "   \n\t "],
    ["array", "[1,2,3]"],
    ["string", '"a string"'],
    ["number", "123"],
    ["null", "null"],
  ])("rejects %s with a -32700 parse error", (_label, raw) => {
    const result = err(raw);
    expect(result.status).toBe(400);
    expect(result.body).toEqual({
      error: "invalid JSON",
      jsonrpc: "2.0",
      id: null,
      rpc_error: { code: -32700, message: "invalid JSON" },
    });
  });

  it("echoes a string or number request id in errors, else null", () => {
    expect(err(sendBody({}, { id: 99 })).body.id).toBe(99);
    expect(err(sendBody({}, { id: "abc" })).body.id).toBe("abc");
    expect(err(sendBody({}, { id: { nested: true } })).body.id).toBeNull();
    expect(err(JSON.stringify({ method: "message/send", params: { message: {} } })).body.id).toBeNull();
  });

  it("error bodies never contain the raw body text or parser exception text", () => {
    const secret = "SECRET-TOKEN-d41d8cd9";
    const cases = [
      `{"jsonrpc":"2.0","id":1,"params":{"message":{"content":"${secret}`, // truncated
      `${secret} is not json`,
      sendBody({ role: "user", content: { secret } }),
      sendBody({ role: "user", note: secret }),
      sendBody(secret),
    ];
    for (const raw of cases) {
      const text = JSON.stringify(err(raw).body);
      expect(text).not.toContain(secret);
      expect(text).not.toMatch(/Unexpected|SyntaxError|position|token/i);
    }
  });
});

/** Asserts a JSON-RPC-style 400 with a fixed message and the caller's id (if usable) echoed. */
function expectRejected(raw: string, code: number, message: string, id: string | number | null = null): void {
  const result = err(raw);
  expect(result.status).toBe(400);
  expect(result.body).toEqual({ error: message, jsonrpc: "2.0", id, rpc_error: { code, message } });
}

const INVALID_REQUEST = -32600;
const INVALID_PARAMS = -32602;
const SECRET = "SECRET-VALUE-7c9e";

const textPart = (text = "x") => ({ kind: "text", text });

function sendParts(parts: unknown, method = "message/send"): string {
  return JSON.stringify({ jsonrpc: "2.0", id: "req-1", method, params: { message: { role: "user", messageId: "m-1", parts } } });
}

describe("normalizeA2APayload: envelope", () => {
  it.each([
    ["empty object", {}],
    ["method absent, params present", { jsonrpc: "2.0", id: 1, params: {} }],
    ["method is a number", { method: 42 }],
    ["method is null", { jsonrpc: "2.0", id: 1, method: null }],
    ["method is an object", { jsonrpc: "2.0", id: 1, method: { name: "message/send" } }],
    ["method is an array", { jsonrpc: "2.0", id: 1, method: ["message/send"] }],
    ["method is empty", { jsonrpc: "2.0", id: 1, method: "" }],
  ])("rejects %s: method must be a non-empty string (-32600)", (_label, body) => {
    const id = (body as JsonObject).id as number | undefined;
    expectRejected(JSON.stringify(body), INVALID_REQUEST, "method must be a non-empty string", id ?? null);
  });

  it("bounds the method length (128 ok, 129 rejected)", () => {
    const at = "m".repeat(128);
    expect(ok(JSON.stringify({ jsonrpc: "2.0", id: 1, method: at })).method).toBe(at);
    expectRejected(
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "m".repeat(129) }),
      INVALID_REQUEST,
      "method must be at most 128 characters",
      1,
    );
  });

  it.each([
    ["NUL", "message/send\u0000"],
    ["newline", "message/send\nINJECTED"],
    ["DEL", "message/\u007fsend"],
    ["C1 control", "message/\u0085send"],
  ])("rejects a method containing a control character (%s)", (_label, method) => {
    expectRejected(
      JSON.stringify({ jsonrpc: "2.0", id: 1, method }),
      INVALID_REQUEST,
      "method must not contain control characters",
      1,
    );
  });

  it.each([
    ["1.0", "1.0"],
    ["number 2", 2],
    ["number 2.0", 2.0],
    ["null", null],
    ["empty string", ""],
  ])("rejects jsonrpc other than \"2.0\": %s", (_label, jsonrpc) => {
    expectRejected(
      JSON.stringify({ jsonrpc, id: "r", method: "tasks/list", params: {} }),
      INVALID_REQUEST,
      'jsonrpc must be "2.0"',
      "r",
    );
  });

  it.each([
    ["object", { nested: true }],
    ["array", [1]],
    ["boolean", true],
  ])("rejects an id that is not a string, number or null: %s (echoes null)", (_label, id) => {
    expectRejected(
      JSON.stringify({ jsonrpc: "2.0", id, method: "tasks/list", params: {} }),
      INVALID_REQUEST,
      "id must be a string, number or null",
    );
  });

  it.each([
    ["string", "abc"],
    ["number", 7],
    ["null", null],
  ])("accepts a %s id and keeps it", (_label, id) => {
    const result = ok(JSON.stringify({ jsonrpc: "2.0", id, method: "tasks/list", params: {} }));
    expect(result.payload.id).toBe(id);
  });

  it("does not echo an over-long id in errors (keeps error bodies small), but still accepts it", () => {
    const longId = "i".repeat(200);
    expect(ok(JSON.stringify({ jsonrpc: "2.0", id: longId, method: "tasks/list" })).payload.id).toBe(longId);
    const result = err(JSON.stringify({ jsonrpc: "2.0", id: longId, method: "message/send" }));
    expect(result.body.id).toBeNull();
    expect(JSON.stringify(result.body).length).toBeLessThan(200);
  });

  it("validates the envelope before wrapping a bare legacy body", () => {
    expectRejected(JSON.stringify({ params: {} }), INVALID_REQUEST, "method must be a non-empty string");
    expectRejected(JSON.stringify({ method: "message/send" }), INVALID_PARAMS, "params must be an object");
    // A bare body with a valid method and no message-bearing params is still wrapped.
    const result = ok(JSON.stringify({ method: "tasks/list" }));
    expect(result.payload.jsonrpc).toBe("2.0");
    expect(result.payload.id).toMatch(UUID_RE);
    expect(result.method).toBe("tasks/list");
  });
});

describe("normalizeA2APayload: params", () => {
  it.each(["message/send", "message/stream"])("%s requires params to be an object (-32602)", (method) => {
    for (const params of [undefined, null, "x", 1, true, [], [{ message: {} }]]) {
      const body: JsonObject = { jsonrpc: "2.0", id: 5, method };
      if (params !== undefined) body.params = params;
      expectRejected(JSON.stringify(body), INVALID_PARAMS, "params must be an object", 5);
    }
  });

  it.each(["message/send", "message/stream"])("%s requires params.message", (method) => {
    expectRejected(
      JSON.stringify({ jsonrpc: "2.0", id: 5, method, params: { configuration: { blocking: true } } }),
      INVALID_PARAMS,
      "params.message is required",
      5,
    );
  });

  it.each([
    ["string", "x"],
    ["number", 3],
    ["boolean", false],
    ["null", null],
  ])("other methods reject %s params (JSON-RPC 2.0: params must be structured)", (_label, params) => {
    expectRejected(
      JSON.stringify({ jsonrpc: "2.0", id: 6, method: "tasks/get", params }),
      INVALID_PARAMS,
      "params must be an object or array",
      6,
    );
  });

  it("other methods accept absent, object and array params unchanged", () => {
    for (const body of [
      { jsonrpc: "2.0", id: 1, method: "tasks/list" },
      { jsonrpc: "2.0", id: 1, method: "tasks/get", params: { id: "t-1" } },
      { jsonrpc: "2.0", id: 1, method: "custom/positional", params: ["a", 1] },
    ]) {
      expect(ok(JSON.stringify(body)).payload).toEqual(body);
    }
  });

  it("a message carried by another method is still normalised and validated", () => {
    const converted = ok(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tasks/send", params: { message: { content: "hi" } } }));
    expect(messageOf(converted).parts).toEqual([textPart("hi")]);
    expectRejected(
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tasks/send", params: { message: { parts: "x" } } }),
      INVALID_PARAMS,
      "params.message.parts must be an array",
      1,
    );
  });
});

describe("normalizeA2APayload: message parts", () => {
  it.each([
    ["string", "x"],
    ["object", { kind: "text", text: "x" }],
    ["number", 1],
    ["null", null],
  ])("rejects parts that is a %s", (_label, parts) => {
    expectRejected(sendParts(parts), INVALID_PARAMS, "params.message.parts must be an array", "req-1");
  });

  it("rejects empty parts (nothing to deliver)", () => {
    expectRejected(sendParts([]), INVALID_PARAMS, "params.message.parts must not be empty", "req-1");
  });

  it("bounds the number of parts (256 ok, 257 rejected)", () => {
    const parts = Array.from({ length: 256 }, () => textPart());
    expect(messageOf(ok(sendParts(parts))).parts).toHaveLength(256);
    expectRejected(
      sendParts([...parts, textPart()]),
      INVALID_PARAMS,
      "params.message.parts must have at most 256 parts",
      "req-1",
    );
  });

  it.each([
    ["string", "text"],
    ["number", 1],
    ["null", null],
    ["array", [textPart()]],
  ])("rejects a part that is a %s, naming its index", (_label, part) => {
    expectRejected(sendParts([textPart(), textPart(), part]), INVALID_PARAMS, "params.message.parts[2] must be an object", "req-1");
  });

  it.each([
    ["absent", { text: "x" }],
    ["number", { kind: 1, text: "x" }],
    ["empty", { kind: "", text: "x" }],
    ["a number under the legacy `type`", { type: 7, text: "x" }],
  ])("rejects a part whose kind is %s", (_label, part) => {
    expectRejected(sendParts([part]), INVALID_PARAMS, "params.message.parts[0].kind must be a non-empty string", "req-1");
  });

  it("copies a legacy `type` into `kind` (channel plugin and molecule connect replies)", () => {
    expect(messageOf(ok(sendParts([{ type: "text", text: "x" }]))).parts).toEqual([{ type: "text", kind: "text", text: "x" }]);
    // An explicit kind wins over a disagreeing type.
    expect(messageOf(ok(sendParts([{ kind: "text", type: "data", text: "x" }]))).parts).toEqual([{ kind: "text", type: "data", text: "x" }]);
  });

  it.each([
    ["absent", { kind: "text" }],
    ["number", { kind: "text", text: 5 }],
    ["null", { kind: "text", text: null }],
    ["object", { kind: "text", text: { value: "x" } }],
  ])("rejects a text part whose text is %s", (_label, part) => {
    expectRejected(sendParts([textPart(), part]), INVALID_PARAMS, "params.message.parts[1].text must be a string", "req-1");
  });

  it("accepts an empty text and unknown part kinds (forward compatible)", () => {
    const parts = [textPart(""), { kind: "future-kind", anything: 1 }];
    expect(messageOf(ok(sendParts(parts))).parts).toEqual(parts);
  });

  it.each([
    ["file", { kind: "file", file: "https://example.com/a.csv" }, "params.message.parts[0].file must be an object"],
    ["file", { kind: "file" }, "params.message.parts[0].file must be an object"],
    ["data", { kind: "data", data: "x" }, "params.message.parts[0].data must be an object"],
    ["data", { kind: "data", data: [1, 2] }, "params.message.parts[0].data must be an object"],
  ])("rejects a malformed %s part", (_label, part, message) => {
    expectRejected(sendParts([part]), INVALID_PARAMS, message, "req-1");
  });

  it("accepts well-formed file and data parts", () => {
    const parts = [
      { kind: "file", file: { uri: "https://example.com/a.csv", mimeType: "text/csv" } },
      { kind: "data", data: { k: 1 } },
    ];
    expect(messageOf(ok(sendParts(parts))).parts).toEqual(parts);
  });

  it("validates a v0.2 content list as parts, naming the field the sender used", () => {
    expectRejected(sendBody({ content: [] }), INVALID_PARAMS, "params.message.content must not be empty", "req-1");
    expectRejected(
      sendBody({ content: [textPart(), { kind: "text", text: 1 }] }),
      INVALID_PARAMS,
      "params.message.content[1].text must be a string",
      "req-1",
    );
  });

  it("validates message/stream parts the same way", () => {
    expectRejected(sendParts("x", "message/stream"), INVALID_PARAMS, "params.message.parts must be an array", "req-1");
  });

  it("error bodies name the field but never contain the offending value", () => {
    const cases = [
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: { SECRET } }),
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: `${SECRET}\n` }),
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: SECRET.repeat(20) }),
      JSON.stringify({ jsonrpc: SECRET, id: 1, method: "tasks/list" }),
      JSON.stringify({ jsonrpc: "2.0", id: { SECRET }, method: "tasks/list" }),
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tasks/get", params: SECRET }),
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "message/send", params: SECRET }),
      sendParts(SECRET),
      sendParts([SECRET]),
      sendParts([{ kind: "text", text: { SECRET } }]),
      sendParts([{ kind: 7, SECRET }]),
      sendParts([{ kind: "file", file: SECRET }]),
    ];
    for (const raw of cases) {
      const result = err(raw);
      const text = JSON.stringify(result.body);
      expect(text).not.toContain(SECRET);
      expect(text.length).toBeLessThan(200);
    }
  });
});

describe("normalizeA2APayload: properties (hostile bodies)", () => {
  const TYPES = "(string|number|boolean|object|array|null)";
  const FIELD = "params\\.message\\.(parts|content)";
  /** Every error text the normaliser may produce: fixed templates, only a type name or part index varies. */
  const ERROR_TEMPLATES = new RegExp(
    "^(" +
      [
        "invalid JSON",
        'jsonrpc must be "2\\.0"',
        "method must be a non-empty string",
        "method must be at most 128 characters",
        "method must not contain control characters",
        "id must be a string, number or null",
        "params must be an object",
        "params must be an object or array",
        "params\\.message is required",
        `params\\.message must be an object, got ${TYPES}`,
        `params\\.message\\.content must be a string or a list of parts, got ${TYPES}`,
        "params\\.message\\.parts is required \\(or v0\\.2 params\\.message\\.content\\)",
        `${FIELD} must be an array`,
        `${FIELD} must not be empty`,
        `${FIELD} must have at most 256 parts`,
        `${FIELD}\\[\\d{1,3}\\] must be an object`,
        `${FIELD}\\[\\d{1,3}\\]\\.kind must be a non-empty string`,
        `${FIELD}\\[\\d{1,3}\\]\\.text must be a string`,
        `${FIELD}\\[\\d{1,3}\\]\\.(file|data) must be an object`,
      ].join("|") +
      ")$",
  );

  const part = fc.oneof(
    fc.record(
      { kind: fc.oneof(fc.constantFrom("text", "file", "data", "other", ""), fc.jsonValue()), text: fc.jsonValue(), file: fc.jsonValue(), data: fc.jsonValue() },
      { requiredKeys: [] },
    ),
    fc.jsonValue(),
  );
  const message = fc.record(
    { parts: fc.oneof(fc.array(part, { maxLength: 4 }), fc.jsonValue()), content: fc.oneof(fc.string(), fc.array(part, { maxLength: 3 }), fc.jsonValue()), messageId: fc.jsonValue() },
    { requiredKeys: [] },
  );
  const body = fc.record(
    {
      jsonrpc: fc.oneof(fc.constant("2.0"), fc.jsonValue()),
      id: fc.jsonValue(),
      method: fc.oneof(fc.constantFrom("message/send", "message/stream", "tasks/get"), fc.jsonValue()),
      params: fc.oneof(fc.record({ message: fc.oneof(message, fc.jsonValue()) }, { requiredKeys: [] }), fc.jsonValue()),
    },
    { requiredKeys: [] },
  );

  it("either a canonical request or a small fixed-text JSON-RPC 400", () => {
    fc.assert(
      fc.property(body, (input) => {
        const raw = JSON.stringify(input);
        const result = normalizeA2APayload(raw);
        if (result.ok) {
          expect(result.payload.jsonrpc).toBe("2.0");
          expect(result.method).toMatch(/^[^\p{Cc}]{1,128}$/u);
          const msg = (result.payload.params as JsonObject | undefined)?.message;
          if (msg !== undefined || ["message/send", "message/stream"].includes(result.method)) {
            const parts = (msg as JsonObject).parts as JsonObject[];
            expect(parts.length).toBeGreaterThan(0);
            for (const p of parts) expect(typeof p.kind).toBe("string");
            expect(Object.hasOwn(msg as JsonObject, "content")).toBe(false);
          }
          return;
        }
        expect(result.status).toBe(400);
        expect(Object.keys(result.body).sort()).toEqual(["error", "id", "jsonrpc", "rpc_error"]);
        expect(result.body.error).toMatch(ERROR_TEMPLATES);
        expect((result.body.rpc_error as JsonObject).message).toBe(result.body.error);
        expect([-32700, -32600, -32602]).toContain((result.body.rpc_error as JsonObject).code);
        const id = result.body.id;
        if (id !== null) expect(id).toBe((JSON.parse(raw) as JsonObject).id); // as sent on the wire (-0 is 0)
        expect(JSON.stringify(result.body).length).toBeLessThan(400);
      }),
      { numRuns: 2000 },
    );
  });
});
