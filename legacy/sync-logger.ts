/**
 * Logging of the reference Sync app: structured (pino) logs, plus an adapter
 * that routes Sails' own logger (captains-log) into the same pino logger.
 */
import { pino } from 'pino';

type LogFn = (fields: Record<string, unknown>, msg?: string) => void;

/** The subset of a pino logger the app uses; any pino logger fits. */
export interface SyncLogger {
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
}

/** pino on stderr (stdout stays free for the CLI's own lines), level from LOG_LEVEL. */
export function defaultSyncLogger(): SyncLogger {
  return pino({ name: 'sync-reference', level: process.env.LOG_LEVEL ?? 'info' }, pino.destination(2));
}

/** Sails log levels, from noisiest to quietest (captains-log names). */
export type SailsLogLevel = 'silly' | 'verbose' | 'info' | 'debug' | 'warn' | 'error' | 'silent';

/**
 * `sails.config.log` pointing captains-log at a SyncLogger. captains-log
 * formats its arguments into one string and hands it to these methods.
 */
export function sailsLogConfig(log: SyncLogger, level: SailsLogLevel): Record<string, unknown> {
  const at = (fn: LogFn) => (...args: unknown[]) => fn.call(log, { component: 'sails' }, args.map(String).join(' '));
  return {
    level,
    inspect: true,
    noShip: true,
    custom: {
      log: at(log.info),
      silly: at(log.debug),
      verbose: at(log.debug),
      debug: at(log.debug),
      info: at(log.info),
      warn: at(log.warn),
      error: at(log.error),
      crit: at(log.error),
      blank: () => {},
    },
  };
}
