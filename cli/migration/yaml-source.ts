/**
 * A YAML file kept together with its source positions, so validation can say
 * on which line a field is wrong. Built on the `yaml` package's document API
 * (`parseDocument` + `LineCounter`); JSON-schema checks run through ajv and
 * every ajv error is mapped back to the line of the offending node.
 */
import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject, type AnySchema } from 'ajv';
import { LineCounter, isMap, isNode, isPair, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import { ConfigError, type ConfigProblem } from './config-error.ts';

export type FieldPath = ReadonlyArray<string | number>;

/** `['services', 0, 'upstream']` → `services[0].upstream`. */
export function fieldName(path: FieldPath): string {
  let s = '';
  for (const part of path) {
    if (typeof part === 'number') s += `[${part}]`;
    else s += s ? `.${part}` : part;
  }
  return s;
}

export class YamlSource {
  private constructor(
    readonly file: string,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
    /** The document as plain JavaScript values. */
    readonly value: unknown,
  ) {}

  /** Reads and parses a file; YAML syntax errors become a ConfigError with their line. */
  static async load(file: string): Promise<YamlSource> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError([{ file, line: 0, column: 0, field: '', expected: `a readable file (${(err as Error).message})` }]);
    }
    return YamlSource.parse(file, text);
  }

  /** Parses text that came from `file` (the name is only used in messages). */
  static parse(file: string, text: string): YamlSource {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    if (doc.errors.length > 0) {
      throw new ConfigError(
        doc.errors.map((e) => {
          const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
          return { file, line: pos.line, column: pos.col, field: '', expected: `valid YAML (${e.message.split('\n')[0]})` };
        }),
      );
    }
    return new YamlSource(file, doc, lines, doc.toJS({ maxAliasCount: 100 }));
  }

  /** The node at a path, or undefined. */
  private nodeAt(path: FieldPath): Node | undefined {
    const n = path.length === 0 ? this.doc.contents : this.doc.getIn(path as unknown[], true);
    return isNode(n) ? n : undefined;
  }

  /**
   * Line and column of the field at `path`. For a map entry the position of
   * its key; when the path does not exist, the nearest existing parent.
   */
  position(path: FieldPath): { line: number; column: number } {
    for (let n = path.length; n >= 0; n--) {
      const parentPath = path.slice(0, Math.max(0, n - 1));
      const last = n > 0 ? path[n - 1] : undefined;
      if (n > 0 && typeof last === 'string') {
        const parent = this.nodeAt(parentPath);
        if (isMap(parent)) {
          const pair = parent.items.find((it) => isPair(it) && isScalar(it.key) && it.key.value === last);
          const keyNode = pair && isPair(pair) && isNode(pair.key) ? pair.key : undefined;
          if (keyNode?.range) return this.at(keyNode.range[0]);
        }
        continue;
      }
      const node = this.nodeAt(path.slice(0, n));
      if (node?.range) return this.at(node.range[0]);
      if (n === 0) break;
    }
    return { line: 1, column: 1 };
  }

  private at(offset: number): { line: number; column: number } {
    const p = this.lines.linePos(offset);
    return { line: p.line, column: p.col };
  }

  /** A problem located at `path`. */
  problem(path: FieldPath, expected: string): ConfigProblem {
    return { file: this.file, ...this.position(path), field: fieldName(path), expected };
  }

  /** True when the node at path is a YAML sequence (for messages). */
  isSequence(path: FieldPath): boolean {
    return isSeq(this.nodeAt(path));
  }
}

/**
 * Schemas may carry an `expected` annotation: the words shown to the user
 * when a value does not match (instead of ajv's generic message).
 */
const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });

const compiled = new WeakMap<object, ReturnType<typeof ajv.compile>>();

function pointerToPath(pointer: string): (string | number)[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function describe(err: ErrorObject): string {
  const annotated = (err.parentSchema as { expected?: string } | undefined)?.expected;
  switch (err.keyword) {
    case 'required':
      return `is required but missing`;
    case 'additionalProperties': {
      const allowed = Object.keys((err.parentSchema as { properties?: object })?.properties ?? {});
      return `is not a known field (expected one of: ${allowed.join(', ')})`;
    }
    case 'enum':
      return `expected one of ${(err.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(err.data)}`;
    default:
      return `expected ${annotated ?? err.message ?? 'a valid value'}, got ${JSON.stringify(err.data) ?? 'nothing'}`;
  }
}

/** Validates `value` (at `basePath` inside the source) against a JSON schema; returns located problems. */
export function schemaProblems(source: YamlSource, schema: AnySchema & object, value: unknown = source.value, basePath: FieldPath = []): ConfigProblem[] {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  if (validate(value)) return [];
  const seen = new Set<string>();
  const problems: ConfigProblem[] = [];
  for (const err of validate.errors ?? []) {
    // A failed `if`/`anyOf` wrapper repeats what its branches already said.
    if (err.keyword === 'if' || err.keyword === 'anyOf') continue;
    const path = [...basePath, ...pointerToPath(err.instancePath)];
    let problem: ConfigProblem;
    if (err.keyword === 'required') {
      const missing = (err.params as { missingProperty: string }).missingProperty;
      const annotated = ((err.parentSchema as { properties?: Record<string, { expected?: string }> }).properties ?? {})[missing]?.expected;
      problem = { ...source.problem(path, ''), field: fieldName([...path, missing]), expected: `is required but missing${annotated ? ` (expected ${annotated})` : ''}` };
    } else if (err.keyword === 'additionalProperties') {
      const extra = (err.params as { additionalProperty: string }).additionalProperty;
      problem = source.problem([...path, extra], describe(err));
    } else {
      problem = source.problem(path, describe(err));
    }
    const key = `${problem.line}:${problem.field}:${problem.expected}`;
    if (!seen.has(key)) {
      seen.add(key);
      problems.push(problem);
    }
  }
  return problems;
}
