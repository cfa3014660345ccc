CREATE TABLE "a2a_queue" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"workspace_id" uuid NOT NULL,
	"caller_id" uuid,
	"priority" smallint DEFAULT 50 NOT NULL,
	"method" text,
	"body" jsonb NOT NULL,
	"idempotency_key" text,
	"delegation_id" text,
	"status" text DEFAULT 'queued' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"response_status" integer,
	"response_body" jsonb,
	"expires_at" timestamp with time zone,
	"enqueued_at" timestamp with time zone DEFAULT now() NOT NULL,
	"dispatched_at" timestamp with time zone,
	"completed_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "a2a_queue_status_check" CHECK ("a2a_queue"."status" IN ('queued', 'dispatched', 'completed', 'failed', 'dropped'))
);
--> statement-breakpoint
ALTER TABLE "a2a_queue" ADD CONSTRAINT "a2a_queue_workspace_id_workspaces_id_fk" FOREIGN KEY ("workspace_id") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "a2a_queue_idempotency_idx" ON "a2a_queue" USING btree ("workspace_id","idempotency_key") WHERE "a2a_queue"."idempotency_key" IS NOT NULL AND "a2a_queue"."status" IN ('queued', 'dispatched');--> statement-breakpoint
CREATE INDEX "a2a_queue_dispatch_idx" ON "a2a_queue" USING btree ("workspace_id","priority" DESC NULLS LAST,"enqueued_at") WHERE "a2a_queue"."status" = 'queued';