/**
 * The promise's result, or a rejection after `ms`: a dependency that does not answer in
 * time counts as down. If the timeout wins, a late failure of `p` is swallowed, never
 * left unhandled.
 */
export function within<T>(ms: number, p: Promise<T>, what = 'the operation'): Promise<T> {
  p.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
