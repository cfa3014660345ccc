import { effectiveTier } from '../agent-env.ts';

// Tier → container limits (SPEC §17). 0 and unknown tiers get tier 2. Tier 1 keeps the tier 2
// budget (the spec gives it none) and adds a read-only root with a 64 MB /tmp.

export interface TierSettings {
  tier: number;
  memoryMb: number;
  cpuShares: number;
  readonlyRootfs: boolean;
  privileged: boolean;
  hostPid: boolean;
  hostNetwork: boolean;
  dockerSocket: boolean;
}

const CPU_SHARES_PER_CPU = 1024;

const BASE: Record<number, Omit<TierSettings, 'tier'>> = {
  1: { memoryMb: 512, cpuShares: 1 * CPU_SHARES_PER_CPU, readonlyRootfs: true, privileged: false, hostPid: false, hostNetwork: false, dockerSocket: false },
  2: { memoryMb: 512, cpuShares: 1 * CPU_SHARES_PER_CPU, readonlyRootfs: false, privileged: false, hostPid: false, hostNetwork: false, dockerSocket: false },
  3: { memoryMb: 2048, cpuShares: 2 * CPU_SHARES_PER_CPU, readonlyRootfs: false, privileged: true, hostPid: true, hostNetwork: false, dockerSocket: false },
  4: { memoryMb: 4096, cpuShares: 4 * CPU_SHARES_PER_CPU, readonlyRootfs: false, privileged: true, hostPid: true, hostNetwork: true, dockerSocket: true },
};

/** `TIERn_MEMORY_MB` / `TIERn_CPU_SHARES`, validated once at startup. */
export type TierOverrides = Record<number, { memoryMb?: number; cpuShares?: number }>;

export function tierOverridesFromEnv(env: Record<string, string | undefined>): TierOverrides {
  const overrides: TierOverrides = {};
  for (const tier of [1, 2, 3, 4]) {
    const memoryMb = positiveInt(env, `TIER${tier}_MEMORY_MB`);
    const cpuShares = positiveInt(env, `TIER${tier}_CPU_SHARES`);
    if (memoryMb !== undefined || cpuShares !== undefined) overrides[tier] = { memoryMb, cpuShares };
  }
  return overrides;
}

function positiveInt(env: Record<string, string | undefined>, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^[1-9][0-9]{0,6}$/.test(raw)) throw new Error(`${name} must be a positive integer`);
  return Number(raw);
}

export function tierSettings(requested: number, overrides: TierOverrides = {}): TierSettings {
  const tier = effectiveTier(requested);
  return { tier, ...BASE[tier]!, ...definedOnly(overrides[tier] ?? {}) };
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export const cpuSharesToNanoCpus = (shares: number) => Math.round((shares / CPU_SHARES_PER_CPU) * 1e9);
