import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { refusal, type MakeLimiter } from '../cache/limiter.js';
import type { UserRow, UsersRepo } from '../db/repos/users.js';
import { AppError } from '../errors.js';
import { DUMMY_HASH, verifyPassword } from './passwords.js';
import { sessionUser, type Principal } from './principal.js';
import type { LoginAnswer } from '../protocol/auth.js';
import type { Tokens } from './tokens.js';

export interface LoginLimits {
  maxPerIp: number;
  maxFailuresPerEmail: number;
}

export type LoginResult = LoginAnswer;

/**
 * Password login with two limits (rate-limiter-flexible's "login endpoint protection"):
 * every attempt counts against the client IP (per minute), and failures count against the
 * e-mail (per 15 minutes, reset by a success), so one attacker cannot lock a salesman out
 * by guessing from many IPs without also being slowed per IP. Both are shared through
 * Redis when there is one (see limiters), so replicas enforce one limit together.
 */
export class LoginService {
  private readonly perIp: RateLimiterAbstract;
  private readonly perEmail: RateLimiterAbstract;

  constructor(
    private readonly users: UsersRepo,
    private readonly tokens: Tokens,
    limits: LoginLimits,
    limiter: MakeLimiter,
  ) {
    this.perIp = limiter({ name: 'login_ip', points: limits.maxPerIp, duration: 60 });
    this.perEmail = limiter({ name: 'login_email', points: limits.maxFailuresPerEmail, duration: 15 * 60 });
  }

  async login(email: string, password: string, ip: string): Promise<LoginResult> {
    if (!this.tokens.canIssue) throw new AppError('login-disabled');
    const key = email.toLowerCase();
    await this.perIp.consume(ip).catch((res: unknown) => {
      throw refusal(res, 'login attempts');
    });
    const failures = await this.perEmail.get(key);
    if (failures && failures.remainingPoints <= 0) throw refusal(failures, 'login attempts');

    const user = await this.users.findByEmail(email);
    // Verify against a dummy hash for unknown e-mails: same cost, no user enumeration.
    const ok = await verifyPassword(password, user?.password_hash ?? DUMMY_HASH);
    if (!user || !ok) {
      await this.perEmail.penalty(key, 1);
      throw new AppError('invalid-credentials');
    }
    await this.perEmail.delete(key);
    return this.issue(user);
  }

  /**
   * The token of a user whose password matched. A record the sync config no longer fits
   * (its role removed, a claim the role now needs missing) is refused with 403 naming
   * why, rather than issuing a token that every later request would refuse.
   */
  private async issue(user: UserRow): Promise<LoginResult> {
    let principal: Principal;
    try {
      principal = { ...this.tokens.principal(String(user.id), user.role, user.claims), name: user.display_name };
    } catch (err) {
      if (err instanceof AppError && err.code === 'token-invalid') throw new AppError('forbidden', `this login cannot be used: ${err.message}`);
      throw err;
    }
    const { token, expiresAt } = await this.tokens.issue(principal);
    return { token, expiresAt, user: sessionUser(principal) };
  }
}
