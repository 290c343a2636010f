import test from 'ava';
import { Coalescer } from '../../src/realtime/coalescer.js';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the first event fires at once; events within the window merge into one trailing firing', async (t) => {
  const fired: [number, Map<string, number>][] = [];
  const start = Date.now();
  const c = new Coalescer<number>(100, (batch) => fired.push([Date.now() - start, new Map(batch)]), (a, b) => Math.max(a, b));
  c.add('stock:1', 1);
  await wait(10);
  t.is(fired.length, 1, 'leading edge');
  t.deepEqual([...fired[0]![1]], [['stock:1', 1]]);
  for (let i = 2; i <= 50; i++) c.add('stock:1', i);
  c.add('stock:2', 7);
  await wait(10);
  t.is(fired.length, 2, 'another key has its own leading edge');
  t.deepEqual([...fired[1]![1]], [['stock:2', 7]]);
  await wait(150);
  t.is(fired.length, 3, 'one trailing firing for the burst');
  t.deepEqual([...fired[2]![1]], [['stock:1', 50]], 'merged to the latest value');
  t.true(fired[2]![0] >= 90, 'not before the window ends');
  await wait(150);
  c.add('stock:1', 51);
  await wait(10);
  t.is(fired.length, 4, 'after a quiet spell, at once again');
  c.stop();
});
