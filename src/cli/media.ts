/**
 * Media tools for the sync config's media collection (need DATABASE_URL, fieldsync
 * installed there, SYNC_CONFIG as for the server, and its S3 settings or the embedded
 * store under DATA_DIR/media):
 *   npm run media:import -- <folder>   images named by the config's media.name (the demo:
 *                                      SKU, BEV-000123.jpg) -> that row's image
 *   npm run media:regenerate           rebuild every variant from the stored originals
 */
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { SingleBar, Presets } from 'cli-progress';
import pLimit from 'p-limit';
import { ConfigError, loadConfig } from '../config.js';
import { createDb } from '../db/pg.js';
import { AppError } from '../errors.js';
import { createMediaStack } from '../images/stack.js';
import { installedHash } from '../install/apply.js';
import { SyncConfigError } from '../model/config.js';
import { loadConfigFile, loadModel } from '../model/load.js';
import { createLogger } from '../observability/logger.js';

const IMAGE = /\.(jpe?g|png|webp|heic|heif|avif)$/i;
const { positionals } = parseArgs({ allowPositionals: true });
const [command, folder] = positionals;

try {
  const config = loadConfig();
  if (!config.databaseUrl) throw new ConfigError(['DATABASE_URL: required by the media tools (the embedded server attaches its demo images itself)']);
  const log = createLogger('warn');
  const db = createDb({ url: config.databaseUrl, poolMax: config.media.concurrency + 2, applicationName: `fieldsync-media-${command ?? ''}` });
  try {
    const model = await loadModel(db, await loadConfigFile(config.syncConfig));
    if (!model.media) throw new Error('the sync config has no media collection: nothing to do');
    if ((await installedHash(db, model.schema)) === undefined) throw new Error(`fieldsync is not installed in this database (schema "${model.schema}"): npm run sync:install`);
    const collection = model.media.collection.name;
    const stack = await createMediaStack({ config, db, model, log });
    try {
      if (command === 'import') {
        if (!folder) throw new Error('usage: npm run media:import -- <folder>');
        const files = (await readdir(folder)).filter((f) => IMAGE.test(f)).sort();
        const nameOf = (file: string) => file.slice(0, -extname(file).length);
        const rows = await stack.media.rowsByName(files.map(nameOf));
        const bar = new SingleBar({ format: 'importing {bar} {value}/{total} {name}' }, Presets.shades_classic);
        bar.start(files.length, 0, { name: '' });
        const unknown: string[] = [];
        const failed: string[] = [];
        let stored = 0;
        let same = 0;
        const limit = pLimit(config.media.concurrency);
        await Promise.all(
          files.map((file) =>
            limit(async () => {
              const name = nameOf(file);
              const keys = rows.get(name) ?? [];
              try {
                if (keys.length === 0) unknown.push(name);
                else if (keys.length > 1) failed.push(`${file}: ${keys.length} ${collection} rows have this name`);
                else (await stack.media.upload(keys[0]!, await readFile(join(folder, file)))).unchanged ? same++ : stored++;
              } catch (err) {
                failed.push(`${file}: ${err instanceof AppError ? err.message : String(err)}`);
              }
              bar.increment(1, { name });
            }),
          ),
        );
        bar.stop();
        console.log(`${stored} images stored, ${same} unchanged, ${unknown.length} unknown names, ${failed.length} failed`);
        if (unknown.length) console.log(`unknown names: ${unknown.join(', ')}`);
        for (const f of failed) console.log(`failed: ${f}`);
        process.exitCode = failed.length ? 1 : 0;
      } else if (command === 'regenerate') {
        const bar = new SingleBar({ format: 'regenerating {bar} {value}/{total}' }, Presets.shades_classic);
        let started = false;
        const { regenerated, gone } = await stack.media.regenerate((done, total) => {
          if (!started) bar.start(total, 0);
          started = true;
          bar.update(done);
        });
        bar.stop();
        console.log(`${regenerated} images regenerated (${collection})`);
        if (gone.length) console.log(`skipped, the rows are gone: ${gone.join(', ')}`);
      } else {
        throw new Error('usage: media import <folder> | media regenerate');
      }
    } finally {
      await stack.stop();
    }
  } finally {
    await db.$pool.end();
  }
} catch (err) {
  console.error(err instanceof ConfigError || err instanceof SyncConfigError || err instanceof Error ? err.message : err);
  process.exit(1);
}
