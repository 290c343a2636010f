import { z } from 'zod';
import { originProblem } from './lib/origins.js';

/**
 * The ONLY reader of process.env. Every option is declared once below with its default
 * and meaning; the README's configuration table lists the same variables (a unit test
 * keeps the two in step). Invalid values stop the process at start with a message that
 * names the variable.
 */

const bool = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off'])
  .transform((v) => ['1', 'true', 'yes', 'on'].includes(v));
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/** Proxy hops: a number, or a boolean as it was written before hop counts (true = one proxy). */
const hops = z.union([bool.transform(Number), int(0, 10)], { error: 'must be true, false or the number of trusted proxies (0-10)' });
const url = (...protocols: string[]) =>
  z.url().refine((v) => protocols.includes(new URL(v).protocol), {
    message: `must be a ${protocols.join(' or ')} URL`,
  });
/** A comma-separated list of browser origins (see src/lib/origins.ts); empty entries are skipped. */
const origins = z
  .string()
  .transform((v) => v.split(',').map((o) => o.trim()).filter((o) => o !== ''))
  .superRefine((list, ctx) => {
    for (const o of list) {
      const problem = originProblem(o);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }
  });

interface Option {
  schema: z.ZodType;
  default?: string;
  doc: string;
}

/** Variable name -> schema, default (as it would be written in the environment), meaning. */
export const options = {
  HOST: { schema: z.string().min(1), default: '0.0.0.0', doc: 'Interface the HTTP server binds to.' },
  PORT: { schema: int(0, 65535), default: '3000', doc: 'HTTP port (0 picks a free one).' },
  DRAIN_DELAY_MS: { schema: int(0, 120_000), default: '0', doc: 'On SIGTERM, /ready answers 503 (draining) and the server keeps serving this long before it stops accepting: set it above the load balancer\'s readiness interval (e.g. 5000 behind Kubernetes or nginx health checks) so no request is sent to a closed port.' },
  TRUST_PROXY: { schema: hops, default: 'false', doc: 'How many reverse proxies (load balancers) stand in front of the app: the client IP for rate limits is the one the outermost of them appended to X-Forwarded-For, never one the client wrote. false = 0 (the peer address), true = 1.' },
  CORS_ORIGINS: { schema: origins, doc: 'Browser origins (comma-separated, exact, e.g. http://localhost:5000 for flutter run -d chrome; * for any) answered with CORS headers, on HTTP and the push channel. Unset: none, no CORS headers (phones need none).' },
  BODY_LIMIT_BYTES: { schema: int(1024, 64 * 1024 * 1024), default: String(2 * 1024 * 1024), doc: 'Largest JSON request body accepted (a push of 500 mutations fits); larger answers 413.' },
  LOG_LEVEL: { schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), default: 'info', doc: 'pino log level.' },
  LOG_FORMAT: { schema: z.enum(['pretty', 'json']), doc: 'pretty: one coloured line per entry for people (pino-pretty); json: one JSON object per line for log collectors. Default: pretty when stdout is a terminal, json otherwise.' },

  DATABASE_URL: { schema: url('postgres:', 'postgresql:'), doc: 'PostgreSQL to sync (the ERP database). Unset: embedded PGlite under DATA_DIR, migrated and seeded with demo data on first start.' },
  DB_POOL_MAX: { schema: int(1, 500), default: '20', doc: 'Connections in the pool.' },
  DB_SLOW_QUERY_MS: { schema: int(0, 3600_000), default: '200', doc: 'A query taking longer logs one warn line with its name (SQL file, or task and first words; never values) and duration. 0: off.' },
  DATA_DIR: { schema: z.string().min(1), default: './.fieldsync', doc: 'Embedded mode: where the database and the generated JWT secret live.' },
  EMBEDDED_PG_PORT: { schema: int(0, 65535), default: '0', doc: 'Embedded mode: TCP port of the PGlite socket on 127.0.0.1 (0 picks a free one).' },

  SYNC_CONFIG: { schema: z.string().min(1), doc: 'The sync config file (a .ts or .js module that default-exports defineConfig({...})): what is synced out of your database. Unset: the demo ERP\'s config (src/demo/config.ts).' },
  SYNC_INSTALL: { schema: z.enum(['auto', 'check']), doc: 'At start, `check`: refuse to start unless `npm run sync:install` has installed this config; `auto`: install it (migrations and triggers) first. Default: auto in embedded mode and when seeding the demo (SEED_DEMO), check otherwise.' },
  CONFIG_CHECK_INTERVAL_MS: { schema: int(1000, 24 * 3600_000), default: '30000', doc: 'How often a running server checks that the database still matches the sync config (an ERP deploy recreating a synced table); while it does not, pulls answer 503 config-drift.' },
  SEED_DEMO: { schema: bool, doc: 'Seed demo data into an empty database at start. Default: on in embedded mode, off with DATABASE_URL.' },
  DEMO_SCALE: { schema: z.coerce.number().positive().max(100), default: '1', doc: '1 = today (2,218 products), 10 = growth target (20,000 products).' },
  DEMO_SEED: { schema: int(0, 2 ** 31), default: '42', doc: 'Random seed of the demo data; same seed, same data.' },
  DEMO_PASSWORD: { schema: z.string().min(8), default: 'demo1234', doc: 'Password of every demo login (printed at start in demo mode only).' },

  JWT_SECRET: { schema: z.string().min(32, 'must be at least 32 characters'), doc: 'HS256 key for the tokens fieldsync issues and accepts. Required with DATABASE_URL unless JWT_JWKS_URL is set; embedded mode generates one under DATA_DIR.' },
  JWT_SECRET_PREVIOUS: { schema: z.string().min(32, 'must be at least 32 characters'), doc: 'The JWT_SECRET being rotated out: tokens it signed still verify (and, without CURSOR_SECRET, cursors and snapshot URLs signed with the key derived from it) until JWT_SECRET_PREVIOUS_UNTIL. New ones are signed with JWT_SECRET only.' },
  JWT_SECRET_PREVIOUS_UNTIL: { schema: z.iso.datetime({ offset: true }), doc: 'When JWT_SECRET_PREVIOUS stops verifying (ISO 8601 with offset): at least JWT_TTL_SECONDS after the rotation, longer when cursors ride on it (devices offline that long start over with 400 cursor-invalid). Required with JWT_SECRET_PREVIOUS.' },
  JWT_JWKS_URL: { schema: url('https:', 'http:'), doc: 'Also accept tokens signed by the keys at this JWKS URL (tokens issued by the ERP).' },
  JWT_ISSUER: { schema: z.string().min(1), default: 'fieldsync', doc: 'Required `iss` of accepted tokens; set on issued ones.' },
  JWT_AUDIENCE: { schema: z.string().min(1), default: 'fieldsync', doc: 'Required `aud` of accepted tokens; set on issued ones.' },
  JWT_TTL_SECONDS: { schema: int(60, 30 * 24 * 3600), default: '43200', doc: 'Lifetime of issued tokens (default 12 h: a working day).' },
  JWT_MAX_LIFETIME_SECONDS: { schema: int(60, 365 * 24 * 3600), default: '2592000', doc: 'Longest lifetime of an accepted token, ours or the ERP\'s (default 30 days): exp - iat (exp - now without iat). A token without exp, or living longer, is refused. At least JWT_TTL_SECONDS.' },

  LOGIN_MAX_PER_IP: { schema: int(1, 100_000), default: '30', doc: 'Login attempts per client IP per minute.' },
  LOGIN_MAX_FAILURES_PER_EMAIL: { schema: int(1, 1000), default: '5', doc: 'Failed logins per e-mail per 15 minutes; a success resets the count.' },

  CURSOR_SECRET: { schema: z.string().min(32, 'must be at least 32 characters'), doc: 'Key that signs pull cursors (HMAC). Default: derived from JWT_SECRET (or the embedded key). Replicas must share it.' },
  CURSOR_SECRET_PREVIOUS: { schema: z.string().min(32, 'must be at least 32 characters'), doc: 'The CURSOR_SECRET being rotated out: cursors and snapshot page URLs it signed still verify until CURSOR_SECRET_PREVIOUS_UNTIL; new ones are signed with CURSOR_SECRET.' },
  CURSOR_SECRET_PREVIOUS_UNTIL: { schema: z.iso.datetime({ offset: true }), doc: 'When CURSOR_SECRET_PREVIOUS stops verifying (ISO 8601 with offset); a device that last pulled before the rotation and comes back after it starts over (400 cursor-invalid). Required with CURSOR_SECRET_PREVIOUS.' },
  PULL_DEFAULT_LIMIT: { schema: int(1, 5000), default: '1000', doc: 'Rows and deletes per pull page when the request names no limit.' },
  PULL_MAX_LIMIT: { schema: int(1, 20_000), default: '5000', doc: 'Largest page a pull may ask for.' },
  TOMBSTONE_RETENTION_DAYS: { schema: int(1, 3650), default: '30', doc: 'Deletes are kept this long; a device offline longer gets 410 and re-bootstraps the affected buckets.' },
  PRUNE_INTERVAL_MS: { schema: int(1000, 7 * 24 * 3600_000), default: '3600000', doc: 'How often old tombstones are pruned.' },
  REDIS_URL: { schema: url('redis:', 'rediss:'), doc: 'Redis for several processes: Socket.IO rooms and connection-state recovery shared through the Redis streams adapter. Unset: one process, in memory.' },
  REDIS_KEY_PREFIX: { schema: z.string().regex(/^[\w.-]{1,64}$/), default: 'fieldsync', doc: 'Prefix of every Redis key and stream (the database name is appended), so deployments can share a Redis.' },
  POKE_WINDOW_MS: { schema: int(10, 60_000), default: '250', doc: 'Push channel coalescing window: the first change after a quiet spell is pushed at once, later ones within the window merge into one trailing message.' },
  POKE_SPREAD_PER_SOCKET_MS: { schema: z.coerce.number().min(0).max(1000), default: '2', doc: "A poke's pullWithinMs grows by this per socket in the room, so 1,000 phones do not pull in the same instant." },
  POKE_MAX_SPREAD_MS: { schema: int(0, 600_000), default: '10000', doc: 'Upper bound of pullWithinMs.' },
  SOCKET_CONNECTS_PER_IP_PER_MINUTE: { schema: int(1, 1_000_000), default: '600', doc: 'Push channel connections accepted per client IP per minute (a NAT of phones shares an IP).' },
  S3_ENDPOINT: { schema: url('http:', 'https:'), doc: 'S3-compatible endpoint for product images (MinIO, R2, ...). Unset with no S3_BUCKET override: an in-process s3rver with files under DATA_DIR/media (embedded mode and tests).' },
  S3_BUCKET: { schema: z.string().min(3).max(63), default: 'fieldsync-media', doc: 'Bucket of product images.' },
  S3_REGION: { schema: z.string().min(1), default: 'us-east-1', doc: 'S3 region.' },
  S3_ACCESS_KEY_ID: { schema: z.string().min(1), doc: 'S3 credentials (default: the SDK chain: env, profile, instance role).' },
  S3_SECRET_ACCESS_KEY: { schema: z.string().min(1), doc: 'S3 credentials.' },
  S3_FORCE_PATH_STYLE: { schema: bool, default: 'true', doc: 'Path-style URLs (MinIO, s3rver); false for virtual-hosted AWS buckets.' },
  MEDIA_BASE_URL: { schema: url('http:', 'https:'), doc: 'Public URL of the bucket (a CDN): image URLs become MEDIA_BASE_URL/<key>. Unset: served by this app at /v1/media/<key> (or presigned, see MEDIA_PRESIGN).' },
  MEDIA_PRESIGN: { schema: bool, default: 'false', doc: 'Private bucket without CDN: hand out short-lived presigned GET URLs.' },
  MEDIA_PRESIGN_SECONDS: { schema: int(60, 7 * 24 * 3600), default: '3600', doc: 'Lifetime of presigned image URLs.' },
  MEDIA_MAX_BYTES: { schema: int(1024, 200 * 1024 * 1024), default: String(20 * 1024 * 1024), doc: 'Largest image upload; larger answers 413.' },
  MEDIA_MAX_PIXELS: { schema: int(1, 1_000_000_000), default: '50000000', doc: 'Largest image in pixels (decompression bombs answer 422).' },
  IMAGE_CONCURRENCY: { schema: int(1, 64), default: '1', doc: 'Images processed at once, so uploads cannot starve sync requests.' },
  IMAGE_THREADS: { schema: int(1, 64), default: '1', doc: 'Threads libvips (sharp) uses per image; with IMAGE_CONCURRENCY it bounds the cores image work can take from sync.' },
  MEDIA_GRACE_HOURS: { schema: int(0, 24 * 365), default: '24', doc: 'A replaced image is deleted from storage this long after no product points at it.' },
  SNAPSHOTS: { schema: bool, default: 'true', doc: 'Bootstrap shared buckets (catalog, prices, stock) from pre-built snapshot pages (Redis with REDIS_URL, else memory).' },
  SNAPSHOT_PAGE_ROWS: { schema: int(1, 100_000), default: '5000', doc: 'Rows per snapshot page.' },
  SNAPSHOT_MAX_AGE_SECONDS: { schema: int(1, 7 * 24 * 3600), default: '600', doc: 'Rebuild a snapshot older than this (it stays correct meanwhile: deltas follow it).' },
  SNAPSHOT_MAX_DELTA_ROWS: { schema: int(0, 10_000_000), default: '5000', doc: 'Rebuild a snapshot once this many rows of its bucket changed since.' },
  SNAPSHOT_GRACE_SECONDS: { schema: int(0, 24 * 3600), default: '300', doc: 'Old snapshot pages stay this long after their successor, for devices still downloading them.' },
  SNAPSHOT_MEMORY_MAX_BYTES: { schema: int(1024 * 1024, 64 * 1024 * 1024 * 1024), default: String(256 * 1024 * 1024), doc: 'Without Redis: the in-memory snapshot store keeps at most this many bytes.' },
  SNAPSHOT_URL_TTL_SECONDS: { schema: int(10, 24 * 3600), default: '600', doc: 'Lifetime of the signed snapshot page URLs a pull hands out.' },
  DOORBELL_POLL_MS: { schema: int(2, 60_000), default: '5', doc: 'How often each process polls for committed changes (one statement: the last indexing batch and whether the outbox holds anything): the change doorbell. Lower: changes reach devices sooner; higher: fewer statements.' },
} satisfies Record<string, Option>;

