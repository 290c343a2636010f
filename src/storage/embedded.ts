import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadS3rver } from '../lib/embedded-packages.js';

/**
 * The embedded object store: s3rver in-process on 127.0.0.1, files under
 * DATA_DIR/media, so `npm start` needs no S3 and the same S3 client code runs. s3rver is a
 * development dependency, loaded only here: without it (a production install) this throws
 * a ConfigError saying to set S3_ENDPOINT.
 */
export async function startEmbeddedS3(dataDir: string, bucket: string): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const S3rver = await loadS3rver();
  const directory = join(dataDir, 'media');
  await mkdir(directory, { recursive: true });
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: [{ name: bucket, configs: [] }] });
  const { port } = await server.run();
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => server.close() };
}
