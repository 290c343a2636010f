import sharp from 'sharp';
import type { Config } from '../config.js';
import type { Db } from '../db/pg.js';
import type { Logger } from '../observability/logger.js';
import { startEmbeddedS3 } from '../storage/embedded.js';
import { Storage } from '../storage/s3.js';
import { MediaService } from './service.js';

/**
 * Storage and the media service from the configuration: S3_ENDPOINT, or the embedded
 * s3rver under DATA_DIR/media. Shared by the server and the media CLIs.
 */
export async function createMediaStack(
  config: Config,
  db: Db,
  log: Logger,
  onChange?: (productId: number, thumb: string) => void,
): Promise<{ storage: Storage; media: MediaService; stop(): Promise<void> }> {
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
  const media = new MediaService(
    db,
    storage,
    {
      maxPixels: config.media.maxPixels,
      concurrency: config.media.concurrency,
      urlMode: config.media.baseUrl ? 'cdn' : config.media.presign ? 'presigned' : 'proxy',
      baseUrl: config.media.baseUrl,
      presignSeconds: config.media.presignSeconds,
    },
    log,
    onChange,
  );
  return {
    storage,
    media,
    async stop() {
      storage.close();
      await stopS3();
    },
  };
}
