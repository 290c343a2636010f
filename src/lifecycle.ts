import type { Logger } from './observability/logger.js';

interface Stoppable {
  name: string;
  stop: () => Promise<void> | void;
}

/**
 * Start/stop registry: each part registers its stop right after it has started, and
 * stop() runs them in reverse order (HTTP first, the database pool last). A failing stop
 * is logged and does not keep the others from running. stop() is idempotent.
 */
export class Lifecycle {
  private readonly parts: Stoppable[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly log: Logger) {}

  /** true from the moment stop() is first called: the server is draining (GET /ready answers 503) */
  get draining(): boolean {
    return this.stopping !== undefined;
  }

  /** Records how to stop something that has just started. */
  onStop(name: string, stop: Stoppable['stop']): void {
    this.parts.push({ name, stop });
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const part of this.parts.reverse()) {
        try {
          await part.stop();
          this.log.debug({ part: part.name }, 'stopped');
        } catch (err) {
          this.log.error({ err, part: part.name }, 'failed to stop cleanly');
        }
      }
    })();
    return this.stopping;
  }
}
