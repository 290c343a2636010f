import type { RejectionCode } from '../protocol/mutations.js';

/** A business rejection: final for the mutation id, recorded in the ledger, effects undone. */
export class Rejected extends Error {
  constructor(
    readonly code: RejectionCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'Rejected';
  }
}
