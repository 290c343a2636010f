import { z } from 'zod';
import { hashPassword } from '../../auth/passwords.js';
import { roles } from '../../auth/principal.js';
import type { Db } from '../../db/pg.js';
import { AppError } from '../../errors.js';
import { route } from '../route.js';

const listQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const newUser = z
  .strictObject({
    email: z.email().max(254),
    password: z.string().min(8).max(1024),
    role: z.enum(roles),
    displayName: z.string().trim().min(1).max(200),
    salesmanId: z.number().int().positive().optional(),
    clientId: z.number().int().positive().optional(),
  })
  .refine((u) => u.role !== 'salesman' || u.salesmanId !== undefined, { path: ['salesmanId'], message: 'required for role salesman' })
  .refine((u) => u.role !== 'client_app' || u.clientId !== undefined, { path: ['clientId'], message: 'required for role client_app' });

/** PostgreSQL error codes the insert can raise for caller mistakes. */
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';

/** Logins for standalone use (without an ERP issuing tokens): list and create. */
export function adminUserRoutes(db: Db) {
  return [
    route({
      method: 'GET',
      path: '/v1/admin/users',
      auth: ['admin', 'manager'],
      query: listQuery,
      async handler({ query }) {
        const users = await db.users.list(query.after, query.limit);
        const last = users.at(-1);
        return { body: { users, next: users.length === query.limit && last ? last.id : null } };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/admin/users',
      auth: ['admin'],
      body: newUser,
      async handler({ body }) {
        try {
          const user = await db.users.insert({
            email: body.email,
            passwordHash: await hashPassword(body.password),
            role: body.role,
            displayName: body.displayName,
            salesmanId: body.salesmanId ?? null,
            clientId: body.clientId ?? null,
          });
          return { status: 201, body: { user } };
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code === UNIQUE_VIOLATION) throw new AppError('conflict', `a user with e-mail ${body.email} exists`);
          if (code === FOREIGN_KEY_VIOLATION) throw new AppError('unprocessable', 'no such salesman or client');
          throw err;
        }
      },
    }),
  ];
}
