import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';

/**
 * The server as its own process (`npm start`, `node dist/main.js`): a free port, its
 * output, its exit, and a request held in flight while it is told to stop.
 */

/** A port free at the time of asking (127.0.0.1). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface Started {
  child: ChildProcess;
  /** stdout and stderr so far */
  output(): string;
  /** resolves when the process has exited (never rejects) */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** kills it (SIGKILL) if it still runs: teardown after a failed test */
  kill(): void;
}

export function start(file: string, args: string[], opts: SpawnOptions): Started {
  const child = spawn(file, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (err) => {
      output += String(err);
      resolve({ code: null, signal: null });
    });
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    output: () => output,
    exited,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Polls `url` until it answers `status`; fails early with the process's output if it exits. */
export async function waitForStatus(p: Started, url: string, status = 200, ms = 60_000): Promise<Response> {
  const deadline = Date.now() + ms;
  let last = 'no answer';
  for (;;) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`the server exited (${p.child.exitCode ?? p.child.signalCode}) before ${url} answered ${status}:\n${p.output().slice(-4000)}`);
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) }).catch((err: unknown) => (last = String(err), undefined));
    if (res?.status === status) return res;
    if (res) last = `${res.status} ${await res.text()}`;
    if (Date.now() > deadline) throw new Error(`${url} did not answer ${status} within ${ms} ms (last: ${last}):\n${p.output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves once `text` appears in the process's output. */
export async function waitForOutput(p: Started, text: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!p.output().includes(text)) {
    if (Date.now() > deadline) throw new Error(`"${text}" not in the output within ${ms} ms:\n${p.output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A login request whose body is only half sent: the server is handling it (its handler
 * waits for the rest) until finish() sends the rest; resolves with the status line and
 * body of the answer, or rejects if the connection is cut first.
 */
export async function requestInFlight(port: number, body: unknown): Promise<{ finish(): Promise<{ status: number; body: string }>; destroy(): void }> {
  const payload = Buffer.from(JSON.stringify(body));
  const half = Math.floor(payload.length / 2);
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString()));
  const closed = new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('close', () => resolve());
  });
  socket.write(
    `POST /v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n`,
  );
  socket.write(payload.subarray(0, half));
  return {
    async finish() {
      // not end(): a client that half-closes gets no answer from Node's HTTP server;
      // Connection: close makes the server close once it has answered
      socket.write(payload.subarray(half));
      await closed;
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(received);
      if (!m) throw new Error(`no HTTP answer to the request in flight, got: ${JSON.stringify(received.slice(0, 200))}`);
      return { status: Number(m[1]), body: received.slice(received.indexOf('\r\n\r\n') + 4) };
    },
    destroy: () => void socket.destroy(),
  };
}

/** Whether something accepts connections on the port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Linux: the processes whose parent is `pid`, with their command lines. */
export function childrenOf(pid: number): { pid: number; cmdline: string[] }[] {
  const found: { pid: number; cmdline: string[] }[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push({ pid: Number(e), cmdline: readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').filter((a) => a !== '') });
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/** Linux: every process below `pid` (children first, then theirs). */
export function descendantsOf(pid: number): number[] {
  const found: number[] = [];
  for (let level = [pid]; level.length > 0; ) {
    level = level.flatMap((p) => childrenOf(p).map((c) => c.pid));
    found.push(...level);
  }
  return found;
}

/** Linux: whether a process with this pid still exists (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
