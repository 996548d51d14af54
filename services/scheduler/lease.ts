// The scheduler leader lease: SET NX PX (with the fencing epoch INCR in the same Lua call), renewed and released
// by Lua compare-and-set, so only the holder can extend or drop it.
import type { RedisClient } from '../client/queues.ts';
import { clusterKeys, type ClusterKeys } from '../../contracts/cluster.ts';

// KEYS[1] lease, KEYS[2] epoch; ARGV[1] holder, ARGV[2] lease ms. Returns the new epoch, or 0 if held by another.
const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0`;
// KEYS[1] lease; ARGV[1] holder, ARGV[2] lease ms. 1 if still ours and extended, else 0.
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

// KEYS[1] lease, KEYS[2] epoch; ARGV[1] holder, ARGV[2] wanted epoch. Raises the epoch to at least ARGV[2] if the
// lease is still ours; returns the epoch (or 0 if the lease is not ours).
const RAISE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local want = tonumber(ARGV[2])
if cur < want then
  redis.call('SET', KEYS[2], want)
  cur = want
end
return cur`;

export interface LeaseOptions {
  /** Key prefix. @defaultValue "{swapserve}" */
  prefix?: string;
  /** Lease time (ms): a standby takes over at most this long after the leader stops renewing. @defaultValue 5000 */
  leaseMs?: number;
  /**
   * Safety margin (ms) subtracted from the lease locally, for clock drift between this process and Redis:
   * the holder stops acting this long before the lease can expire in Redis. @defaultValue leaseMs / 10
   */
  driftMs?: number;
}

/** One scheduler's view of the lease. */
export class LeaderLease {
  readonly keys: ClusterKeys;
  readonly leaseMs: number;
  private readonly driftMs: number;
  /** Until when (local monotonic ms) we may act as leader; 0 when not leader. */
  private validUntil = 0;
  private epochValue = 0;

  constructor(private readonly redis: RedisClient, readonly holder: string, options: LeaseOptions = {}) {
    this.keys = clusterKeys(options.prefix);
    this.leaseMs = options.leaseMs ?? 5000;
    this.driftMs = options.driftMs ?? Math.ceil(this.leaseMs / 10);
  }

  /** The fencing epoch of our current (or last) term. */
  get epoch(): number {
    return this.epochValue;
  }

  /** Whether we hold the lease at local monotonic time `now` (performance.now()). */
  isLeader(now: number): boolean {
    return now < this.validUntil;
  }

  /** Tries to take the lease; returns the new epoch, or 0 if another holder has it. */
  async tryAcquire(now: () => number): Promise<number> {
    const start = now();
    const epoch = Number(await this.redis.eval(ACQUIRE, 2, this.keys.leader(), this.keys.epoch(), this.holder, String(this.leaseMs)));
    if (epoch > 0) {
      this.epochValue = epoch;
      this.validUntil = start + this.leaseMs - this.driftMs;
    }
    return epoch;
  }

  /** Extends the lease if it is still ours; false (and no longer leader) otherwise. */
  async renew(now: () => number): Promise<boolean> {
    const start = now();
    const ok = Number(await this.redis.eval(RENEW, 1, this.keys.leader(), this.holder, String(this.leaseMs))) === 1;
    if (ok) this.validUntil = start + this.leaseMs - this.driftMs;
    else this.validUntil = 0;
    return ok;
  }

  /**
   * Raises our epoch to at least `atLeast` while we hold the lease. Needed when workers have accepted a higher
   * epoch than Redis now holds (Redis restarted without its data): they would refuse every command as stale.
   * Returns the epoch in force (unchanged if the lease is no longer ours).
   */
  async raiseEpoch(atLeast: number): Promise<number> {
    const epoch = Number(await this.redis.eval(RAISE, 2, this.keys.leader(), this.keys.epoch(), this.holder, String(atLeast)));
    if (epoch > this.epochValue) this.epochValue = epoch;
    return this.epochValue;
  }

  /** Gives the lease up (only if ours), so a standby takes over at once. */
  async release(): Promise<void> {
    this.validUntil = 0;
    await this.redis.eval(RELEASE, 1, this.keys.leader(), this.holder);
  }

  /** Stops acting as leader locally (e.g. after a failed renew). */
  stepDown(): void {
    this.validUntil = 0;
  }
}
