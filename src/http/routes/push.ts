import type { Model } from '../../model/model.js';
import { pushAnswer, pushBody, rejectionCodes } from '../../protocol/mutations.js';
import type { PushService } from '../../push/service.js';
import { route } from '../route.js';

/**
 * POST /v1/sync/push {deviceId, mutations}: one result per mutation, in order.
 * A body that is not a valid push (not JSON, no deviceId, more than 500 mutations,
 * a mutation id that is not a UUID, ids repeated) is a 400 and nothing is applied;
 * past that, every mutation gets its own result.
 */
export function pushRoutes(push: PushService, model: Pick<Model, 'mutations'>) {
  const types = Object.keys(model.mutations);
  const codes = rejectionCodes(model.mutations)
    .map((r) => `| \`${r.code}\` | ${r.meaning} | ${r.types.length === types.length ? 'every type' : r.types.join(', ')} |`)
    .join('\n');
  return [
    route({
      method: 'POST',
      path: '/v1/sync/push',
      tag: 'push',
      summary: 'Upload offline mutations (exactly once)',
      description:
        `One result per mutation, in the order sent; each mutation is its own transaction. The same mutation id again answers \`duplicate\` with the first outcome, never applies twice. Mutation types: ${types.map((t) => `\`${t}\``).join(', ')}.\n\nRejection codes (\`error.code\`); all final except \`retry_later\`:\n\n| code | meaning | types |\n|---|---|---|\n${codes}`,
      auth: 'any',
      body: pushBody,
      responses: { 200: { description: 'one result per mutation', schema: pushAnswer } },
      async handler({ principal, body }) {
        return { body: await push.push(principal!, body), headers: { 'Cache-Control': 'no-store' } };
      },
    }),
  ];
}
