import { DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

export interface StorageOptions {
  endpoint: string | undefined;
  region: string;
  bucket: string;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  forcePathStyle: boolean;
}

/** A thin wrapper over one S3 bucket (S3, MinIO, s3rver): what media needs, nothing more. */
export class Storage {
  private readonly s3: S3Client;

  constructor(readonly opts: StorageOptions) {
    this.s3 = new S3Client({
      region: opts.region,
      forcePathStyle: opts.forcePathStyle,
      maxAttempts: 2,
      ...(opts.endpoint && { endpoint: opts.endpoint }),
      ...(opts.accessKeyId && opts.secretAccessKey && { credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey } }),
    });
  }

  put(key: string, body: Buffer, contentType: string, cacheControl: string): Promise<unknown> {
    return this.s3.send(new PutObjectCommand({ Bucket: this.opts.bucket, Key: key, Body: body, ContentType: contentType, CacheControl: cacheControl }));
  }

  get(key: string): Promise<GetObjectCommandOutput> {
    return this.s3.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: key }));
  }

  async remove(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.s3.send(new DeleteObjectsCommand({ Bucket: this.opts.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }));
  }

  /** Removes every object whose key starts with `prefix` (an image's variants, whatever the presets were). */
  async removePrefix(prefix: string): Promise<number> {
    let removed = 0;
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.opts.bucket, Prefix: prefix, ...(token && { ContinuationToken: token }) }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [o.Key] : []));
      await this.remove(keys);
      removed += keys.length;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return removed;
  }

  /** A short-lived GET URL for a private bucket. */
  presign(key: string, seconds: number): Promise<string> {
    return getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.opts.bucket, Key: key }), { expiresIn: seconds });
  }

  /** Reachable and the bucket exists (for /ready). */
  async check(): Promise<void> {
    await this.s3.send(new HeadBucketCommand({ Bucket: this.opts.bucket }));
  }

  close(): void {
    this.s3.destroy();
  }
}
