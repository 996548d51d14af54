// JSON schema → the grammar's value nodes (native/ts/grammar/design.md). A subset: the keywords people send for
// structured output and tool parameters. Anything else is refused by name (the gateway answers 400, param
// `response_format`), never silently ignored.
import { validateInstance } from '../../../contracts/json-instance.ts';

/** A value the grammar can generate. `uid` makes automaton states of different nodes distinct keys. */
export type GNode =
  | { k: 'obj'; uid: number; props: { key: Uint8Array; node: GNode; req: boolean }[] }
  | { k: 'anyobj'; uid: number }
  | { k: 'arr'; uid: number; items: GNode; min: number; max: number }
  | { k: 'str'; uid: number; min: number; max: number }
  | { k: 'lit'; uid: number; texts: Uint8Array[] }
  | { k: 'num'; uid: number; int: boolean }
  | { k: 'alt'; uid: number; alts: GNode[] };

export class SchemaError extends Error {
  override readonly name = 'SchemaError';
  constructor(message: string, readonly unsupported: string[] = []) { super(message); }
}

/** Keywords that only annotate: accepted and ignored (they do not constrain the instance). */
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated', 'readOnly', 'writeOnly', 'strict']);
/** Keywords the grammar enforces. */
const SUPPORTED = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const', 'anyOf', 'oneOf', '$defs', 'definitions', '$ref', 'minItems', 'maxItems', 'minLength', 'maxLength', 'nullable']);
const TYPES = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']);
/** Nesting depth of schema nodes and of generic (json_object) values. */
export const MAX_DEPTH = 32;
/** Longest array / string bound we track exactly (larger bounds are states we would not want to enumerate). */
const MAX_BOUND = 4096;

