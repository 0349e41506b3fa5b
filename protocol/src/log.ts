/**
 * The logging interface the protocol package writes to. Callers pass one in (never a singleton);
 * the gateway adapts its own structured logger to it. Secrets, PINs and keys are never passed.
 */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

const noop = (): void => undefined;
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LEVELS)[number];

/** One JSON object a line on stderr, or a short readable line when stderr is a terminal. */
export function streamLogger(name: string, level: LogLevel = 'info', out: NodeJS.WritableStream = process.stderr): Logger {
  const min = LEVELS.indexOf(level);
  const pretty = (out as { isTTY?: boolean }).isTTY === true;
  const write = (lvl: LogLevel) => (msg: string, fields?: LogFields) => {
    if (LEVELS.indexOf(lvl) < min) return;
    if (pretty) {
      const extra = fields ? Object.entries(fields).map(([k, v]) => `${k}=${String(v)}`).join(' ') : '';
      out.write(`${new Date().toISOString().slice(11, 23)} ${lvl.padEnd(5)} [${name}] ${msg}${extra ? ` ${extra}` : ''}\n`);
    } else {
      out.write(`${JSON.stringify({ t: new Date().toISOString(), level: lvl, name, msg, ...fields })}\n`);
    }
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}
