/**
 * Squad manifests: `migrations/<squad>.yaml`. One file per squad says who owns
 * the move, which playbook it follows, by when, and what the feature is made
 * of on the wire (services, topics, events, routes, a probe) so the playbook's
 * automated checks know what to look at.
 */
import { schemaProblems, YamlSource } from './yaml-source.ts';
import { ConfigError, sortProblems, type ConfigProblem } from './config-error.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface Owner {
  name: string;
  email?: string;
  slack?: string;
}

export interface ServiceSpec {
  /** The name in Bifrost's routing table (`PUT /v1/services/:name`). */
  name: string;
  /** Base URL the gateway forwards to. */
  upstream: string;
  /** Path prefixes this service owns (longest prefix wins). */
  prefixes: string[];
}

/** One HTTP call; `{id}`, `{nonce}` and `{now}` in path/query/body are filled in at run time. */
export interface RequestSpec {
  method: HttpMethod;
  path: string;
  query?: Record<string, string>;
  body?: unknown;
}

export interface RouteSpec extends RequestSpec {
  /** What the route is, for people reading the report. */
  name: string;
  /** Service to call through Bifrost; defaults to the squad's first service. */
  service?: string;
  /** Extra fields (dotted paths) to ignore when comparing bodies, beside ids and timestamps. */
  mask?: string[];
  /**
   * route-parity sends every route twice (to Sync, then through Bifrost). A
   * mutating route (POST, PUT, PATCH, DELETE) must say why that is harmless:
   * `safeToRepeat` (the second call does no more than the first and answers
   * the same, e.g. a PATCH of the probe record), or `ownProbeRecord` (each side
   * acts on a fresh probe record made with `probe.create` and deleted after).
   */
  safeToRepeat?: boolean;
  ownProbeRecord?: boolean;
}

/** Methods that change something: route-parity refuses them unless the route says why repeating them is harmless. */
export const MUTATING_METHODS: ReadonlySet<HttpMethod> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The probe: a harmless record the checks create, read through Bifrost (which
 * subscribes the probing socket), update through Sync, and clean up.
 */
export interface ProbeSpec {
  /** Service used for reads through Bifrost; defaults to the first service. */
  service?: string;
  /** Creates the probe record through Sync; its response body's `id` fills `{id}`. */
  create?: RequestSpec;
  /** A fixed record id, when there is no `create`. */
  id?: string;
  /** A single-record read, sent through Bifrost as a `request` frame. */
  read: RequestSpec;
  /** The harmless update, sent to Sync directly (as a client still on Sync would). */
  update: RequestSpec;
  /** Removes the probe record through Sync afterwards. */
  cleanup?: RequestSpec;
  /** Topic the update must be published on, e.g. `collection:{id}`. */
  topic: string;
  /** Event name expected on that topic. */
  event: string;
}

export interface SquadManifest {
  squad: string;
  title?: string;
  description?: string;
  owners: Owner[];
  playbook: string;
  /** YYYY-MM-DD. */
  targetDate: string;
  /** The identity the checks act as (a dev token is minted for it). */
  probeUser: { id: string; team: string };
  services: ServiceSpec[];
  /** Topic patterns the feature publishes on, e.g. `collection:{id}`. */
  topics: string[];
  events: string[];
  routes: RouteSpec[];
  probe?: ProbeSpec;
  /** Per-step overrides of the playbook's check parameters. */
  stepOptions: Record<string, Record<string, unknown>>;
  /** Where the manifest came from, for messages. */
  file: string;
  source: YamlSource;
}

const requestSchema = {
  type: 'object',
  required: ['method', 'path'],
  additionalProperties: false,
  properties: {
    method: { enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] },
    path: { type: 'string', pattern: '^/', expected: 'a path starting with "/", e.g. /collection/{id}' },
    query: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] }, expected: 'a map of query parameters' },
    body: {},
  },
} as const;

const ownerSchema = {
  type: ['string', 'object'],
  expected: 'an owner: "Name <email>" or {name, email, slack}',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, expected: 'a person or team name' },
    email: { type: 'string', pattern: '^[^@\\s]+@[^@\\s]+$', expected: 'an email address' },
    slack: { type: 'string', expected: 'a Slack handle or channel' },
  },
} as const;

