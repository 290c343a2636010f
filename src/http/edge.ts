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
  // the path of a value is only spelled out when it is refused: each frame points at its parent
  type Frame = { v: unknown; depth: number; key?: string; parent?: Frame };
  const pathOf = (f: Frame | undefined): string => {
    const keys: string[] = [];
    for (let at = f; at?.key !== undefined; at = at.parent) keys.push(at.key);
    return keys.reverse().join('.');
  };
  const stack: Frame[] = [{ v: value, depth: 0 }];
  while (stack.length > 0) {
    const f = stack.pop()!;
    if (typeof f.v === 'string') {
      if (f.v.includes('\u0000')) throw refused(where, pathOf(f), 'must not contain the NUL character (\\u0000)');
      continue;
    }
    if (typeof f.v !== 'object' || f.v === null) continue;
    if (f.depth >= MAX_JSON_DEPTH) throw refused(where, pathOf(f), `is nested deeper than ${MAX_JSON_DEPTH} levels`);
    for (const key in f.v) {
      if (!Object.hasOwn(f.v, key)) continue;
      if (key.includes('\u0000')) throw refused(where, pathOf({ v: undefined, depth: 0, key, parent: f }), 'has a key with the NUL character (\\u0000)');
      const child = (f.v as Record<string, unknown>)[key];
      // only strings and containers can be refused: numbers, booleans and null need no frame
      if (typeof child === 'string' || (typeof child === 'object' && child !== null)) stack.push({ v: child, depth: f.depth + 1, key, parent: f });
    }
  }
}

function refused(where: string, path: string, message: string): AppError {
  return new AppError('validation-failed', `Invalid ${where}`, { errors: [{ path: path.replace(/\u0000/g, '\\u0000'), message }] });
}
