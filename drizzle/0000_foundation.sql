CREATE TABLE "activity_logs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"seq" bigint GENERATED ALWAYS AS IDENTITY (sequence name "activity_logs_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"workspace_id" uuid NOT NULL,
	"activity_type" text NOT NULL,
	"source_id" uuid,
	"target_id" uuid,
	"method" text,
	"summary" text,
	"request_body" jsonb,
	"response_body" jsonb,
	"tool_trace" jsonb,
	"status" text DEFAULT 'ok' NOT NULL,
	"error_detail" text,
	"duration_ms" integer,
	"created_at" timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
	CONSTRAINT "activity_logs_type_check" CHECK ("activity_logs"."activity_type" IN ('a2a_send', 'a2a_receive', 'task_update', 'agent_log', 'skill_promotion', 'memory_write', 'error')),
	CONSTRAINT "activity_logs_status_check" CHECK ("activity_logs"."status" IN ('ok', 'error'))
);
--> statement-breakpoint
CREATE TABLE "global_secrets" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"key" text NOT NULL,
	"encrypted_value" text NOT NULL,
	"encryption_version" smallint DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "org_api_tokens" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"token_hash" text NOT NULL,
	"prefix" text NOT NULL,
	"name" text,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "secrets" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"workspace_id" uuid NOT NULL,
	"key" text NOT NULL,
	"encrypted_value" text NOT NULL,
	"encryption_version" smallint DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "structure_events" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"event_type" text NOT NULL,
	"workspace_id" uuid,
	"payload" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "workspace_auth_tokens" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"workspace_id" uuid NOT NULL,
	"token_hash" text NOT NULL,
	"prefix" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "workspaces" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"role" text,
	"parent_id" uuid,
	"runtime" text DEFAULT 'langgraph' NOT NULL,
	"model" text,
	"tier" integer DEFAULT 3 NOT NULL,
	"status" text DEFAULT 'provisioning' NOT NULL,
	"url" text,
	"delivery_mode" text DEFAULT 'push' NOT NULL,
	"agent_card" jsonb,
	"runtime_metadata" jsonb,
	"platform_inbound_secret" text,
	"last_heartbeat_at" timestamp with time zone,
	"last_error_rate" double precision DEFAULT 0 NOT NULL,
	"last_sample_error" text,
	"active_tasks" integer DEFAULT 0 NOT NULL,
	"max_concurrent_tasks" integer DEFAULT 1 NOT NULL,
	"uptime_seconds" integer DEFAULT 0 NOT NULL,
	"current_task" text,
	"budget_limit" bigint,
	"monthly_spend" bigint DEFAULT 0 NOT NULL,
	"workspace_dir" text,
	"workspace_access" text DEFAULT 'none' NOT NULL,
	"last_outbound_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "workspaces_status_check" CHECK ("workspaces"."status" IN ('provisioning', 'online', 'degraded', 'offline', 'paused', 'failed', 'removed', 'hibernating', 'hibernated', 'awaiting_agent')),
	CONSTRAINT "workspaces_delivery_mode_check" CHECK ("workspaces"."delivery_mode" IN ('push', 'poll')),
	CONSTRAINT "workspaces_workspace_access_check" CHECK ("workspaces"."workspace_access" IN ('none', 'read_only', 'read_write')),
	CONSTRAINT "workspaces_monthly_spend_check" CHECK ("workspaces"."monthly_spend" >= 0)
);
--> statement-breakpoint
ALTER TABLE "activity_logs" ADD CONSTRAINT "activity_logs_workspace_id_workspaces_id_fk" FOREIGN KEY ("workspace_id") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "secrets" ADD CONSTRAINT "secrets_workspace_id_workspaces_id_fk" FOREIGN KEY ("workspace_id") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "workspace_auth_tokens" ADD CONSTRAINT "workspace_auth_tokens_workspace_id_workspaces_id_fk" FOREIGN KEY ("workspace_id") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_parent_id_workspaces_id_fk" FOREIGN KEY ("parent_id") REFERENCES "public"."workspaces"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "activity_logs_ws_seq_idx" ON "activity_logs" USING btree ("workspace_id","seq");--> statement-breakpoint
CREATE INDEX "activity_logs_ws_created_idx" ON "activity_logs" USING btree ("workspace_id","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "activity_logs_ws_type_created_idx" ON "activity_logs" USING btree ("workspace_id","activity_type","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE UNIQUE INDEX "global_secrets_key_idx" ON "global_secrets" USING btree ("key");--> statement-breakpoint
CREATE UNIQUE INDEX "org_api_tokens_hash_idx" ON "org_api_tokens" USING btree ("token_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "secrets_workspace_key_idx" ON "secrets" USING btree ("workspace_id","key");--> statement-breakpoint
CREATE INDEX "structure_events_ws_created_idx" ON "structure_events" USING btree ("workspace_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "workspace_auth_tokens_hash_idx" ON "workspace_auth_tokens" USING btree ("token_hash");--> statement-breakpoint
CREATE INDEX "workspace_auth_tokens_live_idx" ON "workspace_auth_tokens" USING btree ("workspace_id") WHERE "workspace_auth_tokens"."revoked_at" IS NULL;--> statement-breakpoint
CREATE INDEX "workspaces_parent_id_idx" ON "workspaces" USING btree ("parent_id");--> statement-breakpoint
CREATE INDEX "workspaces_status_idx" ON "workspaces" USING btree ("status");