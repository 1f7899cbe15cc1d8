/**
 * The app's datastore: sails-disk, in memory only (nothing touches the disk).
 *
 * sails-disk keeps its registered datastores in a module-level map and refuses
 * to register a second datastore of the same name ("Datastore `default` is
 * already registered"), so two Sails apps in one process cannot share the
 * module. Each app therefore gets its own copy of the adapter module (the
 * module is evaluated afresh; its dependencies stay shared), handed to the ORM
 * through `orm.moduleDefinitions.adapters`.
 */
import { requireCjs } from './sails-types.ts';

/** A private instance of the sails-disk adapter. */
export function freshSailsDiskAdapter(): unknown {
  const resolved = requireCjs.resolve('sails-disk');
  const cached = requireCjs.cache[resolved];
  delete requireCjs.cache[resolved];
  try {
    return requireCjs('sails-disk');
  } finally {
    // Leave the shared cache as it was for anyone else requiring sails-disk.
    if (cached) requireCjs.cache[resolved] = cached;
    else delete requireCjs.cache[resolved];
  }
}

/** `sails.config.datastores`: the default datastore, in memory. */
export const memoryDatastores = {
  default: { adapter: 'sails-disk', inMemoryOnly: true },
} as const;
