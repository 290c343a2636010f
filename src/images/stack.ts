import sharp from 'sharp';
import type { Config } from '../config.js';
import type { Db } from '../db/pg.js';
import type { Model } from '../model/model.js';
import type { Logger } from '../observability/logger.js';
import type { Indexer } from '../sync/indexer.js';
import { startEmbeddedS3 } from '../storage/embedded.js';
import { Storage } from '../storage/s3.js';
import { MediaService, type ImageChange } from './service.js';

export interface MediaStackDeps {
  config: Config;
  db: Db;
  model: Model;
  log: Logger;
  /** after an image switch is visible to pull (the push channel's catalog:image) */
  onChange?: (change: ImageChange) => void;
  /** the server's indexer (the CLIs have none) */
  indexer?: Indexer;
}

/**
 * Storage and the media service from the configuration: S3_ENDPOINT, or the embedded
 * s3rver under DATA_DIR/media. Shared by the server and the media CLIs. Throws at once
 * when the sync config's media collection cannot hold images (a composite key).
 */
export async function createMediaStack({ config, db, model, log, onChange, indexer }: MediaStackDeps): Promise<{ storage: Storage; media: MediaService; stop(): Promise<void> }> {
  // libvips threads are process-wide: together with the upload concurrency they bound the
  // cores image work can take from sync requests
  sharp.concurrency(config.media.threads);
  let endpoint = config.s3.endpoint;
  const keys = { accessKeyId: config.s3.accessKeyId, secretAccessKey: config.s3.secretAccessKey };
  let stopS3: () => Promise<void> = async () => undefined;
  if (!endpoint) {
    const s3 = await startEmbeddedS3(config.dataDir, config.s3.bucket);
    endpoint = s3.endpoint;
    stopS3 = s3.stop;
    Object.assign(keys, { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });
    log.info({ dir: config.dataDir }, 'embedded S3 (s3rver) started');
  }
  const storage = new Storage({ ...config.s3, ...keys, endpoint });
  try {
    const media = new MediaService({
      db,
      model,
      storage,
      log,
      options: {
        maxPixels: config.media.maxPixels,
        concurrency: config.media.concurrency,
        urlMode: config.media.baseUrl ? 'cdn' : config.media.presign ? 'presigned' : 'proxy',
        baseUrl: config.media.baseUrl,
        presignSeconds: config.media.presignSeconds,
      },
      ...(onChange && { onChange }),
      ...(indexer && { indexer }),
    });
    return {
      storage,
      media,
      async stop() {
        storage.close();
        await stopS3();
      },
    };
  } catch (err) {
    storage.close();
    await stopS3();
    throw err;
  }
}
