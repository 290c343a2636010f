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

/** A user as admins see it: never the password hash. */
export interface UserView {
  id: number;
  email: string;
  role: Role;
  display_name: string;
  salesman_id: number | null;
  client_id: number | null;
  is_active: boolean;
  created_at: Date;
}

export interface NewUser {
  email: string;
  passwordHash: string;
  role: Role;
  displayName: string;
  salesmanId: number | null;
  clientId: number | null;
}

const q = {
  findByEmail: sqlFile('users/find-by-email.sql'),
  list: sqlFile('users/list.sql'),
  insert: sqlFile('users/insert.sql'),
};

export class UsersRepo {
  constructor(private readonly db: IBaseProtocol<unknown>) {}

  /** An active user by e-mail (case-insensitive), or null. */
  findByEmail(email: string): Promise<UserRow | null> {
    return this.db.oneOrNone<UserRow>(q.findByEmail, { email });
  }

  /** Users with id > after, ascending, at most limit. */
  list(after: number, limit: number): Promise<UserView[]> {
    return this.db.any<UserView>(q.list, { after, limit });
  }

  insert(user: NewUser): Promise<UserView> {
    return this.db.one<UserView>(q.insert, user);
  }
}
