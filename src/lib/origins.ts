/**
 * Browser origins allowed to call the API (CORS_ORIGINS): exact origins as a browser
 * sends them in its Origin header (`http://localhost:5000`: scheme, host, port only),
 * or `*` for any. HTTP (src/http/app.ts) and the Socket.IO channel ask the same predicate.
 */

/**
 * Why `entry` is not an origin CORS_ORIGINS can hold, or undefined when it is one. An
 * origin is compared byte for byte with the Origin header, so it must be written exactly
 * as browsers send it: lower case, no path or trailing slash, no default port.
 */
export function originProblem(entry: string): string | undefined {
  if (entry === '*') return undefined;
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return `"${entry}" is not an origin: write scheme, host and optional port, e.g. http://localhost:5000`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `"${entry}" is not an http or https origin: write the scheme, e.g. http://localhost:5000`;
  if (url.origin !== entry) return `"${entry}" is not an origin as browsers send it (no path, query, trailing slash or default port; lower case): did you mean "${url.origin}"?`;
  return undefined;
}

/** A predicate over the request's Origin header; `*` in the list allows any origin. */
export function originAllowed(allowed: readonly string[]): (origin: string | undefined) => boolean {
  if (allowed.includes('*')) return (origin) => origin !== undefined && origin !== '';
  const set = new Set(allowed);
  return (origin) => origin !== undefined && set.has(origin);
}
