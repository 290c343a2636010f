import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import S3rver from 's3rver';

/**
 * The embedded object store: s3rver in-process on 127.0.0.1, files under
 * DATA_DIR/media, so `npm start` needs no S3 and the same S3 client code runs.
 */
export async function startEmbeddedS3(dataDir: string, bucket: string): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const directory = join(dataDir, 'media');
  await mkdir(directory, { recursive: true });
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: [{ name: bucket, configs: [] }] });
  const { port } = await server.run();
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => server.close() };
}
