/**
 * Per-key coalescing with a leading edge: the first event for a key after a quiet
 * spell fires at once (one salesman sees a stock change in milliseconds); events within
 * `windowMs` after a firing are merged into one trailing firing at the window's end (a
 * burst of 500 updates becomes a few messages). Keys fire together when they are due
 * together, so a caller can batch them into one message.
 */
export class Coalescer<V> {
  private readonly lastFired = new Map<string, number>();
  private readonly pending = new Map<string, V>();
  private timer: NodeJS.Timeout | undefined;
  private dueAt = Infinity;

  constructor(
    private readonly windowMs: number,
    private readonly fire: (batch: Map<string, V>) => void,
    private readonly merge: (old: V, next: V) => V = (_o, n) => n,
    private readonly now: () => number = Date.now,
  ) {}

  add(key: string, value: V): void {
    const prev = this.pending.get(key);
    this.pending.set(key, prev === undefined ? value : this.merge(prev, value));
    const last = this.lastFired.get(key);
    const at = last === undefined || this.now() - last >= this.windowMs ? this.now() : last + this.windowMs;
    this.schedule(at);
  }

  private schedule(at: number): void {
    if (at >= this.dueAt && this.timer) return;
    clearTimeout(this.timer);
    this.dueAt = at;
    this.timer = setTimeout(() => this.flush(), Math.max(0, at - this.now()));
  }

  private flush(): void {
    this.timer = undefined;
    this.dueAt = Infinity;
    const now = this.now();
    const due = new Map<string, V>();
    let next = Infinity;
    for (const [key, value] of this.pending) {
      const last = this.lastFired.get(key);
      const at = last === undefined || now - last >= this.windowMs ? now : last + this.windowMs;
      if (at <= now) due.set(key, value);
      else next = Math.min(next, at);
    }
    for (const key of due.keys()) {
      this.pending.delete(key);
      this.lastFired.set(key, now);
    }
    // forget keys quiet for a whole window, so memory stays bounded by active keys
    for (const [key, t] of this.lastFired) if (now - t > this.windowMs && !this.pending.has(key)) this.lastFired.delete(key);
    if (next !== Infinity) this.schedule(next);
    if (due.size > 0) this.fire(due);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.pending.clear();
  }
}