/** JSON schema of a manifest (see docs/migrating-a-squad.md for each field). */
export const manifestSchema = {
  type: 'object',
  expected: 'a mapping with squad, owners, playbook, targetDate, services, topics, events, routes',
  required: ['squad', 'owners', 'playbook', 'targetDate', 'services', 'topics', 'events', 'routes'],
  additionalProperties: false,
  properties: {
    squad: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$', expected: 'a squad name: lower-case letters, digits and dashes, starting with a letter' },
    title: { type: 'string' },
    description: { type: 'string' },
    owners: { type: 'array', minItems: 1, items: ownerSchema, expected: 'a list of at least one owner' },
    playbook: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$', expected: 'a playbook name (a file playbooks/<name>.yaml)' },
    targetDate: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$', expected: 'a date YYYY-MM-DD' },
    probeUser: {
      type: 'object',
      required: ['id', 'team'],
      additionalProperties: false,
      properties: { id: { type: 'string', minLength: 1 }, team: { type: 'string', minLength: 1 } },
    },
    services: {
      type: 'array',
      minItems: 1,
      expected: 'a list of at least one service {name, upstream, prefixes}',
      items: {
        type: 'object',
        required: ['name', 'upstream', 'prefixes'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', pattern: '^[a-z][a-z0-9-]*$', expected: 'a service name: lower-case letters, digits and dashes' },
          upstream: { type: 'string', pattern: '^https?://[^\\s/]+(/\\S*)?$', expected: 'an http(s) URL, e.g. http://collections.internal:8000' },
          prefixes: {
            type: 'array',
            minItems: 1,
            items: { type: 'string', pattern: '^/', expected: 'a path prefix starting with "/"' },
            expected: 'a list of at least one path prefix',
          },
        },
      },
    },
    topics: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[A-Za-z0-9_.:{}-]+$', expected: 'a topic pattern like collection:{id}' }, expected: 'a list of topic patterns' },
    events: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1, expected: 'an event name' }, expected: 'a list of event names' },
    routes: {
      type: 'array',
      expected: 'a list of routes to compare through Sync and Bifrost',
      items: {
        type: 'object',
        required: ['name', 'method', 'path'],
        additionalProperties: false,
        properties: {
          ...requestSchema.properties,
          name: { type: 'string', minLength: 1, expected: 'a short description of the route' },
          service: { type: 'string' },
          mask: { type: 'array', items: { type: 'string' }, expected: 'a list of dotted field paths' },
          safeToRepeat: { type: 'boolean', expected: 'true when sending the route twice (Sync, then Bifrost) is harmless' },
          ownProbeRecord: { type: 'boolean', expected: 'true to run the route on a fresh probe record on each side' },
        },
      },
    },
    probe: {
      type: 'object',
      required: ['read', 'update', 'topic', 'event'],
      additionalProperties: false,
      properties: {
        service: { type: 'string' },
        id: { type: 'string', minLength: 1 },
        create: requestSchema,
        read: requestSchema,
        update: requestSchema,
        cleanup: requestSchema,
        topic: { type: 'string', minLength: 1, expected: 'a topic, e.g. collection:{id}' },
        event: { type: 'string', minLength: 1 },
      },
    },
    stepOptions: {
      type: 'object',
      expected: 'a map from playbook step id to check parameters',
      additionalProperties: { type: 'object', expected: 'a map of check parameters' },
    },
  },
} as const;

const OWNER_STRING = /^\s*([^<]+?)\s*(?:<([^>]+)>)?\s*$/;

function parseOwner(o: unknown): Owner {
  if (typeof o === 'string') {
    const m = OWNER_STRING.exec(o);
    return m ? { name: m[1]!, ...(m[2] ? { email: m[2] } : {}) } : { name: o };
  }
  return o as Owner;
}

/** True for a real calendar date YYYY-MM-DD. */
function isCalendarDate(s: string): boolean {
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s;
}

/**
 * Validates a parsed manifest on its own (the catalog checks what needs other
 * files: the playbook, step ids, duplicate squad names). Returns the manifest
 * and every problem found.
 */
