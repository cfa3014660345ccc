import { z } from '@hono/zod-openapi';
import { entriesOf } from '../api/schemas';
import { DELIVERY_MODES, WORKSPACE_ACCESS } from '../db/schema';

// Names and roles end up in prompts, YAML and shell snippets: no line breaks, no template or
// shell metacharacters.
const NO_NEWLINES = /^[^\r\n]*$/;
const NO_META = /^[^{}[\]|>*&!]*$/;
const FORBIDDEN_DIRS = ['/etc', '/var', '/proc', '/sys', '/dev', '/boot', '/sbin', '/bin', '/lib', '/usr'];

const label = (max: number) => z.string().trim().min(1).max(max).regex(NO_NEWLINES, 'must not contain line breaks');
const name = label(255).regex(NO_META, 'must not contain any of {}[]|>*&!');
const role = z.string().max(1000).regex(NO_NEWLINES, 'must not contain line breaks').regex(NO_META, 'must not contain any of {}[]|>*&!');

export const workspaceDir = z
  .string()
  .max(1024)
  .refine((d) => d.startsWith('/'), 'must be an absolute path')
  .refine((d) => !d.split('/').includes('..'), 'must not contain ..')
  .refine((d) => !FORBIDDEN_DIRS.some((root) => d === root || d.startsWith(`${root}/`)), 'must not be a system directory');

/** Minutes without an exchange after which the agent is hibernated (0 = never; at most a week). */
const hibernationIdleMinutes = z.number().int().min(0).max(10_080);

export const secretKey = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be an environment variable name');

export const createWorkspaceSchema = z.object({
  name,
  role: role.optional(),
  tier: z.number().int().min(0).max(4).optional(),
  model: label(100).optional(),
  runtime: label(100).optional(),
  external: z.boolean().optional(),
  url: z.string().trim().min(1).max(2048).optional(),
  parent_id: z.guid().nullable().optional(),
  budget_limit: z.number().int().min(0).nullable().optional(),
  max_concurrent_tasks: z.number().int().max(1000).optional(),
  hibernation_idle_minutes: hibernationIdleMinutes.optional(),
  delivery_mode: z.enum(DELIVERY_MODES).optional(),
  workspace_dir: workspaceDir.optional(),
  workspace_access: z.enum(WORKSPACE_ACCESS).optional(),
  secrets: entriesOf(secretKey, z.string().max(65_536), 'keys must be environment variable names, values strings of at most 65536 characters').optional(),
});
export type CreateWorkspaceInput = z.output<typeof createWorkspaceSchema>;

export const patchWorkspaceSchema = z
  .object({
    name: name.optional(),
    role: role.nullable().optional(),
    tier: z.number().int().min(0).max(4).optional(),
    runtime: label(100).optional(),
    parent_id: z.guid().nullable().optional(),
    workspace_dir: workspaceDir.nullable().optional(),
    max_concurrent_tasks: z.number().int().min(1).max(1000).optional(),
    hibernation_idle_minutes: hibernationIdleMinutes.optional(),
  })
  .refine((v) => Object.keys(v).length > 0, 'at least one field is required');
