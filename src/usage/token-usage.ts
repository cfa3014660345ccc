import { and, desc, eq, sql } from 'drizzle-orm';
import { workspaceTokenUsage } from '../db/schema';
import type { Db } from '../lib/request-scope';

/** Tokens one A2A answer reports it spent. */
export type TokenUsage = { input: number; output: number };

/**
 * `result.usage`, else a top-level `usage` (SPEC §8.7): `input_tokens` / `output_tokens`, each
 * counted only when it is a non-negative safe integer. An answer reporting nothing countable (no
 * usage, wrong types, both zero) is no call for the meter either.
 */
export function tokenUsageOf(responseBody: unknown): TokenUsage | undefined {
  const usage = objectAt(objectAt(responseBody, 'result'), 'usage') ?? objectAt(responseBody, 'usage');
  if (!usage) return undefined;
  const input = tokenCount(usage.input_tokens);
  const output = tokenCount(usage.output_tokens);
  return input + output > 0 ? { input, output } : undefined;
}

function objectAt(value: unknown, key: string): Record<string, unknown> | undefined {
  const inner = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>)[key] : undefined;
  return inner !== null && typeof inner === 'object' && !Array.isArray(inner) ? (inner as Record<string, unknown>) : undefined;
}

function tokenCount(value: unknown): number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : 0;
}

/** One exchange's usage, keyed by the activity row that records it (so a repeated flush counts it once). */
export type UsageEntry = { activityId: string; workspaceId: string } & TokenUsage;

const BIGINT_MAX = '9223372036854775807';

/**
 * ONE statement adding a batch's usage to each workspace's row for today (UTC), counting only the
 * exchanges whose activity row `written` (a CTE of the same statement) just inserted. Totals
 * saturate instead of overflowing: an agent reporting absurd numbers must not wedge the
 * write-behind flush that carries this statement. SQL text, not drizzle: it rides in the flush's
 * hand-built statement (activity/record.ts); the entries travel as one jsonb parameter.
 */
export function usageUpsert(entries: UsageEntry[], param: (value: unknown) => string, written: string): string {
  const rows = param(JSON.stringify(entries.map((e) => ({ activity_id: e.activityId, workspace_id: e.workspaceId, input_tokens: e.input, output_tokens: e.output }))));
  return `
    INSERT INTO workspace_token_usage AS u (workspace_id, period_start, input_tokens, output_tokens, call_count, updated_at)
    SELECT v.workspace_id, (now() AT TIME ZONE 'UTC')::date,
           least(sum(v.input_tokens), ${BIGINT_MAX}), least(sum(v.output_tokens), ${BIGINT_MAX}), count(*), now()
      FROM jsonb_to_recordset(${rows}::jsonb) AS v(activity_id uuid, workspace_id uuid, input_tokens numeric, output_tokens numeric)
      JOIN ${written} w ON w.id = v.activity_id
     GROUP BY v.workspace_id
    ON CONFLICT (workspace_id, period_start) DO UPDATE
       SET input_tokens = least(u.input_tokens::numeric + excluded.input_tokens, ${BIGINT_MAX}),
           output_tokens = least(u.output_tokens::numeric + excluded.output_tokens, ${BIGINT_MAX}),
           call_count = u.call_count + excluded.call_count,
           updated_at = now()
    RETURNING 1`;
}

/** A workspace's daily usage, newest period first, from `days` ago (UTC) on. */
export function readUsage(db: Db, workspaceId: string, q: { days: number; limit: number }) {
  return db
    .select({
      period_start: workspaceTokenUsage.periodStart,
      input_tokens: workspaceTokenUsage.inputTokens,
      output_tokens: workspaceTokenUsage.outputTokens,
      call_count: workspaceTokenUsage.callCount,
      updated_at: workspaceTokenUsage.updatedAt,
    })
    .from(workspaceTokenUsage)
    .where(
      and(
        eq(workspaceTokenUsage.workspaceId, workspaceId),
        sql`${workspaceTokenUsage.periodStart} > (now() AT TIME ZONE 'UTC')::date - ${q.days}::int`,
      ),
    )
    .orderBy(desc(workspaceTokenUsage.periodStart))
    .limit(q.limit);
}
