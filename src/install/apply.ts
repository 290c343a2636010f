import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import Postgrator from 'postgrator';
import type { IBaseProtocol } from 'pg-promise';
import { DEMO_SCHEMA_LOCK, INDEX_LOCK, INSTALL_LOCK } from '../db/locks.js';
import { pgp, type Db } from '../db/pg.js';
import { sqlPath } from '../db/sql.js';
import type { Model } from '../model/model.js';
import { planInstall, planText, planUninstall, type InstallPlan, type PlanStep } from './plan.js';


type Q = IBaseProtocol<unknown>;

function postgrator(t: Q, schema: string, dir = 'migrations'): Postgrator {
  return new Postgrator({
    migrationPattern: sqlPath(`${dir}/*`),
    driver: 'pg',
    schemaTable: `${schema}.schema_migrations`,
    validateChecksums: true,
    execQuery: async (query: string) => ({ rows: await t.any(query) }),
  });
}

/**
 * Taken first by install and uninstall (and printed first by the dry run): replicas install
 * once; indexing batches pause, since one holding the index lock while reading an ERP table
 * the install is about to lock for its triggers (or whose items a migration alters) would
 * deadlock with it.
 */
function lockSteps(): PlanStep[] {
  return [
    { why: 'one install at a time, and indexing pauses until this commits', sql: `SELECT pg_advisory_xact_lock(${INSTALL_LOCK})` },
    { why: '', sql: `SELECT pg_advisory_xact_lock(${INDEX_LOCK})` },
  ];
}

export interface InstallReport {
  /** fieldsync's own migrations applied */
  migrations: string[];
  /** capture objects and bucket definitions changed (0: the database already matched) */
  steps: number;
  resetBuckets: string[];
  hash: string;
}

/**
 * `sync:install`: fieldsync's own schema (migrations, sql/migrations/) and the config's
 * capture objects (src/install/plan.ts), in ONE transaction under an advisory lock, so
 * replicas starting at once install exactly once and a failure leaves nothing behind.
 * Indexing batches wait meanwhile (the index lock, taken first).
 * Running it again with the same config changes nothing.
 */
export async function install(db: Db, m: Model): Promise<InstallReport> {
  return db.tx('install', async (t) => {
    for (const step of lockSteps()) await t.any(step.sql);
    await t.none('CREATE SCHEMA IF NOT EXISTS $1:name', [m.schema]);
    await t.none('SET LOCAL search_path TO $1:name', [m.schema]);
    const applied = await postgrator(t, m.schema).migrate();
    await t.none('SET LOCAL search_path TO DEFAULT');
    const plan = await planInstall(t, m);
    for (const step of plan.steps) await t.any(step.sql);
    return { migrations: applied.map((a) => basename(a.filename)), steps: plan.steps.length, resetBuckets: plan.resetBuckets, hash: plan.hash };
  });
}

/** `sync:install --dry-run`: every statement install would run, as a script for the DBA. Changes nothing. */
export async function dryRun(db: Db, m: Model): Promise<{ text: string; plan: InstallPlan }> {
  return db.tx('install:dry-run', async (t) => {
    const schemaExists = await t.oneOrNone('SELECT 1 FROM pg_namespace WHERE nspname = $1', [m.schema]);
    const migrations: PlanStep[] = [];
    let version = 0;
    if (schemaExists) {
      version = await postgrator(t, m.schema).getDatabaseVersion().catch(() => 0);
    } else {
      migrations.push({ why: `fieldsync's own schema`, sql: pgp.as.format('CREATE SCHEMA $1:name', [m.schema]) });
    }
    const pending = (await postgrator(t, m.schema).getMigrations()).filter((mig) => mig.action === 'do' && mig.version > version);
    if (pending.length) migrations.push({ why: '', sql: pgp.as.format('SET LOCAL search_path TO $1:name', [m.schema]) });
    for (const mig of pending) {
      migrations.push({ why: `fieldsync migration ${basename(mig.filename)}`, sql: (await readFile(mig.filename, 'utf8')).trim().replace(/;\s*$/, '') });
    }
    if (pending.length) migrations.push({ why: '', sql: 'SET LOCAL search_path TO DEFAULT' });
    const plan = await planInstall(t, m);
    // the locks install takes before its first change (after the harmless CREATE SCHEMA), so
    // the script run by hand is as safe as install
    const changes = [...migrations, ...plan.steps];
    const first = schemaExists ? 0 : 1;
    const steps = changes.length > first ? [...changes.slice(0, first), ...lockSteps(), ...changes.slice(first)] : changes;
    return { text: planText(steps, plan.advice), plan };
  });
}

/** The plan hash the database was installed with, or undefined when fieldsync is not installed. */
export async function installedHash(db: Q, schema: string): Promise<string | undefined> {
  const exists = await db.oneOrNone(`SELECT to_regclass($1) AS t`, [`${pgp.as.name(schema)}.installed`]);
  if (!exists || (exists as { t: string | null }).t === null) return undefined;
  const row = await db.oneOrNone<{ plan_hash: string }>('SELECT plan_hash FROM $1:name.installed', [schema]);
  return row?.plan_hash;
}

/** `sync:uninstall`: removes every fieldsync trigger and fieldsync's schema, in one transaction. */
export async function uninstall(db: Db, schema: string, opts: { dryRun?: boolean } = {}): Promise<string> {
  return db.tx('uninstall', async (t) => {
    for (const step of lockSteps()) await t.any(step.sql);
    const steps = await planUninstall(t, schema);
    if (!opts.dryRun) for (const step of steps) await t.none(step.sql);
    return planText(steps);
  });
}

/**
 * The demo ERP's own schema (sql/demo/): what a company's ERP would have created. The
 * demo's migrations are tracked in the ERP's schema, apart from fieldsync's.
 */
export async function applyDemoSchema(db: Db): Promise<string[]> {
  return db.tx('demo:schema', async (t) => {
    await t.one('SELECT pg_advisory_xact_lock($1)', [DEMO_SCHEMA_LOCK]);
    const applied = await new Postgrator({
      migrationPattern: sqlPath('demo/*'),
      driver: 'pg',
      schemaTable: 'public.demo_schema_version',
      validateChecksums: true,
      execQuery: async (query: string) => ({ rows: await t.any(query) }),
    }).migrate();
    return applied.map((a) => basename(a.filename));
  });
}
