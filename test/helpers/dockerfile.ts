import { spawn } from 'node:child_process';
import { cp, copyFile, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';

/**
 * Enough of Docker to replay the repository's Dockerfile without Docker: a parser for the
 * instructions it uses (anything else fails), the build context's .dockerignore, and a
 * replay that gives each stage a folder standing for its filesystem root, copies what
 * its COPY lines copy and runs its RUN lines there with the stage's ENV. The base image is
 * not replayed: the host's node and npm stand in for it (lintDockerfile checks its tag).
 */

export type Instruction =
  | { op: 'FROM'; line: number; image: string; as: string | undefined }
  | { op: 'WORKDIR'; line: number; path: string }
  | { op: 'ENV'; line: number; vars: [string, string][] }
  | { op: 'COPY'; line: number; from: string | undefined; chown: string | undefined; sources: string[]; dest: string }
  | { op: 'RUN'; line: number; cacheMounts: string[]; command: string | string[] }
  | { op: 'USER'; line: number; user: string }
  | { op: 'EXPOSE'; line: number; ports: string[] }
  | { op: 'HEALTHCHECK'; line: number; options: Record<string, string>; command: string[] | string | 'NONE' }
  | { op: 'CMD'; line: number; command: string[] | string };

export interface Stage {
  name: string;
  image: string;
  instructions: Instruction[];
}

/** Exec form (a JSON array of strings) or shell form (the text as written). */
function commandOf(text: string, line: number): string[] | string {
  const t = text.trim();
  if (!t.startsWith('[')) return t;
  let parsed: unknown;
  try {
    parsed = JSON.parse(t);
  } catch {
    throw new Error(`Dockerfile line ${line}: exec form is not a JSON array: ${t}`);
  }
  if (!Array.isArray(parsed) || parsed.some((p) => typeof p !== 'string')) throw new Error(`Dockerfile line ${line}: exec form must be an array of strings`);
  return parsed as string[];
}

/** Leading `--name=value` flags of an instruction's arguments. */
function flags(args: string, allowed: string[], line: number, op: string): { flags: Record<string, string[]>; rest: string } {
  const found: Record<string, string[]> = {};
  let rest = args.trimStart();
  for (let m = /^--([a-z-]+)=(\S+)\s+/.exec(rest); m; m = /^--([a-z-]+)=(\S+)\s+/.exec(rest)) {
    if (!allowed.includes(m[1]!)) throw new Error(`Dockerfile line ${line}: ${op} --${m[1]} is not understood by this replay`);
    (found[m[1]!] ??= []).push(m[2]!);
    rest = rest.slice(m[0].length);
  }
  if (/^--\S/.test(rest)) throw new Error(`Dockerfile line ${line}: ${op} flag not understood: ${rest.split(/\s/)[0]}`);
  return { flags: found, rest };
}

function unquote(v: string): string {
  return /^"(.*)"$/.test(v) || /^'(.*)'$/.test(v) ? v.slice(1, -1) : v;
}

/** Parses a Dockerfile into its stages; throws on an instruction (or a form of one) it does not understand. */
export function parseDockerfile(text: string): Stage[] {
  // logical lines: comments and blank lines dropped (also inside continuations), `\` joins
  const logical: { line: number; text: string }[] = [];
  let pending: { line: number; text: string } | undefined;
  text.split('\n').forEach((raw, i) => {
    const l = raw.replace(/\r$/, '');
    if (/^\s*#/.test(l) || (l.trim() === '' && !pending)) return;
    if (l.trim() === '') return;
    const cont = /\\\s*$/.test(l);
    const part = cont ? l.replace(/\\\s*$/, '') : l;
    if (pending) pending.text += ' ' + part.trim();
    else pending = { line: i + 1, text: part.trim() };
    if (!cont) {
      logical.push(pending);
      pending = undefined;
    }
  });
  if (pending) throw new Error(`Dockerfile line ${pending.line}: ends in a line continuation`);

  const stages: Stage[] = [];
  for (const { line, text: l } of logical) {
    const [, word, args = ''] = /^(\S+)\s*(.*)$/.exec(l)!;
    const op = word!.toUpperCase();
    if (op !== 'FROM' && stages.length === 0) throw new Error(`Dockerfile line ${line}: ${op} before the first FROM`);
    const stage = stages[stages.length - 1]!;
    if (/\$\{?\w/.test(args) && op !== 'RUN' && op !== 'HEALTHCHECK' && op !== 'CMD') throw new Error(`Dockerfile line ${line}: variable substitution is not understood by this replay`);
    switch (op) {
      case 'FROM': {
        const { rest } = flags(args, [], line, op);
        const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest.trim());
        if (!m) throw new Error(`Dockerfile line ${line}: FROM not understood: ${args}`);
        stages.push({ name: m[2] ?? String(stages.length), image: m[1]!, instructions: [{ op: 'FROM', line, image: m[1]!, as: m[2] }] });
        break;
      }
      case 'WORKDIR':
        stage.instructions.push({ op, line, path: args.trim() });
        break;
      case 'ENV': {
        const vars: [string, string][] = [];
        if (/^\w+=/.test(args)) {
          for (const m of args.matchAll(/(\w+)=("[^"]*"|'[^']*'|\S*)/g)) vars.push([m[1]!, unquote(m[2]!)]);
        } else {
          const m = /^(\w+)\s+(.+)$/.exec(args.trim());
          if (!m) throw new Error(`Dockerfile line ${line}: ENV not understood: ${args}`);
          vars.push([m[1]!, unquote(m[2]!.trim())]);
        }
        stage.instructions.push({ op, line, vars });
        break;
      }
      case 'COPY': {
        const { flags: f, rest } = flags(args, ['from', 'chown', 'chmod'], line, op);
        const parts = commandOf(rest, line);
        const list = Array.isArray(parts) ? parts : parts.split(/\s+/);
        if (list.length < 2) throw new Error(`Dockerfile line ${line}: COPY needs a source and a destination`);
        if (list.some((p) => /[*?[]/.test(p))) throw new Error(`Dockerfile line ${line}: COPY wildcards are not understood by this replay`);
        stage.instructions.push({ op, line, from: f.from?.[0], chown: f.chown?.[0], sources: list.slice(0, -1), dest: list[list.length - 1]! });
        break;
      }
      case 'RUN': {
        const { flags: f, rest } = flags(args, ['mount'], line, op);
        const cacheMounts = (f.mount ?? []).map((m) => {
          const kv = Object.fromEntries(m.split(',').map((p) => p.split('=') as [string, string]));
          if (kv.type !== 'cache' || !kv.target) throw new Error(`Dockerfile line ${line}: RUN --mount=${m}: only type=cache mounts are understood`);
          return kv.target;
        });
        stage.instructions.push({ op, line, cacheMounts, command: commandOf(rest, line) });
        break;
      }
      case 'USER':
        stage.instructions.push({ op, line, user: args.trim() });
        break;
      case 'EXPOSE':
        stage.instructions.push({ op, line, ports: args.trim().split(/\s+/) });
        break;
      case 'HEALTHCHECK': {
        if (args.trim().toUpperCase() === 'NONE') {
          stage.instructions.push({ op, line, options: {}, command: 'NONE' });
          break;
        }
        const { flags: f, rest } = flags(args, ['interval', 'timeout', 'start-period', 'start-interval', 'retries'], line, op);
        const m = /^CMD\s+(.+)$/i.exec(rest.trim());
        if (!m) throw new Error(`Dockerfile line ${line}: HEALTHCHECK needs CMD or NONE`);
        stage.instructions.push({ op, line, options: Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v[0]!])), command: commandOf(m[1]!, line) });
        break;
      }
      case 'CMD':
        stage.instructions.push({ op, line, command: commandOf(args, line) });
        break;
      default:
        throw new Error(`Dockerfile line ${line}: ${op} is not understood by this replay`);
    }
  }
  if (stages.length === 0) throw new Error('Dockerfile: no FROM');
  return stages;
}

/** The state a stage ends in: its environment, working directory, user, command. */
export interface StageState {
  env: Record<string, string>;
  workdir: string;
  user: string;
  cmd: string[] | string | undefined;
  healthcheck: string[] | string | undefined;
  expose: string[];
}

/** Walks a stage's instructions; `visit` sees each with the state in effect when it runs. */
export function walkStage(stage: Stage, visit: (i: Instruction, state: StageState) => void = () => undefined): StageState {
  const state: StageState = { env: {}, workdir: '/', user: 'root', cmd: undefined, healthcheck: undefined, expose: [] };
  for (const i of stage.instructions) {
    visit(i, state);
    if (i.op === 'ENV') for (const [k, v] of i.vars) state.env[k] = v;
    else if (i.op === 'WORKDIR') state.workdir = posix.resolve(state.workdir, i.path);
    else if (i.op === 'USER') state.user = i.user;
    else if (i.op === 'CMD') state.cmd = i.command;
    else if (i.op === 'HEALTHCHECK') state.healthcheck = i.command === 'NONE' ? undefined : i.command;
    else if (i.op === 'EXPOSE') state.expose.push(...i.ports);
  }
  return state;
}

const text = (c: string[] | string) => (Array.isArray(c) ? c.join(' ') : c);
const installs = (c: string) => /\bnpm\s+(ci|install|i)\b/.test(c);
const omitsDev = (c: string, env: Record<string, string>) => /--omit[= ]dev\b|--production\b|--only[= ]prod/.test(c) || env.NODE_ENV === 'production';

/**
 * What must hold for the image to build and run small, on the Dockerfile's text alone:
 * a current Node LTS in every FROM, devDependencies installed wherever the build runs
 * (no NODE_ENV=production, no --omit=dev before `npm run build` in its stage), and a
 * final stage in production mode, without devDependencies, as a user other than root,
 * started by node itself. Each problem names its line.
 */
export function lintDockerfile(stages: Stage[]): string[] {
  const problems: string[] = [];
  for (const s of stages) {
    const m = /^node:(\d+)[.-]/.exec(s.image);
    if (!m) problems.push(`line ${s.instructions[0]!.line}: FROM ${s.image}: not an official node image with its major version in the tag`);
    else if (!['22', '24'].includes(m[1]!)) problems.push(`line ${s.instructions[0]!.line}: FROM ${s.image}: Node ${m[1]} is not a current LTS (22 or 24)`);
    let installedWithoutDev: { line: number; why: string } | undefined;
    walkStage(s, (i, state) => {
      if (i.op !== 'RUN') return;
      const c = text(i.command);
      if (installs(c)) installedWithoutDev = omitsDev(c, state.env) ? { line: i.line, why: state.env.NODE_ENV === 'production' ? 'NODE_ENV=production is set' : 'it omits dev' } : undefined;
      if (/\bnpm\s+run\s+build\b|\btsc\b/.test(c) && installedWithoutDev) {
        problems.push(`line ${i.line}: stage ${s.name} builds, but its npm install on line ${installedWithoutDev.line} leaves out the devDependencies (${installedWithoutDev.why}): typescript is missing and the build fails`);
      }
    });
  }
  const last = stages[stages.length - 1]!;
  const end = walkStage(last, (i, state) => {
    if (i.op === 'RUN' && installs(text(i.command)) && !omitsDev(text(i.command), state.env)) problems.push(`line ${i.line}: the final stage installs the devDependencies`);
  });
  if (end.env.NODE_ENV !== 'production') problems.push(`final stage ${last.name}: NODE_ENV is not production`);
  if (['root', '0', '0:0'].includes(end.user)) problems.push(`final stage ${last.name}: runs as root (no USER)`);
  if (!Array.isArray(end.cmd) || end.cmd[0] !== 'node') problems.push(`final stage ${last.name}: CMD must start node itself in exec form (signals reach it)`);
  if (!end.healthcheck) problems.push(`final stage ${last.name}: no HEALTHCHECK`);
  return problems;
}

/** A .dockerignore's rules, in order; the last matching one decides (`!` re-includes). */
export function parseDockerignore(content: string): { negate: boolean; re: RegExp; pattern: string }[] {
  return content
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, '')).replace(/\/+$/, '');
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i]!;
        if (c === '*' && pattern[i + 1] === '*') {
          i++;
          if (pattern[i + 1] === '/') {
            i++;
            re += '(?:.*/)?';
          } else re += '.*';
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}$`), pattern };
    });
}

/** Docker's rule: a path is out of the context when a pattern matches it or one of its parent folders. */
export function isIgnored(rules: ReturnType<typeof parseDockerignore>, rel: string): boolean {
  const parts = rel.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const r of rules) if (prefixes.some((p) => r.re.test(p))) ignored = !r.negate;
  return ignored;
}

export interface ReplayedStage {
  name: string;
  /** the folder standing for the stage's filesystem root */
  root: string;
  state: StageState;
  /** host path of a path inside the stage */
  path(p: string): string;
}

export interface ReplayOptions {
  /** the build context (the repository) */
  context: string;
  /** an empty folder; each stage gets a folder under it */
  into: string;
  /** the host's environment the RUN lines start from (PATH, HOME: the host's node and npm stand in for the base image) */
  baseEnv: Record<string, string>;
  /** one line per step, for the test's log */
  log?: (line: string) => void;
}

function run(command: string[] | string, cwd: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const [file, args] = Array.isArray(command) ? [command[0]!, command.slice(1)] : ['/bin/sh', ['-c', command]];
    const child = spawn(file, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

async function copyTree(from: string, to: string, rel: string, rules: ReturnType<typeof parseDockerignore>): Promise<number> {
  const st = await stat(from);
  if (rel !== '' && isIgnored(rules, rel)) return 0;
  if (!st.isDirectory()) {
    await mkdir(dirname(to), { recursive: true });
    await copyFile(from, to);
    return 1;
  }
  await mkdir(to, { recursive: true });
  let n = 0;
  for (const e of await readdir(from)) n += await copyTree(join(from, e), join(to, e), rel === '' ? e : `${rel}/${e}`, rules);
  return n;
}

/**
 * Replays every stage in order: WORKDIR creates the folder, COPY copies from the context
 * (minus .dockerignore) or from an earlier stage, RUN runs with the stage's ENV over
 * `baseEnv` in the working directory. A failing RUN throws with its output. USER,
 * EXPOSE, HEALTHCHECK and CMD are recorded in the stage's state.
 */
export async function replayDockerfile(stages: Stage[], opts: ReplayOptions): Promise<ReplayedStage[]> {
  const ignoreFile = join(opts.context, '.dockerignore');
  const rules = parseDockerignore(await readFile(ignoreFile, 'utf8').catch(() => ''));
  const done: ReplayedStage[] = [];
  for (const [index, stage] of stages.entries()) {
    if (done.some((d) => d.name === stage.image)) throw new Error(`stage ${stage.name}: FROM an earlier stage is not understood by this replay`);
    const root = join(opts.into, `${index}-${stage.name}`);
    await mkdir(root, { recursive: true });
    const at = (p: string) => join(root, p);
    const replayed: ReplayedStage = { name: stage.name, root, state: walkStage({ ...stage, instructions: [] }), path: at };
    const steps: { i: Instruction; state: StageState }[] = [];
    replayed.state = walkStage(stage, (i, state) => steps.push({ i, state: { ...state, env: { ...state.env } } }));
    for (const { i, state } of steps) {
      const started = Date.now();
      const inside = (p: string) => posix.resolve(state.workdir, p);
      if (i.op === 'WORKDIR') await mkdir(at(posix.resolve(state.workdir, i.path)), { recursive: true });
      else if (i.op === 'COPY') {
        const toDir = i.dest.endsWith('/') || i.sources.length > 1;
        for (const src of i.sources) {
          const dest = inside(i.dest);
          if (i.from !== undefined) {
            const other = done.find((d) => d.name === i.from);
            if (!other) throw new Error(`line ${i.line}: COPY --from=${i.from}: no earlier stage of that name`);
            const from = other.path(posix.resolve(other.state.workdir, src));
            const isDir = (await stat(from)).isDirectory();
            await cp(from, at(isDir || !toDir ? dest : posix.join(dest, posix.basename(src))), { recursive: true });
          } else {
            const rel = posix.normalize(src).replace(/^\/+|\/+$/g, '');
            const from = join(opts.context, rel);
            const isDir = await stat(from).then((s) => s.isDirectory(), () => {
              throw new Error(`line ${i.line}: COPY ${src}: not in the build context`);
            });
            if (rel !== '.' && isIgnored(rules, rel)) throw new Error(`line ${i.line}: COPY ${src}: excluded by .dockerignore`);
            const n = await copyTree(from, at(isDir || !toDir ? dest : posix.join(dest, posix.basename(rel))), rel === '.' ? '' : rel, rules);
            if (n === 0) throw new Error(`line ${i.line}: COPY ${src}: nothing left after .dockerignore`);
          }
        }
      } else if (i.op === 'RUN') {
        const cwd = at(state.workdir);
        await mkdir(cwd, { recursive: true });
        const env = { ...opts.baseEnv, ...state.env };
        const { code, output } = await run(i.command, cwd, env);
        if (code !== 0) throw new Error(`line ${i.line}: RUN ${text(i.command)} exited ${code}:\n${output.slice(-4000)}`);
      }
      if (i.op === 'COPY' || i.op === 'RUN') opts.log?.(`${stage.name} line ${i.line}: ${i.op} ${i.op === 'RUN' ? text(i.command) : i.sources.join(' ')} (${Date.now() - started} ms)`);
    }
    done.push(replayed);
  }
  return done;
}
