import type { Bindings } from '../src/env';

declare global {
  namespace Cloudflare {
    interface Env extends Bindings {
      LOOPBACK_URL: string;
      /** fast-check seed for every property test ('' = random); CI pins one. */
      FC_SEED: string;
    }
  }
}
