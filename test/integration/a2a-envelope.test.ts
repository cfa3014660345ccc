/// <reference types="vite/client" />
// Envelope validation through the real Worker: bodies that are not JSON-RPC requests must be a
// JSON-RPC-style 400 and must never reach a poll target's inbox (the activity row IS the delivery).
import { beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, callJson, registeredAgent, sql } from '../support/api';

const INVALID_REQUEST = -32600;
const INVALID_PARAMS = -32602;

const post = (targetId: string, raw: string) => callJson('POST', `/workspaces/${targetId}/a2a`, { token: ADMIN, raw, headers: { 'Content-Type': 'application/json' } });
const inbox = (targetId: string) => sql('SELECT id FROM activity_logs WHERE workspace_id = $1', [targetId]);

const message = (parts: unknown) => ({ role: 'user', messageId: crypto.randomUUID(), parts });
const send = (params: unknown) => JSON.stringify({ jsonrpc: '2.0', id: 'env-1', method: 'message/send', params });

/** [label, raw body, JSON-RPC code, exact error text, id echoed]. The first five are the shapes from the issue. */
const BAD_SHAPES: [string, string, number, string, string | null][] = [
  ['empty object', '{}', INVALID_REQUEST, 'method must be a non-empty string', null],
  ['numeric method', '{"method":42}', INVALID_REQUEST, 'method must be a non-empty string', null],
  ['message/send without params', '{"method":"message/send"}', INVALID_PARAMS, 'params must be an object', null],
  ['string params', '{"method":"message/send","params":"x"}', INVALID_PARAMS, 'params must be an object', null],
  ['string parts', send({ message: message('x') }), INVALID_PARAMS, 'params.message.parts must be an array', 'env-1'],
  ['params without message', send({ configuration: { blocking: true } }), INVALID_PARAMS, 'params.message is required', 'env-1'],
  ['empty parts', send({ message: message([]) }), INVALID_PARAMS, 'params.message.parts must not be empty', 'env-1'],
  ['text part without text', send({ message: message([{ kind: 'text', text: 'ok' }, { kind: 'text' }]) }), INVALID_PARAMS, 'params.message.parts[1].text must be a string', 'env-1'],
  ['jsonrpc 1.0', JSON.stringify({ jsonrpc: '1.0', id: 'env-1', method: 'tasks/list' }), INVALID_REQUEST, 'jsonrpc must be "2.0"', 'env-1'],
  ['object id', JSON.stringify({ jsonrpc: '2.0', id: { n: 1 }, method: 'tasks/list' }), INVALID_REQUEST, 'id must be a string, number or null', null],
  ['scalar params on another method', JSON.stringify({ jsonrpc: '2.0', id: 'env-1', method: 'tasks/get', params: 'task-1' }), INVALID_PARAMS, 'params must be an object or array', 'env-1'],
];

const corpus = import.meta.glob<Record<string, unknown>>('../fixtures/a2a_corpus/invalid/*.json', { eager: true, import: 'default' });
const corpusEntries = Object.entries(corpus).map(([path, entry]) => [path.slice(path.lastIndexOf('/') + 1), entry] as const);

/** The request body of a corpus entry: top-level `_` metadata stripped (as the corpus test does). */
function corpusBody(entry: Record<string, unknown>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(entry).filter(([key]) => !key.startsWith('_'))));
}

describe('A2A envelope validation (poll target)', () => {
  let target: { id: string; token: string };
  beforeAll(async () => {
    target = await registeredAgent({ mode: 'poll' });
  });

  it.each(BAD_SHAPES)('%s → 400 JSON-RPC error, nothing queued', async (_label, raw, code, error, id) => {
    const res = await post(target.id, raw);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error, jsonrpc: '2.0', id, rpc_error: { code, message: error } });
    expect(await inbox(target.id)).toHaveLength(0);
  });

  it('every invalid corpus entry is refused by the Worker too, nothing queued', async () => {
    expect(corpusEntries.length).toBeGreaterThanOrEqual(8);
    for (const [name, entry] of corpusEntries) {
      const res = await post(target.id, corpusBody(entry));
      expect(res.status, name).toBe(entry._expect_status);
      expect(res.body.error, name).toContain(entry._expect_error);
      expect(res.body.rpc_error?.message, name).toBe(res.body.error);
    }
    expect(await inbox(target.id)).toHaveLength(0);
  });

  it('a well-formed message is still 200 queued, exactly once', async () => {
    const fresh = await registeredAgent({ mode: 'poll' });
    const res = await post(fresh.id, send({ message: message([{ kind: 'text', text: 'still works' }]) }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'queued', delivery_mode: 'poll', method: 'message/send' });
    const rows = await sql('SELECT method, request_body FROM activity_logs WHERE workspace_id = $1', [fresh.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0].method).toBe('message/send');
    expect(rows[0].request_body.params.message.parts).toEqual([{ kind: 'text', text: 'still works' }]);
  });
});
