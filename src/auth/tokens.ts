import {
  SignJWT,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
} from 'jose';
import { AppError } from '../errors.js';
import type { Model } from '../model/model.js';
import type { Principal } from './principal.js';

export interface TokenOptions {
  /** HS256 key; undefined when only ERP-issued tokens are accepted */
  secret: string | undefined;
  /** the secret being rotated out: HS256 tokens it signed verify until `until` (epoch ms) */
  previousSecret?: { secret: string; until: number } | undefined;
  jwksUrl: string | undefined;
  issuer: string;
  audience: string;
  ttlSeconds: number;
  /** the longest lifetime (exp - iat, or exp - now without iat) of a token accepted */
  maxLifetimeSeconds: number;
}

/** What tokens need of the model: the roles with their claims, and the token's claim names. */
export type TokenModel = Pick<Model, 'roles' | 'token'>;

/** Verified tokens kept (by their exact text) until they expire: bounded. */
const CACHE_MAX = 20_000;

interface Session {
  principal: Principal;
  /** epoch ms of the token's exp */
  expiresAt: number;
}

type ClaimType = 'int' | 'text';

/**
 * A claim value as its declared type, or undefined when it does not fit: int a positive
 * safe integer (ERP tokens often carry ids as digit strings: "7" is read as 7), text a
 * non-empty string (a number is read as its decimal text).
 */
export function claimValue(type: ClaimType, raw: unknown): string | number | undefined {
  if (type === 'int') {
    const n = typeof raw === 'string' && /^\d{1,16}$/.test(raw) ? Number(raw) : raw;
    return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : undefined;
  }
  if (typeof raw === 'number' && Number.isFinite(raw)) return String(raw);
  return typeof raw === 'string' && raw.trim() !== '' ? raw : undefined;
}

/**
 * A principal of a config role: every claim the role declares, read from `source` under
 * `nameOf(claim)` and typed. Claims the role does not declare are dropped. Answers the
 * problem (naming the claim and the role) instead of a principal when something is
 * missing or mistyped. Used for tokens and for standalone users' records alike, so a
 * login can never issue a token that would not verify.
 */
export function readPrincipal(
  model: TokenModel,
  user: { userId: string; role: string; source: Readonly<Record<string, unknown>> },
  nameOf: (claim: string) => string = (c) => c,
): { principal: Principal } | { problem: string } {
  const role = model.roles.get(user.role);
  if (!role) return { problem: `role "${user.role}" is not a role of this server` };
  const claims: Record<string, string | number> = {};
  const problems: string[] = [];
  for (const [claim, type] of Object.entries(role.claims)) {
    const name = nameOf(claim);
    const raw = Object.hasOwn(user.source, name) ? user.source[name] : undefined;
    const value = claimValue(type, raw);
    if (raw === undefined || raw === null) problems.push(`${name} is required for role ${role.name}`);
    else if (value === undefined) problems.push(`${name} must be ${type === 'int' ? 'a positive integer' : 'non-empty text'}`);
    else claims[claim] = value;
  }
  if (problems.length > 0) return { problem: problems.join('; ') };
  return { principal: { userId: user.userId, role: role.name, claims } };
}

/**
 * Issues fieldsync's own tokens (HS256) and verifies ours and the ERP's (JWKS).
 * Claims are read through the sync config's `token` section (README "token"): the user
 * from `userClaim`, the role from `roleClaim` through `roleMap`, each claim the role
 * declares from `claims[claim] ?? claim`. Our own tokens are written with the same names,
 * so they verify the same way as the ERP's.
 *
 * Every token must carry `exp`, and live at most `maxLifetimeSeconds`: a token that
 * never expires (or expires in ten years) cannot be revoked short of rotating the key,
 * so one leaked from a lost phone would stay good forever.
 *
 * A token verified once is remembered until its `exp`: a phone polling pull sends the
 * same token thousands of times, and verifying it (WebCrypto key import + HMAC) was
 * the largest cost of a no-change pull. The cache is keyed by the whole token, so a
 * token that differs by a bit is verified afresh; only tokens that passed every check
 * (lifetime included) enter it.
 */
