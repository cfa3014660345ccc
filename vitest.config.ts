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
          // The real provisioner-agent on a Docker Engine double (test/support/provisioner-control.ts),
          // on its docker backend: self-hosted (wrangler.toml says saas, i.e. ec2). Tests of the
          // ec2 branch and of the saas URL policy pass the mode explicitly.
          MOLECULE_DEPLOY_MODE: 'self-hosted',
          PROVISIONER_URL: `http://127.0.0.1:${inject('provisionerPort')}`,
          PROVISIONER_SECRET: inject('provisionerSecret'),
          // What agents are started with (platform_url); the agent refuses a start without one.
          EXTERNAL_PLATFORM_URL: 'http://edge.test',
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
