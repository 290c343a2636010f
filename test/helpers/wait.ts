export const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls (every 5 ms) until the condition holds; throws naming what it waited for after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await wait(5);
  }
}
