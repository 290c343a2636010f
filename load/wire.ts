import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';

/** POSTs JSON asking for gzip, as dart:io does; returns bytes on the wire and the decoded body. */
export function postGzip(url: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; wireBytes: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'accept-encoding': 'gzip' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = (res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
        resolve({ status: res.statusCode ?? 0, wireBytes: raw.length, json: JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
