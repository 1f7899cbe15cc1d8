/**
 * A logger for tests: drops everything below `error`, unless TEST_LOG_LEVEL
 * asks for more (e.g. TEST_LOG_LEVEL=debug npx vitest run …).
 */
import { pino } from 'pino';

export const silentLogger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
