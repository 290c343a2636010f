import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project's nginx config (docker-compose.yml mounts it into the nginx image as
 * /etc/nginx/conf.d/default.conf, i.e. inside nginx's http {} block). Both the compose
 * consistency test and the nginx test read this one path.
 */
export const NGINX_CONF_PATH = 'deploy/nginx.conf';
export const NGINX_CONF = fileURLToPath(new URL(`../../${NGINX_CONF_PATH}`, import.meta.url));
/** The nginx binary the integration test runs (Debian's package; .ci/run installs it). */
export const NGINX_BIN = process.env.NGINX_BIN ?? '/usr/sbin/nginx';

/** One nginx directive: `name args...;` or `name args... { block }`. */
export interface Directive {
  name: string;
  args: string[];
  block?: Directive[];
  line: number;
}

/** A small parser of nginx's config syntax (directives, blocks, quotes, comments): enough to check what a config says. */
export function parseNginx(text: string): Directive[] {
  const tokens: { t: string; line: number }[] = [];
  let line = 1;
  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    if (c === '\n') line++;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '{' || c === '}' || c === ';') {
      tokens.push({ t: c, line });
      i++;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let s = '';
      while (j < text.length && text[j] !== c) {
        if (text[j] === '\\' && j + 1 < text.length) {
          s += text[j + 1];
          j += 2;
        } else {
          if (text[j] === '\n') line++;
          s += text[j++];
        }
      }
      tokens.push({ t: s, line });
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s{};#]/.test(text[j]!)) j++;
      tokens.push({ t: text.slice(i, j), line });
      i = j;
    }
  }
  let pos = 0;
  const block = (nested: boolean): Directive[] => {
    const out: Directive[] = [];
    while (pos < tokens.length) {
      const first = tokens[pos++]!;
      if (first.t === '}') {
        if (!nested) throw new Error(`nginx config line ${first.line}: unexpected }`);
        return out;
      }
      const args: string[] = [];
      for (;;) {
        const tok = tokens[pos++];
        if (tok === undefined) throw new Error(`nginx config: ${first.t} (line ${first.line}) is not closed`);
        if (tok.t === ';') {
          out.push({ name: first.t, args, line: first.line });
          break;
        }
        if (tok.t === '{') {
          out.push({ name: first.t, args, block: block(true), line: first.line });
          break;
        }
        args.push(tok.t);
      }
    }
    if (nested) throw new Error('nginx config: a block is not closed');
    return out;
  };
  return block(false);
}

export interface Upstream {
  name: string;
  /** `server host:port params...` entries */
  servers: { address: string; host: string; port: number; params: string[] }[];
  /** the other directives (hash, ip_hash, keepalive, ...) */
  directives: Directive[];
}

/** The config's upstream blocks by name. */
export function upstreams(conf: Directive[]): Map<string, Upstream> {
  const out = new Map<string, Upstream>();
  for (const d of conf) {
    if (d.name !== 'upstream' || !d.block) continue;
    const servers = d.block
      .filter((x) => x.name === 'server')
      .map((x) => {
        const address = x.args[0]!;
        const m = /^(.+):(\d+)$/.exec(address);
        return { address, host: m ? m[1]! : address, port: m ? Number(m[2]) : 80, params: x.args.slice(1) };
      });
    out.set(d.args[0]!, { name: d.args[0]!, servers, directives: d.block.filter((x) => x.name !== 'server') });
  }
  return out;
}

/** Sticky by client address: `ip_hash`, or `hash $remote_addr [consistent]`. */
export const isSticky = (u: Upstream) => u.directives.some((d) => d.name === 'ip_hash' || (d.name === 'hash' && d.args[0] === '$remote_addr'));

/**
 * The project's config with only the upstream addresses (`app1:3000` -> `127.0.0.1:5xxxx`)
 * and the listen port replaced. Throws when an address to replace is missing or another
 * server line is left, so the config and the test cannot drift apart silently.
 */
export function templateNginx(text: string, servers: Record<string, string>, listen: string): string {
  let out = text;
  for (const [from, to] of Object.entries(servers)) {
    const re = new RegExp(`(^\\s*server\\s+)${from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=[\\s;])`, 'gm');
    if (!re.test(out)) throw new Error(`${NGINX_CONF_PATH}: no upstream server ${from}`);
    out = out.replace(re, `$1${to}`);
  }
  const left = [...upstreams(parseNginx(out)).values()].flatMap((u) => u.servers.map((s) => s.address)).filter((a) => !Object.values(servers).includes(a));
  if (left.length > 0) throw new Error(`${NGINX_CONF_PATH}: upstream servers the test does not know: ${left.join(', ')}`);
  const listens = out.match(/^\s*listen\s+[^;]+;/gm) ?? [];
  if (listens.length !== 1) throw new Error(`${NGINX_CONF_PATH}: expected one listen directive, found ${listens.length}`);
  return out.replace(/^(\s*listen\s+)[^;]+;/m, `$1${listen};`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const c = createConnection({ port, host: '127.0.0.1' });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });

