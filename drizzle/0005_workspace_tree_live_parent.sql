-- The tree guard also owns "a parent is a live workspace". Checked in the application it was
-- read-then-write: a child created, or a workspace moved, under a parent that a concurrent DELETE
-- was removing stayed live under a tombstone. Now every insert with a parent and every move takes
-- the same transaction-scoped lock as DELETE (which re-reads the subtree under it), and refuses a
-- removed parent; a cycle is refused as before.

CREATE OR REPLACE FUNCTION workspaces_parent_acyclic() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.parent_id IS NULL OR (TG_OP = 'UPDATE' AND NEW.parent_id IS NOT DISTINCT FROM OLD.parent_id) THEN
    RETURN NEW;
  END IF;
  -- One lock for the whole tree: moves are rare operator actions, correctness beats parallelism.
  PERFORM pg_advisory_xact_lock(hashtext('workspaces_parent_acyclic'));
  IF NOT EXISTS (SELECT 1 FROM workspaces p WHERE p.id = NEW.parent_id AND p.status <> 'removed') THEN
    RAISE EXCEPTION 'parent workspace is not live'
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'workspaces_parent_live';
  END IF;
  IF TG_OP = 'UPDATE' AND EXISTS (
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

CREATE TRIGGER workspaces_parent_live
  BEFORE INSERT ON workspaces
  FOR EACH ROW EXECUTE FUNCTION workspaces_parent_acyclic();
