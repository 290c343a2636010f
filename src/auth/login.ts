import { RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Db } from '../db/pg.js';
import type { UserRow } from '../db/repos/users.js';
import { AppError } from '../errors.js';
import { DUMMY_HASH, verifyPassword } from './passwords.js';
import type { Principal } from './principal.js';
import type { Tokens } from './tokens.js';

export interface LoginLimits {
  maxPerIp: number;
  maxFailuresPerEmail: number;
}

export interface LoginResult {
  token: string;
  expiresAt: number;
  user: { id: number; role: Principal['role']; name: string; salesmanId?: number; clientId?: number };
}

function tooMany(res: RateLimiterRes): AppError {
  const seconds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
  return new AppError('rate-limited', `Too many login attempts; retry in ${seconds} s`, {
    headers: { 'Retry-After': String(seconds) },
  });
}

/**
 * Password login with two limits (rate-limiter-flexible's "login endpoint protection"):
 * every attempt counts against the client IP (per minute), and failures count against the
 * e-mail (per 15 minutes, reset by a success), so one attacker cannot lock a salesman out
 * by guessing from many IPs without also being slowed per IP. In memory for now; the
 * limiters take any rate-limiter-flexible store, so Redis drops in for several replicas.
 */
export class LoginService {
  private readonly perIp: RateLimiterAbstract;
  private readonly perEmail: RateLimiterAbstract;

  constructor(
    private readonly db: Db,
    private readonly tokens: Tokens,
    limits: LoginLimits,
  ) {
    this.perIp = new RateLimiterMemory({ keyPrefix: 'login_ip', points: limits.maxPerIp, duration: 60 });
    this.perEmail = new RateLimiterMemory({ keyPrefix: 'login_email', points: limits.maxFailuresPerEmail, duration: 15 * 60 });
  }

  async login(email: string, password: string, ip: string): Promise<LoginResult> {
    if (!this.tokens.canIssue) throw new AppError('login-disabled');
    const key = email.toLowerCase();
    try {
      await this.perIp.consume(ip);
    } catch (res) {
      if (res instanceof RateLimiterRes) throw tooMany(res);
      throw res;
    }
    const failures = await this.perEmail.get(key);
    if (failures && failures.remainingPoints <= 0) throw tooMany(failures);

    const user = await this.db.users.findByEmail(email);
    // Verify against a dummy hash for unknown e-mails: same cost, no user enumeration.
    const ok = await verifyPassword(password, user?.password_hash ?? DUMMY_HASH);
    if (!user || !ok) {
      await this.perEmail.penalty(key, 1);
      throw new AppError('invalid-credentials');
    }
    await this.perEmail.delete(key);
    return this.issue(user);
  }

  private async issue(user: UserRow): Promise<LoginResult> {
    const principal: Principal = {
      userId: user.id,
      role: user.role,
      ...(user.salesman_id !== null && { salesmanId: user.salesman_id }),
      ...(user.client_id !== null && { clientId: user.client_id }),
    };
    const { token, expiresAt } = await this.tokens.issue(principal);
    return {
      token,
      expiresAt,
      user: {
        id: user.id,
        role: user.role,
        name: user.display_name,
        ...(principal.salesmanId !== undefined && { salesmanId: principal.salesmanId }),
        ...(principal.clientId !== undefined && { clientId: principal.clientId }),
      },
    };
  }
}
