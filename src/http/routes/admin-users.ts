import { z } from 'zod';
import { hashPassword } from '../../auth/passwords.js';
import type { UsersRepo } from '../../db/repos/users.js';
import { isUniqueConflict } from '../../db/errors.js';
import { AppError } from '../../errors.js';
import type { Model, Role } from '../../model/model.js';
import { route } from '../route.js';

const listQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

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

/** The body of POST /v1/admin/users: the role one of the config's, the claims what it declares. */
function newUser(model: Pick<Model, 'roles'>) {
  const roles = [...model.roles.keys()];
  return z
    .strictObject({
      email: z.email().max(254),
      password: z.string().min(8).max(1024),
      role: z.string().refine((r) => model.roles.has(r), { message: `one of ${roles.join(', ')}` }),
      displayName: z.string().trim().min(1).max(200),
      claims: z.record(z.string(), z.unknown()).default({}),
    })
    .transform((u, ctx) => ({ ...u, claims: checkClaims(model.roles.get(u.role)!, u.claims, ctx) }));
}


/**
 * Logins for standalone use (without an ERP issuing tokens): list and create. Who may is
 * the config's: roles with users:read list, roles with users:write create.
 */
export function adminUserRoutes(users: UsersRepo, model: Pick<Model, 'roles'>) {
  return [
    route({
      method: 'GET',
      path: '/v1/admin/users',
      auth: { permission: 'users:read' },
      query: listQuery,
      async handler({ query }) {
        const page = await users.list(query.after, query.limit);
        const last = page.at(-1);
        return { body: { users: page, next: page.length === query.limit && last ? last.id : null } };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/admin/users',
      auth: { permission: 'users:write' },
      body: newUser(model),
      async handler({ body }) {
        try {
          const user = await users.insert({
            email: body.email,
            passwordHash: await hashPassword(body.password),
            role: body.role,
            displayName: body.displayName,
            claims: body.claims,
          });
          return { status: 201, body: { user } };
        } catch (err) {
          // the e-mail is taken (users_email, any case): said in words, not PostgreSQL's
          if (isUniqueConflict(err)) throw new AppError('conflict', `a user with e-mail ${body.email} exists`);
          throw err;
        }
      },
    }),
  ];
}
