import type { IBaseProtocol } from 'pg-promise';
import type { UserView } from '../../protocol/admin.js';
import { sqlFile } from '../sql.js';

/** A login as the login check needs it. `claims` holds what the role needs (the demo salesman's {salesmanId: 3}). */
export interface UserRow {
  id: number;
  email: string;
  password_hash: string | null;
  /** a role of the sync config */
  role: string;
  display_name: string;
  claims: Record<string, unknown>;
}

/** A user as admins see it (the admin API's answer, src/protocol/admin.ts): never the password hash. */
export type { UserView };

export interface NewUser {
  email: string;
  passwordHash: string;
  role: string;
  displayName: string;
  /** checked against the role's declared claims by the caller */
  claims: Record<string, string | number>;
}

const q = {
  findByEmail: sqlFile('users/find-by-email.sql'),
  list: sqlFile('users/list.sql'),
  insert: sqlFile('users/insert.sql'),
};

/**
 * Standalone logins, in `<schema>.users` of fieldsync's own schema. Not attached in
 * pg-promise's `extend` hook (that runs before the sync config is known): build one with
 * the model's schema, `new UsersRepo(db, model.schema)`; pass a task or transaction as
 * `db` to run inside it.
 */
export class UsersRepo {
  constructor(
    private readonly db: IBaseProtocol<unknown>,
    private readonly schema: string,
  ) {}

  /** An active user by e-mail (case-insensitive), or null. */
  findByEmail(email: string): Promise<UserRow | null> {
    return this.db.oneOrNone<UserRow>(q.findByEmail, { schema: this.schema, email });
  }

  /** Users with id > after, ascending, at most limit. */
  list(after: number, limit: number): Promise<UserView[]> {
    return this.db.any<UserView>(q.list, { schema: this.schema, after, limit });
  }

  insert(user: NewUser): Promise<UserView> {
    return this.db.one<UserView>(q.insert, { schema: this.schema, ...user });
  }
}
