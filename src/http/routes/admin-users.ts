import { hashPassword } from '../../auth/passwords.js';
import type { UsersRepo } from '../../db/repos/users.js';
import { isUniqueConflict } from '../../db/errors.js';
import { AppError } from '../../errors.js';
import type { Model } from '../../model/model.js';
import { newUser, userCreated, usersListAnswer, usersListQuery } from '../../protocol/admin.js';
import { route } from '../route.js';

/**
 * Logins for standalone use (without an ERP issuing tokens): list and create. Who may is
 * the config's: roles with users:read list, roles with users:write create.
 */
export function adminUserRoutes(users: UsersRepo, model: Pick<Model, 'roles'>) {
  return [
    route({
      method: 'GET',
      path: '/v1/admin/users',
      tag: 'admin',
      summary: 'List logins',
      description: 'Standalone logins (fieldsync.users), by id, keyset-paginated: pass `next` as `after`.',
      auth: { permission: 'users:read' },
      query: usersListQuery,
      responses: { 200: { description: 'a page of logins', schema: usersListAnswer } },
      async handler({ query }) {
        const page = await users.list(query.after, query.limit);
        const last = page.at(-1);
        return { body: { users: page, next: page.length === query.limit && last ? last.id : null } };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/admin/users',
      tag: 'admin',
      summary: 'Create a login',
      description: "`role` is one of the sync config's roles and `claims` exactly what it declares, typed (a missing, mistyped or foreign claim is a 400 naming `claims.<name>`). 409: the e-mail is in use (any case).",
      auth: { permission: 'users:write' },
      body: newUser(model),
      responses: { 201: { description: 'the new login', schema: userCreated } },
      errors: ['conflict'],
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
