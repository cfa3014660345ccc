ALTER TABLE "workspace_auth_tokens" ADD COLUMN "origin" text DEFAULT 'issued' NOT NULL;--> statement-breakpoint
-- Racing first registrations could leave several live tokens: keep the one used most recently.
UPDATE "workspace_auth_tokens" t SET "revoked_at" = now()
 WHERE t."revoked_at" IS NULL
   AND EXISTS (
     SELECT 1 FROM "workspace_auth_tokens" o
      WHERE o."workspace_id" = t."workspace_id" AND o."revoked_at" IS NULL AND o."id" <> t."id"
        AND (coalesce(o."last_used_at", o."created_at"), o."id") > (coalesce(t."last_used_at", t."created_at"), t."id"));--> statement-breakpoint
CREATE UNIQUE INDEX "workspace_auth_tokens_one_issued_idx" ON "workspace_auth_tokens" USING btree ("workspace_id") WHERE "workspace_auth_tokens"."revoked_at" IS NULL AND "workspace_auth_tokens"."origin" = 'issued';--> statement-breakpoint
ALTER TABLE "workspace_auth_tokens" ADD CONSTRAINT "workspace_auth_tokens_origin_check" CHECK ("workspace_auth_tokens"."origin" IN ('issued', 'minted'));