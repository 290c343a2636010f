import { AppError } from '../errors.js';

/** Deepest nesting of objects and arrays a request may carry (the push body needs 5). */
export const MAX_JSON_DEPTH = 32;

/**
 * The checks every decoded input passes before its schema sees it (body, query string and
 * path parameters of every route): one rule here instead of one per field.
 *   - No NUL (U+0000) in any string or key: PostgreSQL text cannot hold it, and a value
 *     that cannot be stored must be refused before anything is written.
 *   - At most MAX_JSON_DEPTH levels of nesting: validation recurses, and a payload nested
 *     thousands of levels deep would overflow the stack (a 500) instead of being refused.
 * The walk is iterative, so the check itself cannot overflow.
 */
export function inspectInput(value: unknown, where: string): void {
  const stack: { v: unknown; path: string; depth: number }[] = [{ v: value, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { v, path, depth } = stack.pop()!;
    if (typeof v === 'string') {
      if (v.includes('\u0000')) throw refused(where, path, 'must not contain the NUL character (\\u0000)');
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= MAX_JSON_DEPTH) throw refused(where, path, `is nested deeper than ${MAX_JSON_DEPTH} levels`);
    for (const [k, child] of Object.entries(v)) {
      const at = path === '' ? k : `${path}.${k}`;
      if (k.includes('\u0000')) throw refused(where, at, 'has a key with the NUL character (\\u0000)');
      stack.push({ v: child, path: at, depth: depth + 1 });
    }
  }
}

function refused(where: string, path: string, message: string): AppError {
  return new AppError('validation-failed', `Invalid ${where}`, { errors: [{ path: path.replace(/\u0000/g, '\\u0000'), message }] });
}
