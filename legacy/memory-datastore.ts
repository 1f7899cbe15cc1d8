/**
 * The app's datastore: sails-disk, in memory only (nothing touches the disk).
 *
 * sails-disk keeps its registered datastores in a module-level map and refuses
 * to register a second datastore of the same name ("Datastore `default` is
 * already registered"), so two Sails apps in one process cannot share the
 * module. Each app therefore gets its own copy of the adapter module (the
 * module is evaluated afresh; its dependencies stay shared), handed to the ORM
 * through `orm.moduleDefinitions.adapters`.
 *
 * Updates are made atomic. Sails' update blueprint always sets the primary key
 * to its own value, and sails-disk turns any update that sets the primary key
 * into find + destroy + create: a read in between answered 404 for a record
 * that exists, and two concurrent updates could lose one. An unchanged primary
 * key is therefore dropped from the values before sails-disk sees them, so the
 * update is one NeDB `update`, as it would be one statement in a real database.
 */
import { requireCjs } from './sails-types.ts';

/** The part of a stage-3 update query this module reads (Waterline's adapter API). */
interface UpdateQuery {
  using: string;
  criteria: { where?: Record<string, unknown> };
  valuesToSet: Record<string, unknown>;
}

interface SailsDiskAdapter {
  registerDatastore(config: unknown, models: Record<string, { tableName?: string; primaryKey?: string; definition?: Record<string, { columnName?: string }> }>, cb: (err?: Error) => void): void;
  update(datastore: string, query: UpdateQuery, cb: (...args: unknown[]) => void): void;
}

/** Whether `where` pins column `pk` to exactly `value` (`{pk: v}` or `{and: [{pk: v}, …]}`). */
function pinsPrimaryKey(where: Record<string, unknown> | undefined, pk: string, value: unknown): boolean {
  if (!where) return false;
  if (Object.prototype.hasOwnProperty.call(where, pk)) return where[pk] === value;
  const and = where.and;
  return Array.isArray(and) && and.some((c) => c !== null && typeof c === 'object' && (c as Record<string, unknown>)[pk] === value);
}

/** Wraps `update` so that setting the primary key to the value the query already selects is not a primary-key change. */
function withAtomicUpdates(adapter: SailsDiskAdapter): SailsDiskAdapter {
  /** Primary-key column per table (what `query.using` names), learnt at registration. */
  const pkColumns = new Map<string, string>();
  const register = adapter.registerDatastore;
  adapter.registerDatastore = function (config, models, cb) {
    for (const [identity, model] of Object.entries(models)) {
      const pk = model.primaryKey;
      if (pk) pkColumns.set(model.tableName ?? identity, model.definition?.[pk]?.columnName ?? pk);
    }
    return register.call(this, config, models, cb);
  };
  const update = adapter.update;
  adapter.update = function (datastore, query, cb) {
    const pk = pkColumns.get(query.using);
    if (pk && pk in query.valuesToSet && pinsPrimaryKey(query.criteria.where, pk, query.valuesToSet[pk])) {
      const { [pk]: _unchanged, ...rest } = query.valuesToSet;
      query = { ...query, valuesToSet: rest };
    }
    return update.call(this, datastore, query, cb);
  };
  return adapter;
}

/** A private instance of the sails-disk adapter, with atomic updates. */
export function freshSailsDiskAdapter(): unknown {
  const resolved = requireCjs.resolve('sails-disk');
  const cached = requireCjs.cache[resolved];
  delete requireCjs.cache[resolved];
  try {
    return withAtomicUpdates(requireCjs('sails-disk') as SailsDiskAdapter);
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
