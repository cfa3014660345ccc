// Property tests explore with a fresh random seed on every local run (fast-check prints the seed of
// a failure, so it can be replayed with FC_SEED=<seed> npm test). CI pins one seed so that a
// green commit stays green: exploration happens where someone can act on what it finds.
import { env } from 'cloudflare:test';
import fc from 'fast-check';

if (env.FC_SEED) fc.configureGlobal({ seed: Number(env.FC_SEED) });
