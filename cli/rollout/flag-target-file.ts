/**
 * The flags-file flag target: reads and writes the `bifrost-sync-migration`
 * flag in the local flags file through proxy/flags-file.ts (full LaunchDarkly
 * flag JSON, atomic temp file + rename, the salt kept so raising the percentage
 * only adds users). The shim notices the new file within a second.
 *
 * A missing file is refused (FlagsFileMissingError, exit 2) rather than
 * created: a relative path resolved against the wrong directory would
 * otherwise produce a file no shim reads, and a "✓" for a change nobody
 * applies. `createMissing` (the `--create-flags-file` option) creates it.
 *
 * writeRollout writes the migration flag whole (proxy/flags-file.ts
 * `buildFlag`: only the salt and the version survive), so individual targets
 * and rules added to the file by hand are removed by every write. The write
 * compares the flag before and after and warns about what was removed (and
 * about any target or rule still in force that contradicts the percentage,
 * should the writer ever keep them); `read` reports those in force.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { FLAG_KEY, FlagsFileError, readFlagsFile, readRollout, writeRollout } from '../../proxy/flags-file.ts';
import { CliError, EXIT_USAGE } from '../output.ts';
import { describeOverrides, overridesOf, overridesWarning, type FlagOverride } from './flag-overrides.ts';
import { TransientError } from './retry.ts';
import type { FlagRollout, FlagTarget, FlagWrite, FlagWriteResult } from './flag-target.ts';

/** The flags file does not exist (and creating it was not asked for). */
export class FlagsFileMissingError extends CliError {
  constructor(readonly file: string) {
    super(
      `no flags file at ${path.resolve(file)} (from --flags-file, else BIFROST_FLAGS_FILE, else .bifrost/flags.json in the current directory): point --flags-file or BIFROST_FLAGS_FILE at the file the shim reads (its admin API's GET /api/rollout names it as flagsFile), or pass --create-flags-file to create it`,
      EXIT_USAGE,
    );
    this.name = 'FlagsFileMissingError';
  }
}

export class FileFlagTarget implements FlagTarget {
  readonly kind = 'file' as const;
  readonly description: string;

  constructor(
    readonly file: string,
    private readonly opts: { createMissing?: boolean } = {},
  ) {
    this.description = `flags file ${file}`;
  }

  private async ensureExists(): Promise<void> {
    if (this.opts.createMissing) return;
    try {
      await stat(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FlagsFileMissingError(this.file);
      throw err;
    }
  }

  /** The migration flag's individual targets and rules as listed in the file, and whether targeting is on; none when unreadable. */
  private async listedOverrides(): Promise<{ listed: FlagOverride[]; on: boolean }> {
    try {
      const flag = (await readFlagsFile(this.file)).flags?.[FLAG_KEY];
      if (!flag) return { listed: [], on: true };
      return { listed: overridesOf(flag.variations, { targets: flag.targets, contextTargets: flag.contextTargets, rules: flag.rules }), on: flag.on };
    } catch {
      return { listed: [], on: true }; // missing or garbage: readRollout / writeRollout say so
    }
  }

  async read(): Promise<FlagRollout> {
    await this.ensureExists();
    try {
      const r = await readRollout(this.file);
      const { listed, on } = await this.listedOverrides();
      return { percent: r.percent, bucketBy: r.bucketBy, version: r.version, on: r.on, overrides: on ? listed : [] };
    } catch (err) {
      if (err instanceof FlagsFileError) throw new CliError(`cannot use ${this.file}: ${err.message}`, EXIT_USAGE);
      throw err;
    }
  }

  async write(change: FlagWrite): Promise<FlagWriteResult> {
    const bucketBy = change.bucketBy ?? (await this.read()).bucketBy;
    await this.ensureExists();
    try {
      const before = await this.listedOverrides();
      const r = await writeRollout(this.file, { percent: change.percent, bucketBy });
      const after = await this.listedOverrides();
      const kept = new Set(after.listed.map((o) => JSON.stringify(o)));
      const removed = before.listed.filter((o) => !kept.has(JSON.stringify(o)));
      const warnings: string[] = [];
      if (removed.length) {
        warnings.push(
          `this write removed the flag's ${describeOverrides(removed)} from ${this.file} (the CLI writes the migration flag whole, keeping only its salt): ${r.percent}% now applies to ${after.listed.length ? 'every context the remaining targets and rules do not match' : 'every context'}${change.percent === 0 ? ', so everyone is on Sync' : ''}; to pin contexts, use live LaunchDarkly`,
        );
      }
      const warning = overridesWarning(after.on ? after.listed : [], r.percent);
      if (warning) warnings.push(`${warning}: edit them in ${this.file}`);
      return { percent: r.percent, bucketBy: r.bucketBy, version: r.version, on: r.on, overrides: after.on ? after.listed : [], notes: [], warnings };
    } catch (err) {
      if (err instanceof FlagsFileError) {
        // Another writer (the shim's admin API, the dashboard) holding the file's lock goes away by itself.
        if (/^could not lock /.test(err.message)) throw new TransientError(err.message);
        throw new CliError(err.message, EXIT_USAGE);
      }
      throw err;
    }
  }
}