export class Tokens {
  private readonly verified = new Map<string, Session>();
  private readonly key: Uint8Array | undefined;
  private readonly previousKey: { key: Uint8Array; until: number } | undefined;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  constructor(
    private readonly opts: TokenOptions,
    private readonly model: TokenModel,
  ) {
    this.key = opts.secret ? new TextEncoder().encode(opts.secret) : undefined;
    this.previousKey = opts.previousSecret && { key: new TextEncoder().encode(opts.previousSecret.secret), until: opts.previousSecret.until };
    this.jwks = opts.jwksUrl ? createRemoteJWKSet(new URL(opts.jwksUrl)) : undefined;
  }

  get canIssue(): boolean {
    return this.key !== undefined;
  }

  /**
   * A principal of a config role from a user id and raw claim values (by config claim
   * name), as a standalone user's record holds them; throws token-invalid naming the
   * problem when the role or its claims do not fit the config.
   */
  principal(userId: string, role: string, claims: Readonly<Record<string, unknown>>): Principal {
    const read = readPrincipal(this.model, { userId, role, source: claims });
    if ('problem' in read) throw new AppError('token-invalid', read.problem);
    return read.principal;
  }

  async issue(p: Principal): Promise<{ token: string; expiresAt: number }> {
    if (!this.key) throw new AppError('login-disabled');
    const payload = this.claimsOf(p);
    // the same rules as verify(): a token we issue always verifies, to the same principal
    const check = this.decode({ ...payload, sub: p.userId });
    if ('problem' in check || check.principal.role !== p.role) {
      throw new Error(`cannot issue a token for user ${p.userId} (${p.role}): ${'problem' in check ? check.problem : 'token.roleMap sends the role elsewhere'}`);
    }
    const expiresAt = Math.floor(Date.now() / 1000) + this.opts.ttlSeconds;
    const token = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(p.userId)
      .setIssuer(this.opts.issuer)
      .setAudience(this.opts.audience)
      .setIssuedAt()
      .setExpirationTime(expiresAt)
      .sign(this.key);
    return { token, expiresAt: expiresAt * 1000 };
  }

  /** Verifies and tells when the token expires (epoch ms). */
  async session(token: string): Promise<Session> {
    return this.cached(token) ?? this.check(token);
  }

  /** The principal of a token verified before and not yet expired; no crypto, no await. */
  peek(token: string): Principal | undefined {
    return this.cached(token)?.principal;
  }

  /** The principal of a valid token (see check); throws token-invalid, token-expired. */
  async verify(token: string): Promise<Principal> {
    return this.peek(token) ?? (await this.check(token)).principal;
  }

  private cached(token: string): Session | undefined {
    const hit = this.verified.get(token);
    return hit && Date.now() < hit.expiresAt ? hit : undefined;
  }

