import { sql } from 'drizzle-orm';
import { globalSecrets, secrets } from '../db/schema';
import type { Db } from '../lib/request-scope';
import { decryptSecret, ENCRYPTION_VERSION, importSecretsKey } from '../lib/secret-box';

type StoredSecret = { key: string; encrypted_value: string; encryption_version: number };

export type SecretBundle = { ok: true; values: Record<string, string> } | { ok: false; failedKeys: string[] };

/**
 * What a workspace's agent runs with: every global secret, overlaid by the workspace's own of the
 * same name. One row per key, in one statement, so a shadowed global is never even decrypted.
 */
async function effectiveSecrets(db: Db, workspaceId: string): Promise<StoredSecret[]> {
  const result = await db.execute<StoredSecret>(sql`
    SELECT DISTINCT ON (key) key, encrypted_value, encryption_version
      FROM (SELECT key, encrypted_value, encryption_version, 0 AS precedence FROM ${secrets} WHERE workspace_id = ${workspaceId}::uuid
            UNION ALL
            SELECT key, encrypted_value, encryption_version, 1 AS precedence FROM ${globalSecrets}) s
     ORDER BY key, precedence`);
  return result.rows;
}

/**
 * The decrypted bundle, all or nothing: an agent started with some of its secrets silently missing
 * fails later and more obscurely than one told which keys could not be opened. The key is imported
 * only when there is something to open (no secrets, no key needed; a missing key is the usual 503).
 */
export async function openWorkspaceSecrets(db: Db, keyMaterial: string | undefined, workspaceId: string): Promise<SecretBundle> {
  const rows = await effectiveSecrets(db, workspaceId);
  if (rows.length === 0) return { ok: true, values: {} };
  const key = await importSecretsKey(keyMaterial);
  const opened = await Promise.all(
    rows.map(async (row) => {
      if (Number(row.encryption_version) !== ENCRYPTION_VERSION) return { key: row.key, value: undefined };
      try {
        return { key: row.key, value: await decryptSecret(key, row.encrypted_value) };
      } catch {
        return { key: row.key, value: undefined };
      }
    }),
  );
  const failedKeys = opened.filter((s) => s.value === undefined).map((s) => s.key);
  if (failedKeys.length > 0) {
    console.error('secrets failed to decrypt', { workspaceId, failedKeys });
    return { ok: false, failedKeys };
  }
  // fromEntries defines own properties, so no key (not even `__proto__`) can go missing.
  return { ok: true, values: Object.fromEntries(opened.map((s) => [s.key, s.value!])) };
}
