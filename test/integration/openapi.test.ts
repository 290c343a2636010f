import { createServer, type Server } from 'node:http';
import test from 'ava';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { openApiPath } from '../../src/http/openapi.js';
import { watchAnswers } from '../helpers/conformance.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { loadFixture, FIXTURE_PASSWORD } from '../helpers/fixture.js';

let s: TestServer;
let doc: { paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>>; components: { securitySchemes: Record<string, unknown> } };

test.before(async () => {
  s = await startTestServer();
  await loadFixture(s.db);
  await s.settle();
  doc = (await (await s.fetch('/openapi.json')).json()) as typeof doc;
});

test.after.always(async () => {
  await s?.close();
});

test('every route of the route table is in the document, with a unique operationId and its error answers', (t) => {
  const ids = new Set<string>();
  for (const r of s.routes) {
    const op = doc.paths[openApiPath(r.path)]?.[r.method.toLowerCase()];
    if (!op) {
      t.fail(`${r.method} ${r.path} is not in the document`);
      continue;
    }
    t.false(ids.has(op.operationId), `operationId ${op.operationId} is unique`);
    ids.add(op.operationId);
    t.truthy(op.responses['500'], `${r.method} ${r.path} documents 500`);
    if (r.auth !== 'public') t.truthy(op.responses['401'], `${r.method} ${r.path} documents 401`);
  }
  t.is(Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0), s.routes.length, 'and nothing else');
  t.deepEqual(Object.keys(doc.components.securitySchemes), ['bearer']);
});

test('the document passes the Redocly linter (recommended rules), its examples valid against their schemas', async (t) => {
  // health, metrics and the docs themselves answer no client errors: the one rule that does not fit
  const config = await createConfig({ extends: ['recommended'], rules: { 'operation-4xx-response': 'off' } });
  const problems = await lintFromString({ source: JSON.stringify(doc), absoluteRef: 'openapi.json', config });
  t.deepEqual(
    problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? ''}`),
    [],
  );
});

test('the docs page and its assets are served from this server: no CDN, nothing fetched from elsewhere', async (t) => {
  const page = await s.fetch('/docs');
  t.is(page.status, 200);
  t.regex(page.headers.get('content-type') ?? '', /^text\/html/);
  const html = await page.text();
  t.notRegex(html, /https?:\/\//, 'no absolute URL in the page');
  const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  t.true(assets.length >= 3);
  for (const asset of assets) {
    const res = await s.fetch(`/${asset}`);
    t.is(res.status, 200, asset);
    t.true((await res.arrayBuffer()).byteLength > 0, asset);
  }
  const init = await (await s.fetch('/docs/init.js')).text();
  t.regex(init, /url: '\.\.\/openapi\.json'/, 'the page reads the document of this server');
  t.regex(init, /validatorUrl: null/, "Swagger UI's online validator is off (it would call validator.swagger.io)");
  t.is((await s.fetch('/docs/package.json')).status, 404, 'only the listed assets');
  t.is((await s.fetch('/docs/..%2Fpackage.json')).status, 404);
});

test('a first pull may send cursor: null (and app: null): the same as none', async (t) => {
  const login = (await (await s.post('/v1/auth/login', { email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD })).json()) as { token: string };
  const auth = { authorization: `Bearer ${login.token}` };
  const withNull = await s.post('/v1/sync/pull', { cursor: null, app: null, limit: 5 }, auth);
  t.is(withNull.status, 200);
  const without = await s.post('/v1/sync/pull', { limit: 5 }, auth);
  const [a, b] = [(await withNull.json()) as { buckets: unknown; changes: unknown }, (await without.json()) as { buckets: unknown; changes: unknown }];
  t.deepEqual(a.buckets, b.buckets);
  t.deepEqual(a.changes, b.changes);
  t.is((await s.post('/v1/sync/pull', { cursor: '' }, auth)).status, 400, 'an empty cursor is not "none"');
  t.is((await s.post('/v1/sync/pull', { cursor: 7 }, auth)).status, 400);
});

/** A tiny server answering what it is told, watched against a two-route document. */
async function fake(answer: { status: number; type: string; body: string }): Promise<{ server: Server; url: string; violations: string[] }> {
  const document = {
    openapi: '3.1.0',
    paths: {
      '/things/{id}': {
        get: {
          responses: {
            200: { content: { 'application/json': { schema: { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'], additionalProperties: false } } } },
            404: { content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
          },
        },
      },
    },
    components: { schemas: { Problem: { type: 'object', required: ['code'], properties: { code: { type: 'string' } } } } },
  };
  const server = createServer((_req, res) => {
    res.writeHead(answer.status, { 'content-type': answer.type });
    res.end(answer.body);
  });
  const watch = watchAnswers(server, () => document);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}`, violations: watch.violations };
}

test('the conformance watch catches an answer that is not what the document says', async (t) => {
  const cases = [
    { answer: { status: 200, type: 'application/json', body: '{"id":1}' }, bad: false },
    { answer: { status: 200, type: 'application/json', body: '{"id":"1"}' }, bad: true }, // wrong type
    { answer: { status: 200, type: 'application/json', body: '{"id":1,"extra":true}' }, bad: true }, // a field the schema does not have
    { answer: { status: 201, type: 'application/json', body: '{"id":1}' }, bad: true }, // an undocumented status
    { answer: { status: 200, type: 'text/html', body: '<p>' }, bad: true }, // another media type
    { answer: { status: 404, type: 'application/problem+json', body: '{"title":"x"}' }, bad: true }, // no code
  ];
  for (const { answer, bad } of cases) {
    const f = await fake(answer);
    await fetch(`${f.url}/things/7`).then((r) => r.text());
    await new Promise((resolve) => setImmediate(resolve));
    t.is(f.violations.length > 0, bad, `${answer.status} ${answer.type} ${answer.body}: ${f.violations.join('; ')}`);
    await new Promise((resolve) => f.server.close(resolve));
  }
});
