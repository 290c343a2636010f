import test from 'ava';
import { runHandler } from '../../src/http/route.js';

/** A read that lost its database connection runs once more; nothing else is retried. */
const lost = () => Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
function failing(times: number, err: () => Error) {
  let calls = 0;
  return { run: async () => (++calls <= times ? Promise.reject(err()) : 'answer'), calls: () => calls };
}

test('an idempotent handler that lost its connection once is run again and answers', async (t) => {
  const h = failing(1, lost);
  t.is(await runHandler(h.run, true), 'answer');
  t.is(h.calls(), 2);
});

test('a second loss is thrown (the caller is answered 503)', async (t) => {
  const h = failing(2, lost);
  await t.throwsAsync(runHandler(h.run, true), { message: /administrator command/ });
  t.is(h.calls(), 2);
});

test('a write is never run twice, and other errors are not retried', async (t) => {
  const write = failing(1, lost);
  await t.throwsAsync(runHandler(write.run, false));
  t.is(write.calls(), 1);
  const other = failing(1, () => Object.assign(new Error('syntax error'), { code: '42601' }));
  await t.throwsAsync(runHandler(other.run, true));
  t.is(other.calls(), 1);
});
