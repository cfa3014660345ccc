CREATE TABLE "workspace_token_usage" (
	"workspace_id" uuid NOT NULL,
	"period_start" date NOT NULL,
	"input_tokens" bigint DEFAULT 0 NOT NULL,
	"output_tokens" bigint DEFAULT 0 NOT NULL,
	"call_count" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "workspace_token_usage_workspace_id_period_start_pk" PRIMARY KEY("workspace_id","period_start"),
	CONSTRAINT "workspace_token_usage_nonnegative_check" CHECK ("workspace_token_usage"."input_tokens" >= 0 AND "workspace_token_usage"."output_tokens" >= 0 AND "workspace_token_usage"."call_count" >= 0)
);
--> statement-breakpoint
ALTER TABLE "a2a_queue" DROP CONSTRAINT "a2a_queue_status_check";--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "instance_id" text;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "provisioning_since" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "hibernation_idle_minutes" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "workspace_token_usage" ADD CONSTRAINT "workspace_token_usage_workspace_id_workspaces_id_fk" FOREIGN KEY ("workspace_id") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "a2a_queue" ADD CONSTRAINT "a2a_queue_status_check" CHECK ("a2a_queue"."status" IN ('queued', 'dispatched', 'completed', 'failed', 'dropped', 'expired'));--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_hibernation_idle_minutes_check" CHECK ("workspaces"."hibernation_idle_minutes" >= 0);--> statement-breakpoint
-- The provision-timeout deadline counts from the moment a workspace (re)enters `provisioning`,
-- whichever writer put it there; a trigger keeps that one rule out of every writer.
CREATE OR REPLACE FUNCTION workspaces_provisioning_since() RETURNS trigger AS $$
BEGIN
  IF NEW.status = 'provisioning' THEN
    IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'provisioning' THEN
      NEW.provisioning_since := now();
    END IF;
  ELSE
    NEW.provisioning_since := NULL;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;--> statement-breakpoint
CREATE TRIGGER workspaces_provisioning_since BEFORE INSERT OR UPDATE OF status ON workspaces
  FOR EACH ROW EXECUTE FUNCTION workspaces_provisioning_since();--> statement-breakpoint
UPDATE workspaces SET provisioning_since = updated_at WHERE status = 'provisioning';
