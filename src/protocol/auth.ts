import { z } from 'zod';

/** POST /v1/auth/login. */
export const loginBody = z
  .strictObject({
    email: z.email().max(254),
    password: z.string().min(1).max(1024),
  })
  .meta({ id: 'LoginRequest' });

/** A role's claims, by the sync config's claim names (the demo's salesman: {salesmanId: 1}). */
export const claims = z.record(z.string(), z.union([z.string(), z.number()])).meta({
  description: "what the user's role declares in the sync config (the demo's salesman carries salesmanId, its client app clientId); they scope everything the user sees",
  example: { salesmanId: 1 },
});

/**
 * The caller, the same shape from login and /v1/auth/me: the user id as text (an ERP's
 * `sub` may be any text), the role, the display name (null when a token carries none)
 * and the role's claims.
 */
export const sessionUser = z
  .object({
    id: z.string().meta({ description: "the user id as text (fieldsync's own logins: the decimal id)", example: '3' }),
    role: z.string().meta({ description: 'a role of the sync config', example: 'salesman' }),
    name: z.string().nullable().meta({ description: "display name (the token's `name` claim; null when it has none)" }),
    claims,
  })
  .meta({ id: 'SessionUser' });
export type SessionUser = z.output<typeof sessionUser>;

export const loginAnswer = z
  .object({
    token: z.string().meta({ description: 'a JWT: send it as `Authorization: Bearer <token>`' }),
    expiresAt: z.number().int().meta({ description: 'when the token expires, epoch milliseconds' }),
    user: sessionUser,
  })
  .meta({ id: 'LoginAnswer' });
export type LoginAnswer = z.output<typeof loginAnswer>;

export const meAnswer = z.object({ user: sessionUser }).meta({ id: 'MeAnswer' });
