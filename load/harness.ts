import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import Koa from 'koa';

export interface Measurement {
  name: string;
  requestsPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

/** Runs autocannon (in a worker thread) against one URL for `seconds` with `connections`. */
export async function measure(
  name: string,
  url: string,
  opts: { seconds?: number; connections?: number; headers?: Record<string, string>; method?: 'GET' | 'POST'; body?: string } = {},
): Promise<Measurement> {
  const result = await autocannon({
    url,
    // the load generator runs in its own thread, so it does not compete with the
    // server under test for the event loop (it still shares the machine's 2 cores)
    workers: 1,
    connections: opts.connections ?? 50,
    duration: opts.seconds ?? 10,
    headers: opts.headers ?? {},
    method: opts.method ?? 'GET',
    ...(opts.body !== undefined && { body: opts.body }),
  });
  return {
    name,
    requestsPerSec: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
  };
}

/** The reference every figure is divided by: a bare Koa "hello" route, same machine, same run. */
export async function bareKoa(): Promise<{ url: string; server: Server }> {
  const app = new Koa();
  app.use((ctx) => {
    ctx.body = { hello: 'world' };
  });
  const server = createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

export function report(reference: Measurement, rows: Measurement[]): void {
  const all = [reference, ...rows];
  console.log('\n| scenario | req/s | vs bare Koa | p50 ms | p99 ms | errors | non-2xx |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const m of all) {
    const ratio = ((m.requestsPerSec / reference.requestsPerSec) * 100).toFixed(0);
    console.log(`| ${m.name} | ${m.requestsPerSec} | ${ratio}% | ${m.p50} | ${m.p99} | ${m.errors} | ${m.non2xx} |`);
  }
}
