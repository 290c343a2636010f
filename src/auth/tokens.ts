import {
  SignJWT,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
} from 'jose';
import { AppError } from '../errors.js';
import { principalClaims, type Principal } from './principal.js';

export interface TokenOptions {
  /** HS256 key; undefined when only ERP-issued tokens are accepted */
  secret: string | undefined;
  jwksUrl: string | undefined;
  issuer: string;
  audience: string;
  ttlSeconds: number;
}

/** Verified tokens kept (by their exact text) until they expire: bounded. */
const CACHE_MAX = 20_000;

/**
 * Issues fieldsync's own tokens (HS256) and verifies ours and the ERP's (JWKS).
 * A token verified once is remembered until its `exp`: a phone polling pull sends the
 * same token thousands of times, and verifying it (WebCrypto key import + HMAC) was
 * the largest cost of a no-change pull. The cache is keyed by the whole token, so a
 * token that differs by a bit is verified afresh.
 */
export class Tokens {
  private readonly verified = new Map<string, { principal: Principal; expiresAt: number }>();
  private readonly key: Uint8Array | undefined;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  constructor(private readonly opts: TokenOptions) {
    this.key = opts.secret ? new TextEncoder().encode(opts.secret) : undefined;
    this.jwks = opts.jwksUrl ? createRemoteJWKSet(new URL(opts.jwksUrl)) : undefined;
  }

  get canIssue(): boolean {
    return this.key !== undefined;
  }

  async issue(p: Principal): Promise<{ token: string; expiresAt: number }> {
    if (!this.key) throw new AppError('login-disabled');
    const expiresAt = Math.floor(Date.now() / 1000) + this.opts.ttlSeconds;
    const token = await new SignJWT({
      role: p.role,
      ...(p.salesmanId !== undefined && { salesmanId: p.salesmanId }),
      ...(p.clientId !== undefined && { clientId: p.clientId }),
    })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(String(p.userId))
      .setIssuer(this.opts.issuer)
      .setAudience(this.opts.audience)
      .setIssuedAt()
      .setExpirationTime(expiresAt)
      .sign(this.key);
    return { token, expiresAt: expiresAt * 1000 };
  }

  /**
   * Verifies signature, expiry, issuer and audience, then decodes the claims into a
   * Principal. HS256 tokens are checked with our key; any other algorithm only against
   * the JWKS, so a token cannot pick a weaker path by choosing its own `alg`.
   */
  /** Verifies and tells when the token expires (epoch ms; MAX_SAFE_INTEGER without exp). */
  async session(token: string): Promise<{ principal: Principal; expiresAt: number }> {
    const principal = await this.verify(token);
    return { principal, expiresAt: this.verified.get(token)?.expiresAt ?? Number.MAX_SAFE_INTEGER };
  }

  /** The principal of a token verified before and not yet expired; no crypto, no await. */
  peek(token: string): Principal | undefined {
    const hit = this.verified.get(token);
    if (hit && Date.now() < hit.expiresAt) return hit.principal;
    return undefined;
  }

  async verify(token: string): Promise<Principal> {
    const hit = this.peek(token);
    if (hit) return hit;
    this.verified.delete(token);
    let payload: JWTPayload;
    try {
      const { alg } = decodeProtectedHeader(token);
      const claims = { issuer: this.opts.issuer, audience: this.opts.audience };
      if (alg === 'HS256' && this.key) {
        ({ payload } = await jwtVerify(token, this.key, { ...claims, algorithms: ['HS256'] }));
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
    const claims = principalClaims.safeParse(payload);
    if (!claims.success) {
      throw new AppError('token-invalid', `token claims: ${claims.error.issues.map((i) => i.message).join('; ')}`);
    }
    if (payload.exp !== undefined) {
      if (this.verified.size >= CACHE_MAX) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { principal: claims.data, expiresAt: payload.exp * 1000 });
    }
    return claims.data;
  }
}
