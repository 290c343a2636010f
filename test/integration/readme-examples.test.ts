import { readFile } from 'node:fs/promises';
import test from 'ava';
import { captureExamples, DART, EXAMPLES, README, renderReadme } from '../helpers/readme-examples.js';

/**
 * The README's examples (commands and answers), its Dart snippets and its event table,
 * and the OpenAPI document's examples, are what the server and the example file really
 * give: captured afresh here and compared. On a difference, `npm run docs:examples`
 * rewrites them (review the diff: a changed answer is a changed contract).
 */
test('the README and docs/examples.json show real answers, the Dart example file and the event schemas as they are', async (t) => {
  const capture = await captureExamples();
  const stored = JSON.parse(await readFile(EXAMPLES, 'utf8')) as unknown;
  t.deepEqual(stored, JSON.parse(JSON.stringify(capture.examples)), 'docs/examples.json differs from a fresh capture: run npm run docs:examples');
  const readme = await readFile(README, 'utf8');
  const rendered = renderReadme(readme, capture, await readFile(DART, 'utf8'));
  if (rendered !== readme) {
    const a = readme.split('\n');
    const b = rendered.split('\n');
    const line = a.findIndex((l, i) => l !== b[i]);
    t.fail(`README.md line ${line + 1} differs from a fresh capture (run npm run docs:examples):\n  README:  ${a[line]}\n  capture: ${b[line]}`);
  }
  for (const name of ['login', 'me', 'pull-first', 'pull-next', 'push', 'push-again', 'cursor-expired', 'users-list', 'users-create', 'image-upload', 'manifest']) {
    t.true(readme.includes(`<!-- example: ${name} -->`), `the README shows ${name}`);
  }
  for (const region of ['api', 'login', 'checksum', 'pull-loop', 'upload-queue', 'push-channel']) {
    t.true(readme.includes(`<!-- dart: ${region} -->`), `the README includes the Dart region ${region}`);
  }
});

test('the push example applies on the demo data as written: an order for his own client, in stock', async (t) => {
  const { examples } = { examples: JSON.parse(await readFile(EXAMPLES, 'utf8')) as Record<string, { answer: { results: { status: string; error?: { code: string } }[] } }> };
  const [own, foreign] = examples.push!.answer.results;
  t.is(own!.status, 'applied');
  t.is(foreign!.error?.code, 'client_not_yours');
  t.deepEqual(examples['push-again']!.answer.results.map((r) => r.status), ['duplicate', 'duplicate']);
});