export type OptionName = keyof typeof options;
type Raw = { [K in OptionName]: z.output<(typeof options)[K]['schema']> | undefined };

export interface Config {
  /** proxyHops: trusted reverse proxies in front of the app (see clientAddress) */
  http: {
    host: string;
    port: number;
    proxyHops: number;
    bodyLimitBytes: number;
    /** after SIGTERM, serve this long with /ready at 503 before closing the port */
    drainDelayMs: number;
    /** browser origins answered with CORS headers (`*`: any); empty: no CORS at all */
    corsOrigins: string[];
  };
  /** format undefined: pretty when stdout is a terminal, else json */
  log: { level: string; format: 'pretty' | 'json' | undefined };
  /** undefined: embedded PGlite */
  databaseUrl: string | undefined;
  /** slowQueryMs 0: no slow-query log */
  db: { poolMax: number; slowQueryMs: number };
  dataDir: string;
  embeddedPgPort: number;
  /** undefined: decided by mode (embedded: yes; DATABASE_URL: no) */
  seedDemo: boolean | undefined;
  demo: { password: string; scale: number; seed: number };
  auth: {
    /** undefined in embedded mode until the server generates one */
    jwtSecret: string | undefined;
    /** the JWT secret being rotated out, verifying until `until` (epoch ms) */
    jwtSecretPrevious: { secret: string; until: number } | undefined;
    jwksUrl: string | undefined;
    issuer: string;
    audience: string;
    ttlSeconds: number;
    /** longest accepted exp - iat (or exp - now) */
    maxLifetimeSeconds: number;
  };
  login: { maxPerIp: number; maxFailuresPerEmail: number };
  doorbell: { pollMs: number };
  /** the sync config file; undefined: the demo's */
  syncConfig: string | undefined;
  /** undefined: decided by mode (embedded: auto; DATABASE_URL: check) */
  syncInstall: 'auto' | 'check' | undefined;
  configCheckMs: number;
  redisUrl: string | undefined;
  redisKeyPrefix: string;
  s3: { endpoint: string | undefined; bucket: string; region: string; accessKeyId: string | undefined; secretAccessKey: string | undefined; forcePathStyle: boolean };
  media: { baseUrl: string | undefined; presign: boolean; presignSeconds: number; maxBytes: number; maxPixels: number; concurrency: number; threads: number; graceHours: number };
  snapshots: { enabled: boolean; pageRows: number; maxAgeMs: number; maxDeltaRows: number; graceMs: number; memoryMaxBytes: number; urlTtlSeconds: number };
  realtime: { windowMs: number; spreadPerSocketMs: number; maxSpreadMs: number; connectsPerIpPerMinute: number };
  sync: {
    cursorSecret: string | undefined;
    /** the cursor secret being rotated out, verifying until `until` (epoch ms) */
    cursorSecretPrevious: { secret: string; until: number } | undefined;
    defaultLimit: number;
    maxLimit: number;
    retentionDays: number;
    pruneIntervalMs: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * What serving needs beyond valid values (the CLIs do not need a JWT key): a server on
 * DATABASE_URL must have a key to verify tokens with.
 */
export function assertServable(config: Config): void {
  if (config.databaseUrl && !config.auth.jwtSecret && !config.auth.jwksUrl) {
    throw new ConfigError(['JWT_SECRET: required when DATABASE_URL is set (or set JWT_JWKS_URL to accept ERP tokens only)']);
  }
  if (config.databaseUrl && !config.auth.jwtSecret && !config.sync.cursorSecret) {
    throw new ConfigError(['CURSOR_SECRET: required when JWT_SECRET is not set (it signs pull cursors)']);
  }
}

/** A key being rotated out and the time it stops verifying: both or neither. */
function previousKey(name: string, secret: string | undefined, until: string | undefined, problems: string[]): { secret: string; until: number } | undefined {
  if (secret === undefined && until === undefined) return undefined;
  if (secret === undefined || until === undefined) {
    problems.push(`${name}_PREVIOUS and ${name}_PREVIOUS_UNTIL: set both (the old key, and when it stops verifying) or neither`);
    return undefined;
  }
  return { secret, until: Date.parse(until) };
}

/** Parses and validates the environment; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const raw = {} as Record<string, unknown>;
  for (const [name, opt] of Object.entries(options) as [OptionName, Option][]) {
    const given = env[name];
    const value = given === undefined || given === '' ? opt.default : given;
    if (value === undefined) continue;
    const parsed = opt.schema.safeParse(value);
    if (parsed.success) raw[name] = parsed.data;
    else problems.push(`${name}: ${parsed.error.issues.map((i) => i.message).join('; ')} (got ${JSON.stringify(given)})`);
  }
  const r = raw as Raw;
  // tokens we issue must be tokens we accept
  if (r.JWT_TTL_SECONDS! > r.JWT_MAX_LIFETIME_SECONDS!) {
    problems.push(`JWT_TTL_SECONDS: must not exceed JWT_MAX_LIFETIME_SECONDS (${r.JWT_MAX_LIFETIME_SECONDS}), or issued tokens would be refused`);
  }
  const jwtSecretPrevious = previousKey('JWT_SECRET', r.JWT_SECRET_PREVIOUS, r.JWT_SECRET_PREVIOUS_UNTIL, problems);
  const cursorSecretPrevious = previousKey('CURSOR_SECRET', r.CURSOR_SECRET_PREVIOUS, r.CURSOR_SECRET_PREVIOUS_UNTIL, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    http: { host: r.HOST!, port: r.PORT!, proxyHops: r.TRUST_PROXY!, bodyLimitBytes: r.BODY_LIMIT_BYTES!, drainDelayMs: r.DRAIN_DELAY_MS!, corsOrigins: r.CORS_ORIGINS ?? [] },
    log: { level: r.LOG_LEVEL!, format: r.LOG_FORMAT },
    databaseUrl: r.DATABASE_URL,
    db: { poolMax: r.DB_POOL_MAX!, slowQueryMs: r.DB_SLOW_QUERY_MS! },
    dataDir: r.DATA_DIR!,
    embeddedPgPort: r.EMBEDDED_PG_PORT!,
    seedDemo: r.SEED_DEMO,
    demo: { password: r.DEMO_PASSWORD!, scale: r.DEMO_SCALE!, seed: r.DEMO_SEED! },
    auth: {
      jwtSecret: r.JWT_SECRET,
      jwtSecretPrevious,
      jwksUrl: r.JWT_JWKS_URL,
      issuer: r.JWT_ISSUER!,
      audience: r.JWT_AUDIENCE!,
      ttlSeconds: r.JWT_TTL_SECONDS!,
      maxLifetimeSeconds: r.JWT_MAX_LIFETIME_SECONDS!,
    },
    login: { maxPerIp: r.LOGIN_MAX_PER_IP!, maxFailuresPerEmail: r.LOGIN_MAX_FAILURES_PER_EMAIL! },
    doorbell: { pollMs: r.DOORBELL_POLL_MS! },
    syncConfig: r.SYNC_CONFIG,
    syncInstall: r.SYNC_INSTALL,
    configCheckMs: r.CONFIG_CHECK_INTERVAL_MS!,
    redisUrl: r.REDIS_URL,
    redisKeyPrefix: r.REDIS_KEY_PREFIX!,
    snapshots: {
      enabled: r.SNAPSHOTS!,
      pageRows: r.SNAPSHOT_PAGE_ROWS!,
      maxAgeMs: r.SNAPSHOT_MAX_AGE_SECONDS! * 1000,
      maxDeltaRows: r.SNAPSHOT_MAX_DELTA_ROWS!,
      graceMs: r.SNAPSHOT_GRACE_SECONDS! * 1000,
      memoryMaxBytes: r.SNAPSHOT_MEMORY_MAX_BYTES!,
      urlTtlSeconds: r.SNAPSHOT_URL_TTL_SECONDS!,
    },
    s3: {
      endpoint: r.S3_ENDPOINT,
      bucket: r.S3_BUCKET!,
      region: r.S3_REGION!,
      accessKeyId: r.S3_ACCESS_KEY_ID,
      secretAccessKey: r.S3_SECRET_ACCESS_KEY,
      forcePathStyle: r.S3_FORCE_PATH_STYLE!,
    },
    media: {
      baseUrl: r.MEDIA_BASE_URL,
      presign: r.MEDIA_PRESIGN!,
      presignSeconds: r.MEDIA_PRESIGN_SECONDS!,
      maxBytes: r.MEDIA_MAX_BYTES!,
      maxPixels: r.MEDIA_MAX_PIXELS!,
      concurrency: r.IMAGE_CONCURRENCY!,
      threads: r.IMAGE_THREADS!,
      graceHours: r.MEDIA_GRACE_HOURS!,
    },
    realtime: {
      windowMs: r.POKE_WINDOW_MS!,
      spreadPerSocketMs: r.POKE_SPREAD_PER_SOCKET_MS!,
      maxSpreadMs: r.POKE_MAX_SPREAD_MS!,
      connectsPerIpPerMinute: r.SOCKET_CONNECTS_PER_IP_PER_MINUTE!,
    },
    sync: {
      cursorSecret: r.CURSOR_SECRET,
      cursorSecretPrevious,
      defaultLimit: Math.min(r.PULL_DEFAULT_LIMIT!, r.PULL_MAX_LIMIT!),
      maxLimit: r.PULL_MAX_LIMIT!,
      retentionDays: r.TOMBSTONE_RETENTION_DAYS!,
      pruneIntervalMs: r.PRUNE_INTERVAL_MS!,
    },
  };
}
