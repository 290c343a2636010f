import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, RLWrapperTimeouts, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { AppError } from '../errors.js';

/** A fixed-window limit: `points` per `duration` seconds, per key. */
export interface LimitSpec {
  /** part of every key: login_ip, login_email, socket_ip */
  name: string;
  points: number;
  duration: number;
}

export type MakeLimiter = (spec: LimitSpec) => RateLimiterAbstract;

/** A Redis call slower than this counts as an outage: the limit is kept in memory instead. */
const REDIS_TIMEOUT_MS = 500;

/**
 * Limiters shared by every process on one Redis (REDIS_URL), so a limit per IP is one
 * limit however many replicas the load balancer spreads the attempts over; in memory
 * when there is no Redis. Keys are `<namespace>:limit:<name>:<key>` (the namespace
 * carries the deployment and database name) and expire with their window.
 *
 * A Redis that is down, reconnecting or too slow must neither refuse logins (a 500)
 * nor stop limiting them: each limiter then counts in this process's memory (its
 * insurance limiter) until Redis answers again, so each process allows the limit by
 * itself meanwhile.
 */
export function limiters(redis: Redis | undefined, namespace: string): MakeLimiter {
  return ({ name, points, duration }) => {
    const memory = new RateLimiterMemory({ keyPrefix: name, points, duration });
    if (!redis) return memory;
    const shared = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${namespace}:limit:${name}`,
      points,
      duration,
      rejectIfRedisNotReady: true, // straight to memory while reconnecting, no queueing
      insuranceLimiter: memory,
    });
    // the wrapper falls back to the limiter's own insurance on a timeout
    return new RLWrapperTimeouts({ limiter: shared, timeoutMs: REDIS_TIMEOUT_MS });
  };
}

/**
 * A limiter's refusal as the 429 the caller sees (HTTP and the Socket.IO handshake alike),
 * with Retry-After in whole seconds (at least 1); anything else a limiter throws, as it is.
 */
export function refusal(res: unknown, what: string): unknown {
  if (!(res instanceof RateLimiterRes)) return res;
  const seconds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
  return new AppError('rate-limited', `Too many ${what}; retry in ${seconds} s`, { headers: { 'Retry-After': String(seconds) } });
}
