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
}

/** A stable text of a principal: cache keys of bucket sets and replies. */
export function principalKey(p: Principal): string {
  return `${p.userId}|${p.role}|${JSON.stringify(p.claims)}`;
}
