/**
 * Media tools (need DATABASE_URL; S3 settings as for the server, or the embedded store
 * under DATA_DIR/media):
 *   npm run media:import -- <folder>   images named by SKU (BEV-000123.jpg) -> products
 *   npm run media:regenerate           rebuild every variant from the stored originals
 */
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { SingleBar, Presets } from 'cli-progress';
import pLimit from 'p-limit';
import { ConfigError, loadConfig } from '../config.js';
import { migrate } from '../db/migrate.js';
import { createDb } from '../db/pg.js';
import { AppError } from '../errors.js';
import { createMediaStack } from '../images/stack.js';
import { createLogger } from '../observability/logger.js';

const IMAGE = /\.(jpe?g|png|webp|heic|heif|avif)$/i;
const { positionals } = parseArgs({ allowPositionals: true });
const [command, folder] = positionals;

try {
  const config = loadConfig();
  if (!config.databaseUrl) throw new ConfigError(['DATABASE_URL: required by the media tools (the embedded server attaches its demo images itself)']);
  const log = createLogger('warn');
  const db = createDb({ url: config.databaseUrl, poolMax: config.media.concurrency + 2 });
  const stack = await createMediaStack(config, db, log);
  try {
    await migrate(db);
    if (command === 'import') {
      if (!folder) throw new Error('usage: npm run media:import -- <folder>');
      const files = (await readdir(folder)).filter((f) => IMAGE.test(f)).sort();
      const skus = new Map(
        (await db.any<{ id: number; sku: string }>('SELECT id, sku FROM products WHERE sku IN ($1:csv)', [files.length ? files.map((f) => f.slice(0, -extname(f).length)) : ['']])).map((r) => [r.sku, r.id]),
      );
      const bar = new SingleBar({ format: 'importing {bar} {value}/{total} {sku}' }, Presets.shades_classic);
      bar.start(files.length, 0, { sku: '' });
      const unknown: string[] = [];
      const failed: string[] = [];
      let stored = 0;
      let same = 0;
      const limit = pLimit(config.media.concurrency);
      await Promise.all(
        files.map((file) =>
          limit(async () => {
            const sku = file.slice(0, -extname(file).length);
            const id = skus.get(sku);
            try {
              if (id === undefined) unknown.push(sku);
              else (await stack.media.upload(id, await readFile(join(folder, file)))).unchanged ? same++ : stored++;
            } catch (err) {
              failed.push(`${file}: ${err instanceof AppError ? err.message : String(err)}`);
            }
            bar.increment(1, { sku });
          }),
        ),
      );
      bar.stop();
      console.log(`${stored} images stored, ${same} unchanged, ${unknown.length} unknown SKUs, ${failed.length} failed`);
      if (unknown.length) console.log(`unknown SKUs: ${unknown.join(', ')}`);
      for (const f of failed) console.log(`failed: ${f}`);
      process.exitCode = failed.length ? 1 : 0;
    } else if (command === 'regenerate') {
      const bar = new SingleBar({ format: 'regenerating {bar} {value}/{total}' }, Presets.shades_classic);
      let started = false;
      const n = await stack.media.regenerate((done, total) => {
        if (!started) bar.start(total, 0);
        started = true;
        bar.update(done);
      });
      bar.stop();
      console.log(`${n} products regenerated`);
    } else {
      throw new Error('usage: media import <folder> | media regenerate');
    }
  } finally {
    await stack.stop();
    await db.$pool.end();
  }
} catch (err) {
  console.error(err instanceof ConfigError || err instanceof Error ? err.message : err);
  process.exit(1);
}