export function readManifest(source: YamlSource): { manifest?: SquadManifest; problems: ConfigProblem[] } {
  const problems = schemaProblems(source, manifestSchema);
  if (problems.length > 0) return { problems: sortProblems(problems) };
  const raw = source.value as Record<string, unknown> & Omit<SquadManifest, 'owners' | 'file' | 'source'>;
  if (!isCalendarDate(raw.targetDate)) problems.push(source.problem(['targetDate'], `expected a real calendar date YYYY-MM-DD, got ${JSON.stringify(raw.targetDate)}`));
  const serviceNames = new Set<string>();
  raw.services.forEach((s, i) => {
    if (serviceNames.has(s.name)) problems.push(source.problem(['services', i, 'name'], `expected a unique service name, "${s.name}" is listed twice`));
    serviceNames.add(s.name);
    if (s.name === 'sync') problems.push(source.problem(['services', i, 'name'], 'expected the squad\'s own service name: "sync" is the legacy catch-all service'));
  });
  const allPrefixes = raw.services.flatMap((s) => s.prefixes);
  const covered = (path: string) => allPrefixes.some((p) => path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`) || p === '/');
  raw.routes.forEach((r, i) => {
    if (r.service !== undefined && !serviceNames.has(r.service)) problems.push(source.problem(['routes', i, 'service'], `expected one of the squad's services (${[...serviceNames].join(', ')}), got "${r.service}"`));
    if (!covered(r.path.split('?')[0]!)) problems.push(source.problem(['routes', i, 'path'], `expected a path under one of the squad's prefixes (${allPrefixes.join(', ')}), got "${r.path}"`));
    if (MUTATING_METHODS.has(r.method) && !r.safeToRepeat && !r.ownProbeRecord) {
      problems.push(
        source.problem(
          ['routes', i, 'method'],
          `expected GET, or a ${r.method} route marked \`safeToRepeat: true\` (sending it twice, to Sync and then through Bifrost, is harmless) or \`ownProbeRecord: true\` (each side acts on a fresh probe record): route-parity sends every route twice`,
        ),
      );
    }
    if (r.method === 'DELETE' && r.safeToRepeat && !r.ownProbeRecord) {
      problems.push(source.problem(['routes', i, 'safeToRepeat'], 'expected `ownProbeRecord: true` for a DELETE route: the second DELETE finds nothing to delete, so it never answers like the first'));
    }
    if (r.ownProbeRecord) {
      if (!raw.probe?.create) problems.push(source.problem(['routes', i, 'ownProbeRecord'], 'expected a `probe.create` in the manifest: ownProbeRecord makes a fresh probe record for each side'));
      if (!JSON.stringify([r.path, r.query ?? null, r.body ?? null]).includes('{id}')) problems.push(source.problem(['routes', i, 'path'], 'expected {id} in the path, query or body of an ownProbeRecord route (the fresh probe record\'s id)'));
    }
  });
  if (raw.probe) {
    const p = raw.probe;
    if (p.service !== undefined && !serviceNames.has(p.service)) problems.push(source.problem(['probe', 'service'], `expected one of the squad's services (${[...serviceNames].join(', ')}), got "${p.service}"`));
    if (!p.create && !p.id && [p.read, p.update, p.topic].some((x) => JSON.stringify(x).includes('{id}'))) {
      problems.push(source.problem(['probe'], 'expected `create` (a request whose response has an id) or a fixed `id`, because the probe uses {id}'));
    }
    if (p.cleanup && !p.create) {
      problems.push(source.problem(['probe', 'cleanup'], 'expected `cleanup` only with `create`: the checks delete only the probe records they create, never a fixed `id` (a real record)'));
    }
    for (const k of ['read', 'update'] as const) {
      if (!covered(p[k].path)) problems.push(source.problem(['probe', k, 'path'], `expected a path under one of the squad's prefixes (${allPrefixes.join(', ')}), got "${p[k].path}"`));
    }
    if (!raw.events.includes(p.event)) problems.push(source.problem(['probe', 'event'], `expected one of the manifest's events (${raw.events.join(', ')}), got "${p.event}"`));
  }
  if (problems.length > 0) return { problems: sortProblems(problems) };
  const manifest: SquadManifest = {
    squad: raw.squad,
    ...(raw.title !== undefined ? { title: raw.title } : {}),
    ...(raw.description !== undefined ? { description: raw.description } : {}),
    owners: (raw.owners as unknown[]).map(parseOwner),
    playbook: raw.playbook,
    targetDate: raw.targetDate,
    probeUser: raw.probeUser ?? { id: `bifrost-probe-${raw.squad}`, team: 'bifrost-probe' },
    services: raw.services,
    topics: raw.topics,
    events: raw.events,
    routes: raw.routes,
    ...(raw.probe ? { probe: raw.probe } : {}),
    stepOptions: raw.stepOptions ?? {},
    file: source.file,
    source,
  };
  return { manifest, problems: [] };
}

/** Loads and validates one manifest file; throws ConfigError listing every problem. */
export async function loadManifest(file: string): Promise<SquadManifest> {
  const { manifest, problems } = readManifest(await YamlSource.load(file));
  if (!manifest) throw new ConfigError(problems);
  return manifest;
}

/** Owners as one line: `Ada <ada@x>, Grace`. */
export function ownersLine(m: SquadManifest): string {
  return m.owners.map((o) => (o.email ? `${o.name} <${o.email}>` : o.name)).join(', ');
}
