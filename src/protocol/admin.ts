import { z } from 'zod';
import type { Model, Role } from '../model/model.js';

/** GET /v1/admin/users: keyset pages by id. */
export const usersListQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0).meta({ description: 'the previous page\'s `next` (0: the first page)' }),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

/** A login as admins see it: never the password hash. */
export const userView = z
  .object({
    id: z.number().int(),
    email: z.string(),
    role: z.string(),
    displayName: z.string(),
    claims: z.record(z.string(), z.unknown()),
    active: z.boolean(),
    createdAt: z.iso.datetime({ offset: true }).meta({ description: 'ISO 8601' }),
  })
  .meta({ id: 'User' });
/** The row as the database gives it (createdAt a Date, written as ISO 8601). */
export type UserView = Omit<z.output<typeof userView>, 'createdAt'> & { createdAt: Date };

export const usersListAnswer = z
  .object({ users: z.array(userView), next: z.number().int().nullable().meta({ description: 'pass as `after` for the next page; null: the last page' }) })
  .meta({ id: 'UserList' });

export const userCreated = z.object({ user: userView }).meta({ id: 'UserCreated' });

const POSITIVE = 'a positive integer';
const claimSchemas = {
  int: z.number({ error: POSITIVE }).int(POSITIVE).positive(POSITIVE).max(Number.MAX_SAFE_INTEGER, POSITIVE),
  text: z.string({ error: 'non-empty text' }).trim().min(1, 'non-empty text').max(200),
} as const;

/**
 * Checks claims against what the role declares: each declared claim present and typed,
 * nothing else. The claims become the user's token claims, which the role's bucket
 * parameter queries read, so a login can never be made that could not sync.
 */
function checkClaims(role: Role, claims: Record<string, unknown>, ctx: z.RefinementCtx): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [claim, type] of Object.entries(role.claims)) {
    if (!Object.hasOwn(claims, claim)) {
      ctx.addIssue({ code: 'custom', path: ['claims', claim], message: `required for role ${role.name}` });
      continue;
    }
    const parsed = claimSchemas[type].safeParse(claims[claim]);
    if (parsed.success) out[claim] = parsed.data;
    else ctx.addIssue({ code: 'custom', path: ['claims', claim], message: parsed.error.issues[0]?.message ?? `must be ${type}` });
  }
  for (const claim of Object.keys(claims)) {
    if (!Object.hasOwn(role.claims, claim)) ctx.addIssue({ code: 'custom', path: ['claims', claim], message: `not a claim of role ${role.name}` });
  }
  return out;
}

/** POST /v1/admin/users: the role one of the config's, the claims what it declares. */
export function newUser(model: Pick<Model, 'roles'>) {
  const roles = [...model.roles.keys()] as [string, ...string[]];
  return z
    .strictObject({
      email: z.email().max(254),
      password: z.string().min(8).max(1024),
      role: z.string().refine((r) => model.roles.has(r), { message: `one of ${roles.join(', ')}` }).meta({ enum: roles }),
      displayName: z.string().trim().min(1).max(200),
      claims: z.record(z.string(), z.unknown()).default({}).meta({ description: "exactly the claims the role declares, typed (the demo's salesman: {salesmanId: <int>})" }),
    })
    .transform((u, ctx) => ({ ...u, claims: checkClaims(model.roles.get(u.role)!, u.claims, ctx) }))
    .meta({ id: 'NewUser' });
}