const enc = new TextEncoder();
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks that `schema` is in the supported subset. Returns null when it is, else a message naming every unsupported
 * keyword (with its JSON pointer) or the first structural problem. For the gateway: a non-null answer is a 400
 * with param `response_format` (or `tools` for a function's parameters).
 */
export function validateJsonSchema(schema: unknown): string | null {
  try {
    compileJsonSchema(schema);
    return null;
  } catch (e) {
    if (e instanceof SchemaError) return e.message;
    throw e;
  }
}

/** The grammar of the JSON values `schema` accepts. Throws SchemaError (validateJsonSchema's message). */
export function compileJsonSchema(schema: unknown): GNode {
  if (!isObj(schema)) throw new SchemaError('Expected the JSON schema to be an object');
  const unsupported: string[] = [];
  scan(schema, '#', unsupported, 0);
  if (unsupported.length) {
    throw new SchemaError(`Unsupported JSON schema keyword${unsupported.length > 1 ? 's' : ''} for structured output: ${unsupported.join(', ')} (supported: ${[...SUPPORTED].join(', ')})`, unsupported);
  }
  let uid = 0;
  const defs = { ...(isObj(schema.definitions) ? schema.definitions : {}), ...(isObj(schema.$defs) ? schema.$defs : {}) };
  const resolving = new Set<string>();
  const build = (s: unknown, at: string, depth: number): GNode => {
    if (depth > MAX_DEPTH) throw new SchemaError(`${at}: the schema nests deeper than ${MAX_DEPTH} levels`);
    if (s === true || (isObj(s) && Object.keys(s).every((k) => ANNOTATIONS.has(k) || k === '$defs' || k === 'definitions'))) return anyValue(() => uid++, depth);
    if (!isObj(s)) throw new SchemaError(`${at}: expected a schema object${s === false ? ' (false accepts nothing)' : ''}`);
    if (typeof s.$ref === 'string') {
      const m = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(s.$ref);
      if (!m || !(m[2] in defs)) throw new SchemaError(`${at}: $ref ${s.$ref} is not a local #/$defs/<name> of this schema`);
      if (resolving.has(m[2])) throw new SchemaError(`${at}: $ref ${s.$ref} is recursive (recursive schemas are not supported)`);
      resolving.add(m[2]);
      try { return build(defs[m[2]], s.$ref, depth + 1); } finally { resolving.delete(m[2]); }
    }
    const lits = (vals: unknown[]): GNode => ({ k: 'lit', uid: uid++, texts: vals.map((v) => enc.encode(JSON.stringify(v))) });
    if ('const' in s || Array.isArray(s.enum)) {
      const vals = 'const' in s ? [s.const] : s.enum as unknown[];
      if (vals.length === 0) throw new SchemaError(`${at}: enum is empty`);
      // The keywords beside enum/const (type, minLength, ...) bind too: only values that pass them may be generated,
      // or the output would not validate ({"type": "integer", "enum": [1.5]} accepts nothing).
      const { enum: _e, const: _c, ...rest } = s;
      const ok = vals.filter((v) => validateInstance({ ...rest, $defs: defs }, v).length === 0);
      if (ok.length === 0) throw new SchemaError(`${at}: no ${'const' in s ? 'const' : 'enum'} value passes the schema's other keywords (it accepts nothing)`);
      return lits(ok);
    }
    const alts = s.anyOf ?? s.oneOf;
    if (alts !== undefined) {
      if (!Array.isArray(alts) || alts.length === 0) throw new SchemaError(`${at}: anyOf/oneOf must be a non-empty array`);
      return { k: 'alt', uid: uid++, alts: alts.map((a, i) => build(a, `${at}/anyOf/${i}`, depth + 1)) };
    }
    let types: string[];
    if (Array.isArray(s.type)) types = s.type as string[];
    else if (typeof s.type === 'string') types = [s.type];
    else if (s.properties !== undefined) types = ['object'];
    else if (s.items !== undefined) types = ['array'];
    else return anyValue(() => uid++, depth);
    if (s.nullable === true && !types.includes('null')) types = [...types, 'null'];
    if (types.length === 0) throw new SchemaError(`${at}: type is an empty list (it accepts nothing)`);
    for (const t of types) if (!TYPES.has(t)) throw new SchemaError(`${at}: unknown type ${JSON.stringify(t)}`);
    const one = (t: string): GNode => {
      switch (t) {
        case 'object': {
          if (s.additionalProperties !== undefined && typeof s.additionalProperties !== 'boolean') {
            throw new SchemaError(`${at}: additionalProperties must be true or false (a schema for extra properties is not supported)`);
          }
          if (s.properties === undefined && s.additionalProperties !== false) return { k: 'anyobj', uid: uid++ };
          const props = isObj(s.properties) ? s.properties : {};
          const required = Array.isArray(s.required) ? s.required : [];
          for (const r of required) if (typeof r !== 'string' || !(r in props)) throw new SchemaError(`${at}: required property ${JSON.stringify(r)} is not in properties`);
          return {
            k: 'obj', uid: uid++,
            props: Object.entries(props).map(([name, ps]) => ({ key: enc.encode(JSON.stringify(name)), node: build(ps, `${at}/properties/${name}`, depth + 1), req: required.includes(name) })),
          };
        }
        case 'array': {
          const min = bound(s.minItems, 0, `${at}/minItems`), max = bound(s.maxItems, Infinity, `${at}/maxItems`);
          if (min > max) throw new SchemaError(`${at}: minItems > maxItems`);
          return { k: 'arr', uid: uid++, items: s.items === undefined ? anyValue(() => uid++, depth + 1) : build(s.items, `${at}/items`, depth + 1), min, max };
        }
        case 'string': {
          const min = bound(s.minLength, 0, `${at}/minLength`), max = bound(s.maxLength, Infinity, `${at}/maxLength`);
          if (min > max) throw new SchemaError(`${at}: minLength > maxLength`);
          return { k: 'str', uid: uid++, min, max };
        }
        case 'number': return { k: 'num', uid: uid++, int: false };
        case 'integer': return { k: 'num', uid: uid++, int: true };
        case 'boolean': return lits([true, false]);
        default: return lits([null]);
      }
    };
    return types.length === 1 ? one(types[0]) : { k: 'alt', uid: uid++, alts: types.map(one) };
  };
  return build(schema, '#', 0);
}

/** The grammar of any JSON object (response_format json_object). */
export function anyObjectNode(): GNode {
  return { k: 'anyobj', uid: 0 };
}

/** Any JSON value; deeper than MAX_DEPTH only scalars. */
function anyValue(next: () => number, depth: number): GNode {
  const scalars: GNode[] = [{ k: 'str', uid: next(), min: 0, max: Infinity }, { k: 'num', uid: next(), int: false }, { k: 'lit', uid: next(), texts: ['true', 'false', 'null'].map((t) => enc.encode(t)) }];
  if (depth >= MAX_DEPTH) return { k: 'alt', uid: next(), alts: scalars };
  return { k: 'alt', uid: next(), alts: [{ k: 'anyobj', uid: next() }, { k: 'arr', uid: next(), items: anyValue(next, depth + 1), min: 0, max: Infinity }, ...scalars] };
}

function bound(v: unknown, dflt: number, at: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > MAX_BOUND) throw new SchemaError(`${at}: expected an integer in [0, ${MAX_BOUND}]`);
  return v as number;
}

/** Collects unsupported keywords (as JSON pointers) of every schema node, following the keywords we support. */
function scan(s: unknown, at: string, out: string[], depth: number): void {
  if (!isObj(s) || depth > MAX_DEPTH + 8) return;
  for (const k of Object.keys(s)) if (!SUPPORTED.has(k) && !ANNOTATIONS.has(k)) out.push(`${at}/${k}`);
  if (isObj(s.properties)) for (const [n, p] of Object.entries(s.properties)) scan(p, `${at}/properties/${n}`, out, depth + 1);
  if (isObj(s.items)) scan(s.items, `${at}/items`, out, depth + 1);
  else if (Array.isArray(s.items)) out.push(`${at}/items (tuple form)`);
  for (const k of ['anyOf', 'oneOf'] as const) {
    const a = s[k];
    if (Array.isArray(a)) a.forEach((x, i) => scan(x, `${at}/${k}/${i}`, out, depth + 1));
  }
  for (const k of ['$defs', 'definitions'] as const) {
    const d = s[k];
    if (isObj(d)) for (const [n, x] of Object.entries(d)) scan(x, `${at}/${k}/${n}`, out, depth + 1);
  }
}
