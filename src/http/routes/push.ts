import { pushBody } from '../../protocol/mutations.js';
import type { PushService } from '../../push/service.js';
import { route } from '../route.js';

/**
 * POST /v1/sync/push {deviceId, mutations}: one result per mutation, in order.
 * A body that is not a valid push (not JSON, no deviceId, more than 500 mutations,
 * a mutation id that is not a UUID, ids repeated) is a 400 and nothing is applied;
 * past that, every mutation gets its own result.
 */
export function pushRoutes(push: PushService) {
  return [
    route({
      method: 'POST',
      path: '/v1/sync/push',
      auth: 'any',
      body: pushBody,
      async handler({ principal, body }) {
        return { body: await push.push(principal!, body), headers: { 'Cache-Control': 'no-store' } };
      },
    }),
  ];
}
