// A small JSON-schema instance validator for the subset schema.ts compiles (type, properties, required,
// additionalProperties, items, enum, const, anyOf, oneOf, $ref into $defs/definitions, min/maxItems,
// min/maxLength): the tests check generated output with it, and the gateway checks the arguments of strict tools.
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case 'object': return isObj(v);
    case 'array': return Array.isArray(v);
    case 'string': return typeof v === 'string';
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'integer': return typeof v === 'number' && Number.isInteger(v);
    case 'boolean': return typeof v === 'boolean';
    case 'null': return v === null;
    default: return false;
  }
}

/** The ways `value` fails `schema` (empty when it validates). */
export function validateInstance(schema: unknown, value: unknown): string[] {
  const root = isObj(schema) ? schema : {};
  const defs = { ...(isObj(root.definitions) ? root.definitions : {}), ...(isObj(root.$defs) ? root.$defs : {}) };
  const errs: string[] = [];
  const check = (s: unknown, v: unknown, at: string): void => {
    if (s === true || s === undefined) return;
    if (!isObj(s)) { errs.push(`${at}: schema ${JSON.stringify(s)} accepts nothing`); return; }
    if (typeof s.$ref === 'string') {
      const name = s.$ref.replace(/^#\/(\$defs|definitions)\//, '');
      check(defs[name], v, at);
      return;
    }
    if ('const' in s && !deepEqual(s.const, v)) errs.push(`${at}: expected const ${JSON.stringify(s.const)}`);
    if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, v))) errs.push(`${at}: ${JSON.stringify(v)} is not in enum`);
    for (const k of ['anyOf', 'oneOf'] as const) {
      const alts = s[k];
      if (!Array.isArray(alts)) continue;
      const ok = alts.filter((a) => a === true || (isObj(a) && validateInstance({ ...a, $defs: defs }, v).length === 0)).length;
      if (k === 'anyOf' ? ok === 0 : ok !== 1) errs.push(`${at}: ${ok} of the ${k} alternatives match`);
    }
    let types = Array.isArray(s.type) ? (s.type as string[]) : typeof s.type === 'string' ? [s.type] : null;
    if (types && s.nullable === true) types = [...types, 'null'];
    if (types && !types.some((t) => typeOk(t, v))) { errs.push(`${at}: expected type ${types.join('|')}`); return; }
    if (isObj(v) && (s.properties !== undefined || s.required !== undefined || s.additionalProperties !== undefined)) {
      const props = isObj(s.properties) ? s.properties : {};
      for (const r of Array.isArray(s.required) ? s.required : []) if (!(String(r) in v)) errs.push(`${at}: missing required property ${r}`);
      for (const [k, x] of Object.entries(v)) {
        if (k in props) check(props[k], x, `${at}/${k}`);
        else if (s.additionalProperties === false) errs.push(`${at}: unexpected property ${k}`);
      }
    }
    if (Array.isArray(v)) {
      if (typeof s.minItems === 'number' && v.length < s.minItems) errs.push(`${at}: fewer than ${s.minItems} items`);
      if (typeof s.maxItems === 'number' && v.length > s.maxItems) errs.push(`${at}: more than ${s.maxItems} items`);
      if (s.items !== undefined) v.forEach((x, i) => check(s.items, x, `${at}/${i}`));
    }
    if (typeof v === 'string') {
      const n = [...v].length;
      if (typeof s.minLength === 'number' && n < s.minLength) errs.push(`${at}: shorter than ${s.minLength}`);
      if (typeof s.maxLength === 'number' && n > s.maxLength) errs.push(`${at}: longer than ${s.maxLength}`);
    }
  };
  check(schema, value, '#');
  return errs;
}
