import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { AppError } from '../../errors.js';
import { docsAssetParams, openApiShape } from '../../protocol/system.js';
import { route, type Route } from '../route.js';

/** Swagger UI's files, served from the installed package: no CDN (the machines reach nothing outside). */
const UI_DIR = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
const ASSETS: Record<string, string> = {
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui.css': 'text/css; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

/** The page loads its own script (no inline script, so a strict Content-Security-Policy holds). */
const INIT = `window.addEventListener('load', () => {
  window.ui = SwaggerUIBundle({ url: '../openapi.json', dom_id: '#ui', deepLinking: true, validatorUrl: null, tryItOutEnabled: false,
    defaultModelsExpandDepth: 0, docExpansion: 'list', persistAuthorization: false });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>fieldsync API</title>
  <link rel="icon" href="docs/favicon-32x32.png">
  <link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
  <div id="ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/init.js"></script>
</body>
</html>
`;

/**
 * GET /openapi.json (the document, made once on first ask from the route table) and
 * GET /docs, a Swagger UI page for people, with its assets.
 */
export function docsRoutes(document: () => Record<string, unknown>): Route[] {
  let json: string | undefined;
  const assets = new Map<string, Buffer>();
  const CACHE = 'public, max-age=3600';
  return [
    route({
      method: 'GET',
      path: '/openapi.json',
      tag: 'system',
      summary: 'This OpenAPI 3.1 document',
      description: 'Generate a client from it, e.g. openapi-generator\'s dart-dio (see the README).',
      auth: 'public',
      responses: { 200: { description: 'the document', schema: openApiShape } },
      handler() {
        json ??= JSON.stringify(document());
        return { body: json, headers: { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-cache' } };
      },
    }),
    route({
      method: 'GET',
      path: '/docs',
      tag: 'system',
      summary: 'The API reference, for people (Swagger UI)',
      auth: 'public',
      responses: { 200: { description: 'an HTML page', contentType: 'text/html' } },
      handler() {
        return { body: PAGE, headers: { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': CACHE } };
      },
    }),
    route({
      method: 'GET',
      path: '/docs/:file',
      tag: 'system',
      summary: "The reference page's scripts and styles",
      auth: 'public',
      params: docsAssetParams,
      responses: { 200: { description: 'a script, a style sheet or an icon', contentType: '*/*' } },
      errors: ['not-found'],
      async handler({ params }) {
        const { file } = params;
        if (file === 'init.js') return { body: INIT, headers: { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': CACHE } };
        const type = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
        if (type === undefined) throw new AppError('not-found');
        let bytes = assets.get(file);
        if (!bytes) assets.set(file, (bytes = await readFile(join(UI_DIR, file))));
        return { body: bytes, headers: { 'Content-Type': type, 'Cache-Control': CACHE } };
      },
    }),
  ];
}
