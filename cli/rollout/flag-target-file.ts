/**
 * The flags-file flag target: reads and writes the `bifrost-sync-migration`
 * flag in the local flags file through proxy/flags-file.ts (full LaunchDarkly
 * flag JSON, atomic temp file + rename, the salt kept so raising the percentage
 * only adds users). The shim notices the new file within a second.
 */
import { FlagsFileError, readRollout, writeRollout } from '../../proxy/flags-file.ts';
import { CliError, EXIT_USAGE } from '../output.ts';
import type { FlagRollout, FlagTarget, FlagWrite, FlagWriteResult } from './flag-target.ts';

export class FileFlagTarget implements FlagTarget {
  readonly kind = 'file' as const;
  readonly description: string;

  constructor(readonly file: string) {
    this.description = `flags file ${file}`;
  }

  async read(): Promise<FlagRollout> {
    try {
      const r = await readRollout(this.file);
      return { percent: r.percent, bucketBy: r.bucketBy, version: r.version };
    } catch (err) {
      if (err instanceof FlagsFileError) throw new CliError(`cannot use ${this.file}: ${err.message}`, EXIT_USAGE);
      throw err;
    }
  }

  async write(change: FlagWrite): Promise<FlagWriteResult> {
    const bucketBy = change.bucketBy ?? (await this.read()).bucketBy;
    try {
      const r = await writeRollout(this.file, { percent: change.percent, bucketBy });
      return { percent: r.percent, bucketBy: r.bucketBy, version: r.version, notes: [] };
    } catch (err) {
      if (err instanceof FlagsFileError) throw new CliError(err.message, EXIT_USAGE);
      throw err;
    }
  }
}
