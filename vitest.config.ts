import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: './wrangler.toml' },
      miniflare: {
        bindings: {
          DATABASE_URL: inject('databaseUrl'),
          NEON_WS_PROXY: inject('wsProxy'),
          ADMIN_TOKEN: 'test-admin-token',
          SECRETS_ENCRYPTION_KEY: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=',
          // Dev mode is what lets the loopback test agents through the SSRF guard.
          MOLECULE_ENV: 'development',
          // test/support/fake-provisioner.ts; wrangler.toml's MOLECULE_DEPLOY_MODE (saas) picks the ec2 backend.
          PROVISIONER_URL: `http://127.0.0.1:${inject('provisionerPort')}`,
          PROVISIONER_SECRET: 'test-provisioner-secret',
          LOOPBACK_URL: `http://127.0.0.1:${inject('loopbackPort')}`,
          FC_SEED: process.env.FC_SEED ?? (process.env.CI ? '20261126' : ''),
        },
      },
    })),
  ],
  test: {
    globalSetup: ['./test/global-setup.ts'],
    setupFiles: ['./test/setup-fast-check.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      // The Worker, in workerd, with the database and loopback peers above.
      { extends: true, test: { name: 'worker' } },
      // provisioner-agent: plain Node (dockerode, the AWS SDK), none of the Worker's setup.
      {
        extends: false,
        test: {
          name: 'provisioner-agent',
          environment: 'node',
          include: ['provisioner-agent/test/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
