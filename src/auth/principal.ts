import { z } from 'zod';
import { roles, type Role } from '../db/repos/users.js';

export { roles, type Role };

/** Who is calling: decoded from a verified token, never from the request body. */
export interface Principal {
  userId: number;
  role: Role;
  /** set for role salesman */
  salesmanId?: number;
  /** set for role client_app */
  clientId?: number;
}

const id = z.coerce.number().int().positive();

/**
 * Claims fieldsync issues and expects from ERP-issued tokens:
 * `sub` (user id), `role`, and `salesmanId` / `clientId` where the role needs them.
 */
export const principalClaims = z
  .object({
    sub: id,
    role: z.enum(roles),
    salesmanId: id.optional(),
    clientId: id.optional(),
  })
  .refine((c) => c.role !== 'salesman' || c.salesmanId !== undefined, 'a salesman token needs salesmanId')
  .refine((c) => c.role !== 'client_app' || c.clientId !== undefined, 'a client_app token needs clientId')
  .transform(
    (c): Principal => ({
      userId: c.sub,
      role: c.role,
      ...(c.salesmanId !== undefined && { salesmanId: c.salesmanId }),
      ...(c.clientId !== undefined && { clientId: c.clientId }),
    }),
  );
