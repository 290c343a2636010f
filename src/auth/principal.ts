import type { SessionUser } from '../protocol/auth.js';

/**
 * Who is calling: decoded from a verified token (src/auth/tokens.ts), never from the
 * request body. The role and its claims are the sync config's (roles.<role>.claims):
 * the demo's salesman carries `salesmanId`, its client app `clientId`.
 */
export interface Principal {
  /** the token's user claim (`sub` by default), as text */
  userId: string;
  role: string;
  claims: Readonly<Record<string, string | number>>;
  /** display name: the token's `name` claim (fieldsync writes the user's display name there) */
  name?: string;
}

/** The caller as the API shows it (login and /v1/auth/me alike). */
export function sessionUser(p: Principal): SessionUser {
  return { id: p.userId, role: p.role, name: p.name ?? null, claims: { ...p.claims } };
}

const keys = new WeakMap<Principal, string>();

/**
 * A stable text of a principal: cache keys of bucket sets and replies. Memoized per
 * object: a verified token's principal is kept by Tokens, so a polling device's
 * no-change pull builds it once, not on every request.
 */
export function principalKey(p: Principal): string {
  let key = keys.get(p);
  if (key === undefined) keys.set(p, (key = `${p.userId}|${p.role}|${JSON.stringify(p.claims)}`));
  return key;
}
