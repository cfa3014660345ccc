import { describe, expect, it } from 'vitest';
import { canCommunicate, type ChainRow } from '../../src/a2a/access';
import { parseCallerHeader, resolveCaller } from '../../src/a2a/caller';
import { extractExpiresInSeconds } from '../../src/a2a/queue';
import { ApiError } from '../../src/errors';

const T = '00000000-0000-4000-8000-00000000000a';
const C = '00000000-0000-4000-8000-00000000000c';
const wsToken = (workspace_id: string) => ({ workspaceToken: { id: 't', workspace_id, last_used_at: null }, orgToken: null });
const none = { workspaceToken: null, orgToken: null };
const org = { workspaceToken: null, orgToken: { id: 'o', last_used_at: null } };

function status(fn: () => unknown): number | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof ApiError) return err.status;
    throw err;
  }
}

describe('resolveCaller', () => {
  it('derives the caller from a workspace bearer when the header is absent', () => {
    expect(resolveCaller({ targetId: T, headerCaller: null, bearer: 'workspace', context: wsToken(C) })).toBe(C);
  });
  it('org and admin credentials are canvas-class', () => {
    expect(resolveCaller({ targetId: T, headerCaller: null, bearer: 'org', context: org })).toBeNull();
    expect(resolveCaller({ targetId: T, headerCaller: null, bearer: 'admin', context: none })).toBeNull();
  });
  it('an unresolvable bearer derives no caller and, having no canvas credential, is refused', () => {
    expect(status(() => resolveCaller({ targetId: T, headerCaller: null, bearer: 'malformed', context: none }))).toBe(401);
    expect(status(() => resolveCaller({ targetId: T, headerCaller: null, bearer: 'none', context: none }))).toBe(401);
    // A well-formed workspace token that resolved to nothing (revoked, removed workspace).
    expect(status(() => resolveCaller({ targetId: T, headerCaller: null, bearer: 'workspace', context: none }))).toBe(401);
  });
  it('a header caller must be backed by its own token', () => {
    expect(resolveCaller({ targetId: T, headerCaller: C, bearer: 'workspace', context: wsToken(C) })).toBe(C);
    expect(status(() => resolveCaller({ targetId: T, headerCaller: C, bearer: 'none', context: none }))).toBe(401);
    expect(status(() => resolveCaller({ targetId: T, headerCaller: C, bearer: 'workspace', context: wsToken(T) }))).toBe(401);
    expect(status(() => resolveCaller({ targetId: T, headerCaller: C, bearer: 'admin', context: none }))).toBe(401);
  });
  it('system prefixes are forged, malformed ids are rejected', () => {
    expect(status(() => parseCallerHeader('system:cron'))).toBe(403);
    expect(status(() => parseCallerHeader('Webhook:github'))).toBe(403);
    expect(status(() => parseCallerHeader('nope'))).toBe(400);
    expect(parseCallerHeader(undefined)).toBeNull();
    expect(parseCallerHeader(C.toUpperCase())).toBe(C);
  });
});

describe('canCommunicate', () => {
  // root R has children A, B; A has child A1; A1 has child A2. X is another root.
  const chains: ChainRow[] = [];
  const tree: Record<string, string | null> = { R: null, A: 'R', B: 'R', A1: 'A', A2: 'A1', X: null, XC: 'X' };
  for (const origin of Object.keys(tree)) {
    let id: string | null = origin;
    while (id) {
      chains.push({ origin, id, parent_id: tree[id]! });
      id = tree[id]!;
    }
  }
  it.each([
    ['A', 'A', true],
    ['A', 'B', true], // siblings
    ['R', 'X', true], // both roots
    ['R', 'A', true], // parent → child
    ['A1', 'A', true], // child → parent
    ['R', 'A2', true], // ancestor → descendant
    ['A2', 'R', true],
    ['A1', 'B', false], // nephew → uncle
    ['A', 'XC', false], // different trees
    ['XC', 'A', false],
  ])('%s → %s = %s', (caller, target, expected) => {
    expect(canCommunicate(caller, target, chains)).toBe(expected);
  });
  it('unknown workspaces cannot talk', () => {
    expect(canCommunicate('A', 'ghost', chains)).toBe(false);
  });
});

describe('extractExpiresInSeconds', () => {
  it.each([
    ['absent', { params: {} }, 0],
    ['positive', { params: { expires_in_seconds: 90 } }, 90],
    ['zero', { params: { expires_in_seconds: 0 } }, 0],
    ['negative', { params: { expires_in_seconds: -5 } }, 0],
    ['invalid JSON (unparsed string)', '{"params":', 0],
    ['wrong type', { params: { expires_in_seconds: '90' } }, 0],
    ['empty params', { params: null }, 0],
    ['fractional', { params: { expires_in_seconds: 1.5 } }, 0],
  ])('%s', (_, payload, expected) => {
    expect(extractExpiresInSeconds(payload)).toBe(expected);
  });
});
