-- The workspace tree stays a forest under any sequence of concurrent moves.
--
-- A move checks that the new parent is not the workspace itself or one of its descendants. Done
-- as read-then-write in the application, two concurrent moves (A under B, B under A) each check
-- against the other's pre-move tree and both succeed, leaving a ring that hangs off no root. So
-- the check lives here, behind one transaction-scoped lock that every move takes: the second
-- move waits for the first to commit, and (statements in a volatile plpgsql function take a fresh
-- snapshot under READ COMMITTED) its walk then sees the first move.

-- Repair rings left by the old race: every workspace on a cycle becomes a root. Each walk carries
-- the ids it has visited and stops at the first repeat, so a ring (or a tree hanging off one)
-- costs a few rows per workspace, not thousands.
WITH RECURSIVE walk(start, id, path) AS (
  SELECT w.id, w.parent_id, ARRAY[w.id] FROM workspaces w WHERE w.parent_id IS NOT NULL
  UNION ALL
  SELECT walk.start, p.parent_id, walk.path || p.id
    FROM walk JOIN workspaces p ON p.id = walk.id
   WHERE p.parent_id IS NOT NULL AND NOT (p.id = ANY(walk.path))
)
UPDATE workspaces SET parent_id = NULL, updated_at = now()
 WHERE id IN (SELECT start FROM walk WHERE id = start);--> statement-breakpoint

CREATE OR REPLACE FUNCTION workspaces_parent_acyclic() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.parent_id IS NULL OR NEW.parent_id IS NOT DISTINCT FROM OLD.parent_id THEN
    RETURN NEW;
  END IF;
  -- One lock for the whole tree: moves are rare operator actions, correctness beats parallelism.
  PERFORM pg_advisory_xact_lock(hashtext('workspaces_parent_acyclic'));
  IF EXISTS (
    WITH RECURSIVE up(id, parent_id, depth) AS (
      SELECT w.id, w.parent_id, 1 FROM workspaces w WHERE w.id = NEW.parent_id
      UNION ALL
      SELECT w.id, w.parent_id, up.depth + 1 FROM workspaces w JOIN up ON w.id = up.parent_id
       WHERE up.depth < 10000
    )
    SELECT 1 FROM up WHERE up.id = NEW.id
  ) THEN
    RAISE EXCEPTION 'workspace move would create a cycle'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'workspaces_parent_acyclic';
  END IF;
  RETURN NEW;
END
$$;--> statement-breakpoint

CREATE TRIGGER workspaces_parent_acyclic
  BEFORE UPDATE OF parent_id ON workspaces
  FOR EACH ROW EXECUTE FUNCTION workspaces_parent_acyclic();
