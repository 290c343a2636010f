import type { Db } from '../db/pg.js';
import type { Logger } from '../observability/logger.js';
import type { Model } from '../model/model.js';
import { SyncConfigError } from '../model/config.js';
import { loadModel } from '../model/load.js';
import type { CheckedConfig } from '../model/config.js';
import { installedHash } from './apply.js';
import { planInstall } from './plan.js';

export interface DriftState {
  /** true while the database matches the config this process runs with */
  ok: boolean;
  /** what differs, for /ready and the log */
  problems: string[];
  checkedAt: number;
}

/**
 * Watches for the ERP's schema moving under the config (item 6 of issue 10): a deploy that
 * recreates a synced table (its triggers go with it), renames a synced column, or an
 * operator dropping a trigger. Every interval it checks the config against the live
 * database (loadModel) and the installed capture objects against the config
 * (planInstall). While they differ, pull answers 503 `config-drift` instead of data that
 * may be stale, /ready says why, a metric is 1, and one error line is logged per change
 * of state. Re-running `npm run sync:install` (after fixing the config) heals it.
 */
export class DriftMonitor {
  readonly state: DriftState = { ok: true, problems: [], checkedAt: 0 };
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly config: CheckedConfig,
    private readonly model: Model,
    private readonly log: Logger,
    private readonly onChange: (ok: boolean) => void = () => undefined,
  ) {}

  start(intervalMs: number): void {
    const run = async () => {
      await this.check().catch((err: unknown) => this.log.warn({ err }, 'config drift check failed'));
      if (!this.stopped) {
        this.timer = setTimeout(() => void run(), intervalMs);
        this.timer.unref();
      }
    };
    this.timer = setTimeout(() => void run(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** One check now; resolves with the new state. */
  async check(): Promise<DriftState> {
    const problems: string[] = [];
    try {
      await this.db.task('bg:drift', async (t) => {
        const live = await loadModel(t, this.config);
        const have = await installedHash(t, this.model.schema);
        const plan = await planInstall(t, live);
        if (have === undefined) problems.push(`fieldsync is not installed in this database (schema ${this.model.schema})`);
        for (const step of plan.steps) if (step.why) problems.push(step.why);
      });
    } catch (err) {
      if (!(err instanceof SyncConfigError)) throw err;
      problems.push(...err.problems);
    }
    const ok = problems.length === 0;
    if (ok !== this.state.ok) {
      if (ok) this.log.info('the database matches the sync config again: pulls are served');
      else this.log.error({ problems }, 'the database no longer matches the sync config: pulls answer 503 config-drift until `npm run sync:install` is run');
      this.onChange(ok);
    }
    Object.assign(this.state, { ok, problems, checkedAt: Date.now() });
    return this.state;
  }
}
