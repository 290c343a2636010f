import { z } from 'zod';

/** GET /health: the process runs. */
export const healthAnswer = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });

/** GET /ready: 200 when every check is ok, else 503 with the failing ones. */
export const readyAnswer = z
  .object({
    status: z.enum(['ready', 'not-ready']),
    checks: z.record(z.string(), z.string()).meta({ description: '`ok`, or what failed: postgres, s3, redis (with REDIS_URL), syncConfig; `draining` while the server shuts down', example: { postgres: 'ok', s3: 'ok', syncConfig: 'ok' } }),
    changes: z
      .object({
        oldestWriteTransaction: z
          .object({ seconds: z.number(), pid: z.number().int(), database: z.string().nullable() })
          .nullable()
          .meta({ description: 'the oldest open write transaction in the cluster (it delays only its own rows)' }),
        outboxBacklog: z.number().int().meta({ description: 'committed changes not indexed yet' }),
      })
      .nullable()
      .meta({ description: 'read at the call; null while PostgreSQL does not answer; never a reason to be unready' }),
  })
  .meta({ id: 'Readiness' });

/** GET /problems/{code}. */
export const problemCodeParams = z.strictObject({ code: z.string().max(64).meta({ description: 'a problem code, as in an error answer\'s `code`' }) });

/** GET /docs/{file}: the reference page's assets. */
export const docsAssetParams = z.strictObject({ file: z.string().max(64) });

/** Request headers a cacheable GET reads. */
export const conditionalHeaders = z.object({
  'if-none-match': z.string().max(1024).optional().meta({ description: 'the ETag of the answer held: 304 when it is still current' }),
});

/** GET /openapi.json: the document (its shape is OpenAPI 3.1's, not ours to repeat). */
export const openApiShape = z
  .looseObject({ openapi: z.string(), info: z.looseObject({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.unknown()) })
  .meta({ id: 'OpenApiDocument', description: 'this document' });