  /**
   * Verifies signature, expiry, issuer and audience, that `exp` is there and the
   * lifetime within bounds, then decodes the claims into a Principal and remembers it.
   * HS256 tokens are checked with our key; any other algorithm only against the JWKS,
   * so a token cannot pick a weaker path by choosing its own `alg`.
   */
  private async check(token: string): Promise<Session> {
    this.verified.delete(token);
    let payload: JWTPayload;
    try {
      const { alg } = decodeProtectedHeader(token);
      const claims = { issuer: this.opts.issuer, audience: this.opts.audience };
      if (alg === 'HS256' && this.key) {
        ({ payload } = await this.verifyHs256(token, claims));
      } else if (alg !== 'HS256' && alg !== 'none' && this.jwks) {
        ({ payload } = await jwtVerify(token, this.jwks, {
          ...claims,
          algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
        }));
      } else {
        throw new AppError('token-invalid', `tokens signed with ${String(alg)} are not accepted`);
      }
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new AppError('token-expired');
      if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JOSEError && err.code === 'ERR_JWKS_TIMEOUT') {
        throw new AppError('unavailable', 'the JWKS endpoint did not answer');
      }
      throw new AppError('token-invalid');
    }
    const exp = this.checkLifetime(payload);
    const decoded = this.decode(payload);
    if ('problem' in decoded) throw new AppError('token-invalid', `token claims: ${decoded.problem}`);
    const session = { principal: decoded.principal, expiresAt: exp * 1000 };
    if (this.verified.size >= CACHE_MAX) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, session);
    return session;
  }

  /**
   * HS256 with the current key, or, during a rotation's overlap, the previous one: a token
   * signed before the rotation stays good until the overlap ends (or it expires).
   */
  private async verifyHs256(token: string, claims: { issuer: string; audience: string }) {
    try {
      return await jwtVerify(token, this.key!, { ...claims, algorithms: ['HS256'] });
    } catch (err) {
      const previous = this.previousKey;
      if (!(err instanceof joseErrors.JWSSignatureVerificationFailed) || !previous || Date.now() >= previous.until) throw err;
      return jwtVerify(token, previous.key, { ...claims, algorithms: ['HS256'] });
    }
  }

  /**
   * The token's exp, once it is known to be there and not too far from its start: iat
   * when given (a token is judged by the lifetime it was issued with), but never later
   * than now, so a token cannot post-date its iat to look short-lived. jose has already
   * checked that exp, when present, is a number in the future.
   */
  private checkLifetime(payload: JWTPayload): number {
    if (payload.exp === undefined) throw new AppError('token-invalid', 'the token has no exp (expiry): every token must carry one');
    const now = Math.floor(Date.now() / 1000);
    const from = Math.min(payload.iat ?? now, now);
    const lifetime = payload.exp - from;
    if (lifetime > this.opts.maxLifetimeSeconds) {
      throw new AppError('token-invalid', `the token lives ${lifetime} s (exp - ${from === payload.iat ? 'iat' : 'now'}); at most ${this.opts.maxLifetimeSeconds} s are accepted`);
    }
    return payload.exp;
  }

  /** Verified claims -> principal, through the config's claim names and role map. */
  private decode(payload: Readonly<Record<string, unknown>>): { principal: Principal } | { problem: string } {
    const { userClaim, roleClaim, roleMap, claims } = this.model.token;
    const user = payload[userClaim];
    const userId = typeof user === 'string' ? user : typeof user === 'number' && Number.isSafeInteger(user) ? String(user) : '';
    if (userId === '') return { problem: `"${userClaim}" (the user id) is required` };
    const given = payload[roleClaim];
    if (typeof given !== 'string' || given === '') return { problem: `"${roleClaim}" (the role) is required` };
    const role = Object.hasOwn(roleMap, given) ? roleMap[given]! : given;
    if (!this.model.roles.has(role)) return { problem: `role "${given}" is not a role of this server` };
    const read = readPrincipal(this.model, { userId, role, source: payload }, (claim) => (Object.hasOwn(claims, claim) ? claims[claim]! : claim));
    // the OIDC `name` claim, shown by /v1/auth/me; never part of the scope
    const name = typeof payload.name === 'string' ? payload.name.trim().slice(0, 200) : '';
    if ('principal' in read && name !== '') read.principal.name = name;
    return read;
  }

  /** The role's claims of a principal under the token's names (sub is set apart). */
  private claimsOf(p: Principal): Record<string, unknown> {
    const { userClaim, roleClaim, claims } = this.model.token;
    const payload: Record<string, unknown> = { [roleClaim]: this.tokenRole(p.role) };
    if (userClaim !== 'sub') payload[userClaim] = p.userId;
    if (p.name !== undefined) payload.name = p.name;
    for (const claim of Object.keys(this.model.roles.get(p.role)?.claims ?? {})) {
      if (Object.hasOwn(p.claims, claim)) payload[Object.hasOwn(claims, claim) ? claims[claim]! : claim] = p.claims[claim];
    }
    return payload;
  }

  /**
   * The role name to write so that it maps back to `role`: the name itself unless the
   * role map sends that name elsewhere, then a name the map sends to `role`.
   */
  private tokenRole(role: string): string {
    const map = this.model.token.roleMap;
    if (!Object.hasOwn(map, role) || map[role] === role) return role;
    return Object.keys(map).find((given) => map[given] === role) ?? role;
  }
}
