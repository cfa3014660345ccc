/// <reference types="vite/client" />
/**
 * A2A replay corpus gate: see test/fixtures/a2a_corpus/README.md.
 *
 * Fixtures are bundled at build time with import.meta.glob (no `fs`), so this
 * test also runs inside workerd.
 */
import { describe, expect, it } from "vitest";
import { normalizeA2APayload, type JsonObject } from "../../src/a2a/normalize";

const validModules = import.meta.glob<JsonObject>(
  "../fixtures/a2a_corpus/valid/*.json",
  { eager: true, import: "default" },
);
const invalidModules = import.meta.glob<JsonObject>(
  "../fixtures/a2a_corpus/invalid/*.json",
  { eager: true, import: "default" },
);

type Entry = [name: string, entry: JsonObject];

function toEntries(modules: Record<string, JsonObject>): Entry[] {
  return Object.entries(modules)
    .map(([path, entry]): Entry => [
      path.slice(path.lastIndexOf("/") + 1).replace(/\.json$/, ""),
      entry,
    ])
    .sort(([a], [b]) => a.localeCompare(b));
}

const validEntries = toEntries(validModules);
const invalidEntries = toEntries(invalidModules);

/** Drop top-level `_`-prefixed metadata keys and serialise the request body. */
function replayBody(entry: JsonObject): string {
  const body: JsonObject = {};
  for (const [key, value] of Object.entries(entry)) {
    if (!key.startsWith("_")) body[key] = value;
  }
  return JSON.stringify(body);
}

function asObject(value: unknown): JsonObject {
  expect(value).toBeTypeOf("object");
  expect(value).not.toBeNull();
  expect(Array.isArray(value)).toBe(false);
  return value as JsonObject;
}

describe("a2a corpus: valid shapes normalise to canonical v0.3", () => {
  it.each(validEntries)("%s", (_name, entry) => {
    const result = normalizeA2APayload(replayBody(entry));
    if (!result.ok) {
      throw new Error(`rejected: ${JSON.stringify(result.body)}`);
    }
    const { payload } = result;
    expect(payload.jsonrpc, "jsonrpc").toBe("2.0");
    const params = asObject(payload.params);
    const message = asObject(params.message);
    expect(Array.isArray(message.parts), "params.message.parts must be an array").toBe(true);
    expect((message.parts as unknown[]).length, "params.message.parts must be non-empty").toBeGreaterThan(0);
    expect(typeof message.messageId, "params.message.messageId type").toBe("string");
    expect((message.messageId as string).length, "params.message.messageId must be non-empty").toBeGreaterThan(0);
    expect(Object.hasOwn(message, "content"), "params.message.content must be removed").toBe(false);
    expect(result.method).toBe(entry.method);

    // Canonical output is a fixed point: normalising it again changes nothing.
    const again = normalizeA2APayload(JSON.stringify(payload));
    expect(again.ok).toBe(true);
    if (again.ok) expect(again.payload).toEqual(payload);
  });
});

describe("a2a corpus: invalid shapes are rejected", () => {
  it.each(invalidEntries)("%s", (_name, entry) => {
    const result = normalizeA2APayload(replayBody(entry));
    if (result.ok) {
      throw new Error(`accepted: ${JSON.stringify(result.payload)}`);
    }
    expect(result.status).toBe(entry._expect_status);
    expect(typeof result.body.error).toBe("string");
    expect(result.body.error as string).toContain(entry._expect_error as string);
  });
});

describe("a2a corpus: malformed bodies", () => {
  it.each([
    ["truncated JSON", '{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"mess'],
    ["not JSON", "hello, agent"],
    ["empty string", ""],
    ["whitespace only", " \n\t  "],
  ])("%s -> 400", (_label, raw) => {
    const result = normalizeA2APayload(raw);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.status).toBe(400);
      expect(result.body.error).toBe("invalid JSON");
    }
  });
});

describe("a2a corpus: coverage and metadata", () => {
  it("has minimum coverage (a glob matching nothing must fail)", () => {
    const validNames = validEntries.map(([name]) => name);
    expect(validEntries.length).toBeGreaterThanOrEqual(11);
    expect(invalidEntries.length).toBeGreaterThanOrEqual(3);
    expect(validNames.some((n) => n.startsWith("v0_2_"))).toBe(true);
    expect(validNames.some((n) => n.startsWith("v0_3_"))).toBe(true);
  });

  it.each([...validEntries, ...invalidEntries])("%s carries _comment, _added, _source", (_name, entry) => {
    expect(typeof entry._comment).toBe("string");
    expect((entry._comment as string).trim().length).toBeGreaterThan(0);
    expect(typeof entry._source).toBe("string");
    expect((entry._source as string).trim().length).toBeGreaterThan(0);
    expect(entry._added).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    const added = entry._added as string;
    expect(new Date(`${added}T00:00:00Z`).toISOString().slice(0, 10)).toBe(added);
  });

  it.each(invalidEntries)("%s carries _expect_status and _expect_error", (_name, entry) => {
    expect(entry._expect_status).toBe(400);
    expect(typeof entry._expect_error).toBe("string");
    expect((entry._expect_error as string).length).toBeGreaterThan(0);
  });
});
