import type { LoginService } from '../../auth/login.js';
import { sessionUser } from '../../auth/principal.js';
import { loginAnswer, loginBody, meAnswer } from '../../protocol/auth.js';
import { route } from '../route.js';

/** Login (standalone users) and the caller as its token says; both answer the same user shape. */
export function authRoutes(login: LoginService) {
  return [
    route({
      method: 'POST',
      path: '/v1/auth/login',
      tag: 'auth',
      summary: 'Log in with e-mail and password',
      description:
        "A token for a standalone login (fieldsync.users). Rate limited per IP (LOGIN_MAX_PER_IP a minute) and per e-mail (LOGIN_MAX_FAILURES_PER_EMAIL failures in 15 minutes). Unknown e-mail and wrong password answer the same 401. A login whose stored role or claims no longer fit the sync config is refused with 403.",
      auth: 'public',
      body: loginBody,
      responses: { 200: { description: 'the token and the user', schema: loginAnswer } },
      errors: ['invalid-credentials', 'forbidden', 'rate-limited', 'login-disabled'],
      async handler({ body, ctx }) {
        return { body: await login.login(body.email, body.password, ctx.ip), headers: { 'Cache-Control': 'no-store' } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/auth/me',
      tag: 'auth',
      summary: 'The caller, as its token says',
      description: "Any valid token, fieldsync's or the ERP's: the same user shape as login's answer.",
      auth: 'any',
      responses: { 200: { description: 'the caller', schema: meAnswer } },
      handler({ principal }) {
        return { body: { user: sessionUser(principal!) } };
      },
    }),
  ];
}
