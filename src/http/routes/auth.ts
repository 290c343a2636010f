import { z } from 'zod';
import type { LoginService } from '../../auth/login.js';
import { route } from '../route.js';

const loginBody = z.strictObject({
  email: z.email().max(254),
  password: z.string().min(1).max(1024),
});

/**
 * POST /v1/auth/login (standalone users: {token, expiresAt, user: {id, role, name, claims}})
 * and GET /v1/auth/me (the caller as its token says: {user: {userId, role, claims}}).
 */
export function authRoutes(login: LoginService) {
  return [
    route({
      method: 'POST',
      path: '/v1/auth/login',
      auth: 'public',
      body: loginBody,
      async handler({ body, ctx }) {
        return { body: await login.login(body.email, body.password, ctx.ip), headers: { 'Cache-Control': 'no-store' } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/auth/me',
      auth: 'any',
      handler({ principal }) {
        return { body: { user: principal } };
      },
    }),
  ];
}
