import { describe, expect, it } from 'vitest';
import { bounded, PREVIEW_MAX_CHARS, previewOf, settlementOfAnswer } from '../../src/delegations/dispatch';

describe('what a delivered answer means for a delegation', () => {
  it('a message: its text parts (kind or type), other parts skipped', () => {
    const answer = { jsonrpc: '2.0', id: 1, result: { kind: 'message', parts: [{ kind: 'text', text: 'a' }, { kind: 'file', file: {} }, { type: 'text', text: 'b' }] } };
    expect(settlementOfAnswer(answer)).toEqual({ status: 'completed', responsePreview: 'a\nb' });
  });

  it('a task: its artifacts, then its status message', () => {
    const result = { kind: 'task', artifacts: [{ parts: [{ kind: 'text', text: 'report' }] }], status: { state: 'completed', message: { parts: [{ kind: 'text', text: 'done' }] } } };
    expect(previewOf({ result })).toBe('report\ndone');
  });

  it('a text field, a bare string, else the result as JSON', () => {
    expect(previewOf({ result: { text: 'plain' } })).toBe('plain');
    expect(previewOf({ result: 'just words' })).toBe('just words');
    expect(previewOf({ result: { echoed: { n: 1 } } })).toBe('{"echoed":{"n":1}}');
    expect(previewOf(null)).toBeNull();
    expect(previewOf({ result: null })).toBeNull();
  });

  it('a JSON-RPC error (sent with HTTP 200) fails it with a fixed text', () => {
    expect(settlementOfAnswer({ jsonrpc: '2.0', id: 1, error: { code: -32603, message: 'Traceback /srv/secret.py' } })).toEqual({
      status: 'failed',
      error: 'agent answered with a JSON-RPC error',
    });
  });

  it('bounded, never ending in half a surrogate pair', () => {
    expect(previewOf({ result: { parts: [{ kind: 'text', text: 'x'.repeat(10_000) }] } })).toHaveLength(PREVIEW_MAX_CHARS);
    const cut = bounded('a' + '😀'.repeat(10), 4);
    expect(cut).toBe('a😀');
    expect(bounded('short')).toBe('short');
  });
});
