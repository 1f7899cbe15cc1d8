/**
 * The file ramp store: `.bifrost/ramp.json` (BIFROST_RAMP_FILE). Writers
 * serialize on a short lock (proper-lockfile: atomic mkdir of `<file>.lock`,
 * refreshed while held, taken over when stale), then write a temporary file,
 * fsync and rename it over the state file, so a reader never sees half a
 * document. A file that cannot be parsed is refused and never overwritten.
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { writeFileAtomic } from '../../proxy/flags-file.ts';
import { CliError, EXIT_USAGE } from '../output.ts';
import { rampDocProblem, type RampDoc } from './ramp-state.ts';
import type { RampDecision, RampStore } from './ramp-store.ts';
import { TransientError } from './retry.ts';

export const DEFAULT_RAMP_FILE = '.bifrost/ramp.json';

export class FileRampStore implements RampStore {
  readonly description: string;

  constructor(
    readonly file: string,
    private readonly lockWaitMs = 15_000,
  ) {
    this.description = `file ${file}`;
  }

  async read(): Promise<RampDoc | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CliError(`cannot read ramp state ${this.file}: ${(err as Error).message}`, EXIT_USAGE);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new CliError(`ramp state ${this.file} is corrupt (not JSON: ${(err as Error).message}); it was left untouched — move it away to start over`, EXIT_USAGE);
    }
    const problem = rampDocProblem(doc);
    if (problem) throw new CliError(`ramp state ${this.file} is corrupt (${problem}); it was left untouched — move it away to start over`, EXIT_USAGE);
    return doc as RampDoc;
  }

  async update<T>(decide: (current: RampDoc | null) => RampDecision<T>): Promise<T> {
    await mkdir(path.dirname(path.resolve(this.file)), { recursive: true });
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.file, {
        realpath: false,
        lockfilePath: `${this.file}.lock`,
        stale: 10_000,
        retries: { retries: Math.ceil(this.lockWaitMs / 50), minTimeout: 5, maxTimeout: 100, factor: 1.3, randomize: true },
      });
    } catch (err) {
      throw new TransientError(`could not lock ${this.file} (${(err as Error).message}); retry in a moment`);
    }
    try {
      const current = await this.read();
      const { next, result } = decide(current);
      if (next) await writeFileAtomic(this.file, JSON.stringify({ ...next, version: (current?.version ?? 0) + 1 }, null, 2) + '\n');
      return result;
    } finally {
      await release().catch(() => {});
    }
  }

  async close(): Promise<void> {}
}
