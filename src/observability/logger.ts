import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** `pretty`: lines for people (a terminal); `json`: one object per line (log collectors). */
export type LogFormat = 'pretty' | 'json';

type PinoPretty = typeof import('pino-pretty');
type LogRecord = Record<string, unknown>;

/**
 * The access log's fields, shown in pretty mode as `GET /v1/sync/pull 200 3.1 ms` instead
 * of a trailing object.
 */
const REQUEST_FIELDS = ['method', 'path', 'status', 'ms', 'requestId'] as const;

function prettyMessage(log: LogRecord, messageKey: string): string {
  const msg = String(log[messageKey] ?? '');
  if (msg !== 'request' || typeof log.method !== 'string') return msg;
  const line = `${log.method} ${String(log.path)} ${String(log.status)} ${String(log.ms)} ms`;
  // pino-pretty hands this function the record it prints the remaining fields from
  for (const k of REQUEST_FIELDS) delete log[k];
  return line;
}

/**
 * pino-pretty as a stream in this thread, loaded only when asked for: JSON processes never
 * load it. Synchronous writes, so the last lines before process.exit are not lost.
 */
function prettyStream(destination: NodeJS.WritableStream | undefined, colorize: boolean): DestinationStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as PinoPretty;
  return pretty.build({
    colorize,
    sync: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service',
    messageFormat: (log, messageKey) => prettyMessage(log, messageKey),
    ...(destination && { destination }),
  });
}

/**
 * Logs on stdout: JSON, or pretty lines when `format` says so (default: pretty when stdout
 * is a terminal). Secrets in headers and bodies are redacted either way. `destination`
 * replaces stdout (tests).
 */
export function createLogger(level: string, format?: LogFormat, destination?: NodeJS.WritableStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'fieldsync' },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'password', '*.password', 'token', '*.token'],
      censor: '[redacted]',
    },
  };
  const pretty = (format ?? (process.stdout.isTTY ? 'pretty' : 'json')) === 'pretty';
  // a silent logger writes nothing: no reason to load the formatter
  if (pretty && level !== 'silent') return pino(options, prettyStream(destination, destination === undefined && process.stdout.isTTY === true));
  return destination ? pino(options, destination) : pino(options);
}