/** Throws, saying how to get it, when the nginx binary is missing: the test needs the real one (CI installs it). */
export async function requireNginx(): Promise<void> {
  await access(NGINX_BIN, constants.X_OK).catch(() => {
    throw new Error(`nginx is not installed (${NGINX_BIN} not found): apt-get install nginx (.ci/run does it in CI), or set NGINX_BIN to the binary`);
  });
}

/** One line of the test's access log (format fieldsync_test below). */
export interface AccessLine {
  remote: string;
  method: string;
  uri: string;
  args: string;
  status: number;
  /** the upstream(s) nginx tried, in order ("127.0.0.1:1, 127.0.0.1:2" when it passed the request on) */
  upstream: string;
}

export interface RunningNginx {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  /** the config nginx runs (the project's, templated) */
  config: string;
  accessLog(): Promise<AccessLine[]>;
  errorLog(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * The real nginx binary, as a child process of the test (not a system service), on a free
 * port of 127.0.0.1, with the project's config (NGINX_CONF) wrapped in a minimal main
 * config: everything (pid, logs, temp files) in a temporary folder that stop() removes.
 * `servers` maps the config's upstream addresses to the ones to use.
 */
export async function startNginx(servers: Record<string, string>): Promise<RunningNginx> {
  await requireNginx();
  const dir = await mkdtemp(join(tmpdir(), 'fieldsync-nginx-'));
  let child: ChildProcess | undefined;
  try {
    await chmod(dir, 0o755); // nginx's workers (another user when the test runs as root) write temp files here
    const port = await freePort();
    const site = templateNginx(await readFile(NGINX_CONF, 'utf8'), servers, `127.0.0.1:${port}`);
    await writeFile(join(dir, 'fieldsync.conf'), site);
    const root = process.getuid?.() === 0;
    await writeFile(
      join(dir, 'nginx.conf'),
      `${root ? 'user root root;\n' : ''}worker_processes 1;
events { worker_connections 1024; }
http {
  log_format fieldsync_test '$remote_addr "$request_method" "$uri" "$args" $status "$upstream_addr"';
  access_log ${dir}/access.log fieldsync_test;
  client_body_temp_path ${dir}/client_body_temp;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  include ${dir}/fieldsync.conf;
}
`,
    );
    const errorLog = join(dir, 'error.log');
    const proc = spawn(NGINX_BIN, ['-e', errorLog, '-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-g', `daemon off; pid ${dir}/nginx.pid; error_log ${errorLog} notice;`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let output = '';
    proc.stdout.on('data', (b: Buffer) => (output += b.toString()));
    proc.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(port))) {
      const code = await Promise.race([exited, new Promise((r) => setTimeout(r, 20, 'running'))]);
      if (code !== 'running' || Date.now() > deadline) {
        const log = await readFile(errorLog, 'utf8').catch(() => '');
        throw new Error(`nginx did not start (${code === 'running' ? 'not listening after 10 s' : `exit ${String(code)}`}):\n${output}${log}`);
      }
    }
    let stopping: Promise<void> | undefined;
    return {
      url: `http://127.0.0.1:${port}`,
      port,
      config: site,
      async accessLog() {
        const text = await readFile(join(dir, 'access.log'), 'utf8').catch(() => '');
        return text
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => {
            const m = /^(\S+) "([^"]*)" "([^"]*)" "([^"]*)" (\d+) "([^"]*)"$/.exec(l);
            if (!m) throw new Error(`access log line not understood: ${l}`);
            return { remote: m[1]!, method: m[2]!, uri: m[3]!, args: m[4]!, status: Number(m[5]), upstream: m[6]! };
          });
      },
      errorLog: () => readFile(errorLog, 'utf8').catch(() => ''),
      stop() {
        stopping ??= (async () => {
          if (proc.exitCode === null && proc.signalCode === null) {
            proc.kill('SIGTERM'); // fast shutdown: open connections are cut
            const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(killer);
          }
          await rm(dir, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
  } catch (err) {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child!.once('exit', r));
    }
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
