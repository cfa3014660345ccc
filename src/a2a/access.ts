/** One row per (origin, ancestor) from the chain CTE: origin's own row has depth 0. */
export type ChainRow = { origin: string; id: string; parent_id: string | null };

export const MAX_ANCESTOR_DEPTH = 32;

/**
 * Hierarchy rule for agent-to-agent traffic: self, siblings, two roots, or a direct line
 * (one is an ancestor of the other, within the bounded walk). Anything unresolvable is a no.
 */
export function canCommunicate(callerId: string, targetId: string, chains: ChainRow[]): boolean {
  if (callerId === targetId) return true;
  const caller = lineage(callerId, chains);
  const target = lineage(targetId, chains);
  if (!caller || !target) return false;
  if (caller.parent && caller.parent === target.parent) return true;
  if (!caller.parent && !target.parent) return true;
  return target.ancestors.includes(callerId) || caller.ancestors.includes(targetId);
}

function lineage(id: string, chains: ChainRow[]): { parent: string | null; ancestors: string[] } | undefined {
  const rows = chains.filter((r) => r.origin === id);
  const self = rows.find((r) => r.id === id);
  if (!self) return undefined;
  return { parent: self.parent_id, ancestors: rows.filter((r) => r.id !== id).map((r) => r.id) };
}
