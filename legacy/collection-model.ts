/**
 * The `collection` model of the reference Sync app: `id`, `workspace`, `name`,
 * `data` (any JSON), plus Sails' usual `createdAt`/`updatedAt` timestamps.
 *
 * Ids are strings chosen by the client (`c1`, a UUID…), as offline-first
 * clients do; when a create carries no id, one is generated.
 */
import { randomUUID } from 'node:crypto';

/** Attributes every model of the app gets (Sails' `config/models.js` equivalent). */
export const modelDefaults = {
  // In-memory store: the schema is rebuilt on every lift.
  migrate: 'drop',
  attributes: {
    id: { type: 'string' },
    createdAt: { type: 'number', autoCreatedAt: true },
    updatedAt: { type: 'number', autoUpdatedAt: true },
  },
} as const;

/** The model definition, as Sails expects it in `orm.moduleDefinitions.models`. */
export function collectionModel(): Record<string, unknown> {
  return {
    attributes: {
      workspace: { type: 'string' },
      name: { type: 'string' },
      data: { type: 'json' },
    },
    beforeCreate(values: Record<string, unknown>, proceed: () => void) {
      if (values.id === undefined || values.id === null || values.id === '') values.id = randomUUID();
      proceed();
    },
  };
}
