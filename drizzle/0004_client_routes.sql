CREATE TABLE "delegations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"source_id" uuid NOT NULL,
	"target_id" uuid NOT NULL,
	"task" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"idempotency_key" text,
	"response_preview" text,
	"error" text,
	"queue_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "delegations_status_check" CHECK ("delegations"."status" IN ('pending', 'dispatched', 'queued', 'completed', 'failed')),
	CONSTRAINT "delegations_not_self_check" CHECK ("delegations"."source_id" <> "delegations"."target_id")
);
--> statement-breakpoint
CREATE TABLE "memories" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"workspace_id" uuid NOT NULL,
	"content" text NOT NULL,
	"scope" text NOT NULL,
	"namespace" text DEFAULT 'general' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "memories_scope_check" CHECK ("memories"."scope" IN ('LOCAL', 'TEAM', 'GLOBAL'))
);
--> statement-breakpoint
ALTER TABLE "workspace_auth_tokens" ADD COLUMN "label" text;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "runtime_state" text;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "talk_to_user_enabled" boolean DEFAULT true NOT NULL;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "removed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "delegations" ADD CONSTRAINT "delegations_source_id_workspaces_id_fk" FOREIGN KEY ("source_id") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "delegations" ADD CONSTRAINT "delegations_target_id_workspaces_id_fk" FOREIGN KEY ("target_id") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "memories" ADD CONSTRAINT "memories_workspace_id_workspaces_id_fk" FOREIGN KEY ("workspace_id") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "delegations_idempotency_idx" ON "delegations" USING btree ("source_id","idempotency_key") WHERE "delegations"."idempotency_key" IS NOT NULL AND "delegations"."status" <> 'failed';--> statement-breakpoint
CREATE INDEX "delegations_source_created_idx" ON "delegations" USING btree ("source_id","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "delegations_target_idx" ON "delegations" USING btree ("target_id");--> statement-breakpoint
CREATE INDEX "memories_ws_created_idx" ON "memories" USING btree ("workspace_id","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "memories_scope_idx" ON "memories" USING btree ("scope","created_at" DESC NULLS LAST);--> statement-breakpoint
-- Tombstones that predate the column: their last update is when they were removed.
UPDATE "workspaces" SET "removed_at" = "updated_at" WHERE "status" = 'removed' AND "removed_at" IS NULL;
