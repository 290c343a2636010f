import { z } from 'zod';
import { errorCatalogue, type ErrorCode } from '../errors.js';

/**
 * Every error answer: application/problem+json (RFC 9457). `code` is one of the
 * catalogue's (src/errors.ts; GET /problems/<code> describes it). Some codes add fields:
 * validation-failed its `errors`, cursor-expired `buckets` and `resetCursor`.
 */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

const codes = Object.keys(errorCatalogue) as [ErrorCode, ...ErrorCode[]];

export const violation = z
  .object({
    path: z.string().meta({ description: 'JSON path of the offending value (`mutations.3.payload.lines`); empty for the whole value' }),
    message: z.string(),
  })
  .meta({ description: 'one offending value' });

export const problem = z
  .object({
    type: z.string().meta({ description: '`/problems/<code>`: GET it for the code\'s description', example: '/problems/validation-failed' }),
    title: z.string().meta({ description: "the code's title, the same for every answer of the code" }),
    status: z.number().int().min(400).max(599),
    code: z.enum(codes).meta({ description: 'machine-readable: branch on it, never on the title or detail' }),
    detail: z.string().optional().meta({ description: 'what exactly was wrong, in words (4xx only)' }),
    errors: z.array(violation).optional().meta({ description: 'validation-failed: every offending path' }),
    buckets: z.array(z.string()).optional().meta({ description: 'cursor-expired: the buckets to drop' }),
    resetCursor: z.string().nullable().optional().meta({ description: 'cursor-expired: continue with it (null: drop everything and pull without a cursor)' }),
    requestId: z.string().meta({ description: 'the same as the X-Request-Id header; quote it when reporting a 500' }),
  })
  .meta({ id: 'Problem', description: 'An error (RFC 9457 problem details)' });
export type Problem = z.output<typeof problem>;

/** GET /problems/{code}: what a code means. */
export const problemDescription = z
  .object({ code: z.enum(codes), status: z.number().int(), title: z.string() })
  .meta({ id: 'ProblemDescription' });
