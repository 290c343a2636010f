import type { IBaseProtocol } from 'pg-promise';
import { sqlFile } from '../sql.js';

export const roles = ['admin', 'manager', 'salesman', 'client_app', 'warehouse', 'driver'] as const;
export type Role = (typeof roles)[number];

export interface UserRow {
  id: number;
  email: string;
  password_hash: string | null;
  role: Role;
  display_name: string;
  salesman_id: number | null;
  client_id: number | null;
}

const q = {
  findByEmail: sqlFile('users/find-by-email.sql'),
};

export class UsersRepo {
  constructor(private readonly db: IBaseProtocol<unknown>) {}

  /** An active user by e-mail (case-insensitive), or null. */
  findByEmail(email: string): Promise<UserRow | null> {
    return this.db.oneOrNone<UserRow>(q.findByEmail, { email });
  }
}
