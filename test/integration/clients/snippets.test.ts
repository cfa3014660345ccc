// The copy-paste snippets of an external workspace must start each real client as published: every
// variable and flag a snippet sets is read here the way that client reads it.
import { describe, expect, it } from 'vitest';
import { TOKEN_PLACEHOLDER } from '../../../src/workspaces/connection-snippets';
import { ADMIN, BASE, callJson } from '../../support/api';

async function externalWorkspace() {
  const res = await callJson('POST', '/workspaces', { token: ADMIN, body: { name: 'laptop', external: true, delivery_mode: 'poll' } });
  expect(res.status).toBe(201);
  return { id: res.body.id as string, token: res.body.connection.auth_token as string, conn: res.body.connection };
}

/** What an operator does: paste the token where the snippet says so. */
const pasteToken = (snippet: string, token: string) => {
  expect(snippet).toContain(TOKEN_PLACEHOLDER);
  return snippet.replaceAll(TOKEN_PLACEHOLDER, token);
};

/** `export K=V` / `export K='V'` lines, as a POSIX shell would set them. */
function shellExports(script: string): Record<string, string> {
  return Object.fromEntries([...script.matchAll(/^export ([A-Z_][A-Z0-9_]*)=(?:'([^']*)'|(\S*))$/gm)].map((m) => [m[1], m[2] ?? m[3]]));
}

describe('external workspace snippets', () => {
  it('channel plugin .env: the config server.ts derives is complete and right', async () => {
    const { id, token, conn } = await externalWorkspace();
    const env: Record<string, string> = {};
    // molecule-mcp-claude-channel server.ts (loadEnv): a strict KEY=value parser, no quote or comment handling.
    for (const line of pasteToken(conn.claude_code_channel_snippet, token).split('\n')) {
      const m = line.match(/^([A-Z_][A-Z0-9_]*)=(.*)$/);
      if (m && env[m[1]!] === undefined) env[m[1]!] = m[2]!;
    }
    // server.ts: the required config ("required config missing" otherwise) and its derivations.
    const PLATFORM_URL = env.MOLECULE_PLATFORM_URL?.replace(/\/$/, '');
    const WORKSPACE_IDS = (env.MOLECULE_WORKSPACE_IDS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const WORKSPACE_TOKENS = (env.MOLECULE_WORKSPACE_TOKENS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    expect(PLATFORM_URL).toBe(BASE);
    expect(WORKSPACE_IDS).toEqual([id]);
    expect(WORKSPACE_TOKENS).toEqual([token]);
  });

  it('Python SDK: python -m molecule_agent connect gets every required flag from the exported variables', async () => {
    const { id, token, conn } = await externalWorkspace();
    const script = pasteToken(conn.python_snippet, token);
    const vars = shellExports(script);
    const command = script.replace(/\\\n\s*/g, ' ').split('\n').find((l) => l.startsWith('python -m molecule_agent connect'))!;
    // molecule_agent/__main__.py: --platform-url, --workspace-id and --handler are required; --token skips register.
    const flag = (name: string) => command.match(new RegExp(`--${name} "?\\$?([A-Za-z_:.]+)"?`))?.[1];
    expect(vars[flag('platform-url')!]).toBe(BASE);
    expect(vars[flag('workspace-id')!]).toBe(id);
    expect(vars[flag('token')!]).toBe(token);
    expect(flag('handler')).toMatch(/^\w+:\w+$/);
    expect(script).toContain('pip install molecule-ai-sdk');
  });

  it('molecule connect: MOLECULE_API_URL and MOLECULE_WORKSPACE_TOKEN, the workspace id as the argument', async () => {
    const { id, token, conn } = await externalWorkspace();
    const script = pasteToken(conn.molecule_connect_snippet, token);
    // molecule-cli cmd/root.go (--api-url / MOLECULE_API_URL) and cmd/connect.go (--token / MOLECULE_WORKSPACE_TOKEN).
    expect(shellExports(script)).toEqual({ MOLECULE_API_URL: BASE, MOLECULE_WORKSPACE_TOKEN: token });
    expect(script).toContain(`molecule connect ${id}`);
  });
});
