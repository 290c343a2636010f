import { randomUUID } from 'node:crypto';
import autocannon from 'autocannon';
import type { RunningServer } from '../src/server.js';
import type { Measurement } from './harness.js';

/**
 * Offline-write throughput: each request is a phone uploading a batch of `batch` order
 * mutations of 5 lines each; a share of requests (`retryShare`) resends a batch sent
 * before, as a phone does after a lost reply, and must come back as duplicates.
 */
export async function benchPush(
  server: RunningServer,
  token: string,
  opts: { seconds: number; connections: number; batch?: number; retryShare?: number },
): Promise<{ m: Measurement; mutationsPerSec: number; applied: number; duplicates: number; rejected: number }> {
  const batch = opts.batch ?? 10;
  const retryShare = opts.retryShare ?? 0.2;
  const clients = await server.db.map('SELECT id FROM clients WHERE salesman_id = 1 AND is_active', [], (r: { id: number }) => r.id);
  const { w } = await server.db.one<{ w: number }>('SELECT coalesce(warehouse_id, 1) AS w FROM salesmen WHERE id = 1');
  const products = await server.db.map('SELECT id FROM products WHERE is_active ORDER BY id LIMIT 2000', [], (r: { id: number }) => r.id);
  // enough stock that the figure measures writes, not rejections
  await server.db.none('UPDATE stock SET qty = 10000000, reserved = 0 WHERE warehouse_id = $1 AND product_id IN ($2:csv)', [w, products]);
  const sent: string[] = [];
  const pick = () => products[Math.floor(Math.random() * products.length)]!;
  const body = (): string => {
    if (sent.length > 0 && Math.random() < retryShare) return sent[Math.floor(Math.random() * sent.length)]!;
    const mutations = Array.from({ length: batch }, () => {
      const ids = new Set<number>();
      while (ids.size < 5) ids.add(pick());
      return {
        id: randomUUID(),
        type: 'order.create',
        createdAt: Date.now(),
        payload: { orderId: randomUUID(), clientId: clients[Math.floor(Math.random() * clients.length)], lines: [...ids].map((productId) => ({ productId, qty: 1 + Math.floor(Math.random() * 5) })) },
      };
    });
    const text = JSON.stringify({ deviceId: `bench-${Math.floor(Math.random() * 1000)}`, mutations });
    if (sent.length < 5000) sent.push(text);
    return text;
  };
  const before = await server.db.one<{ a: number; r: number }>(`SELECT count(*) FILTER (WHERE status = 'applied') AS a, count(*) FILTER (WHERE status = 'rejected') AS r FROM fieldsync.mutations`);
  let duplicates = 0;
  const result = await autocannon({
    url: `${server.url}/v1/sync/push`,
    connections: opts.connections,
    duration: opts.seconds,
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'accept-encoding': 'gzip' },
    requests: [{ setupRequest: (req) => ({ ...req, body: body() }) }],
  });
  const after = await server.db.one<{ a: number; r: number }>(`SELECT count(*) FILTER (WHERE status = 'applied') AS a, count(*) FILTER (WHERE status = 'rejected') AS r FROM fieldsync.mutations`);
  const total = result.requests.total * batch;
  duplicates = total - (after.a - before.a) - (after.r - before.r);
  return {
    m: {
      name: `POST /v1/sync/push, ${batch} orders x 5 lines per request, ${Math.round(retryShare * 100)}% resent`,
      requestsPerSec: Math.round(result.requests.average),
      p50: result.latency.p50,
      p99: result.latency.p99,
      errors: result.errors,
      non2xx: result.non2xx,
    },
    mutationsPerSec: Math.round((result.requests.average * batch)),
    applied: after.a - before.a,
    duplicates,
    rejected: after.r - before.r,
  };
}
