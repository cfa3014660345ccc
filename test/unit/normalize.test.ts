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

  it("MissingMethodReturnsEmpty", () => {
    expect(ok(JSON.stringify({ jsonrpc: "2.0", id: 1, params: {} })).method).toBe("");
    expect(ok(JSON.stringify({ jsonrpc: "2.0", id: 1, method: 5 })).method).toBe("");
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
