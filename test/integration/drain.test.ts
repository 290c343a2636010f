import test from 'ava';
import { startTestServer } from '../helpers/server.js';

/**
 * DRAIN_DELAY_MS: after SIGTERM (stop), the server answers /ready 503 while it still
 * serves, so a load balancer polling readiness takes it out before the port closes.
 */
test('during the drain delay /ready answers 503 draining while requests are still served; then the port closes', async (t) => {
  const s = await startTestServer({ DRAIN_DELAY_MS: '1500' });
  try {
    t.is((await s.fetch('/ready')).status, 200);
    const stopping = s.stop();
    const ready = await s.fetch('/ready');
    t.is(ready.status, 503);
    t.like(await ready.json(), { status: 'not-ready', checks: { draining: 'shutting down' } });
    t.is((await s.fetch('/health')).status, 200, 'still serving');
    await stopping;
    await t.throwsAsync(s.fetch('/health'), undefined, 'the port is closed after the delay');
  } finally {
    await s.close();
  }
});
