import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadPglite } from '../lib/embedded-packages.js';

export interface EmbeddedPostgres {
  /** postgres:// URL of the socket, for pg-promise */
  url: string;
  stop(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The embedded default: PGlite (PostgreSQL compiled to WebAssembly) with its data under
 * `dataDir`, served over the PostgreSQL wire protocol on 127.0.0.1 by pglite-socket, so
 * the same pg-promise code runs unchanged. PGlite has one backend: the socket server
 * queues statements and keeps a transaction's statements together, so several pool
 * connections work, one statement at a time. LISTEN/NOTIFY does not cross those
 * connections: the doorbell polls instead.
 *
 * A data directory must not be opened by two processes: a pid file guards it. PGlite is a
 * development dependency, loaded only here: without it (a production install) this throws
 * a ConfigError saying to set DATABASE_URL.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number): Promise<EmbeddedPostgres> {
  const { PGlite, pg_trgm, PGLiteSocketServer } = await loadPglite();
  const dir = join(dataDir, 'pgdata');
  await mkdir(dataDir, { recursive: true });
  const pidFile = join(dataDir, 'pglite.pid');
  const other = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10);
  if (Number.isInteger(other) && other !== process.pid && alive(other)) {
    throw new Error(`${dataDir} is in use by process ${other}; stop it or set DATA_DIR to another folder`);
  }
  await writeFile(pidFile, String(process.pid));

  const db = await PGlite.create({ dataDir: dir, extensions: { pg_trgm } });
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port, maxConnections: 64 });
  await server.start();
  return {
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
      await rm(pidFile, { force: true });
    },
  };
}
