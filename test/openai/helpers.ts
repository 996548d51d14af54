// Conformance-suite helpers: a JSON-schema check for the subset the tests' schemas use (no validator dependency).

export type Schema = {
  type?: string; properties?: Record<string, Schema>; required?: string[]; additionalProperties?: boolean;
  enum?: unknown[]; items?: Schema; minimum?: number; maximum?: number; maxLength?: number; anyOf?: Schema[];
};

/** Problems of `v` against `s` (empty when it validates): type, enum, properties, required, additionalProperties, items, bounds, maxLength, anyOf. */
export function schemaErrors(v: unknown, s: Schema, at = '$'): string[] {
  if (s.anyOf) return s.anyOf.some((x) => schemaErrors(v, x, at).length === 0) ? [] : [`${at}: matches no anyOf branch`];
  const errs: string[] = [];
  const t = s.type;
  const isObj = v !== null && typeof v === 'object' && !Array.isArray(v);
  if (t === 'object' && !isObj) return [`${at}: expected object`];
  if (t === 'array' && !Array.isArray(v)) return [`${at}: expected array`];
  if (t === 'string' && typeof v !== 'string') return [`${at}: expected string`];
  if (t === 'integer' && !Number.isInteger(v)) return [`${at}: expected integer`];
  if (t === 'number' && typeof v !== 'number') return [`${at}: expected number`];
  if (t === 'boolean' && typeof v !== 'boolean') return [`${at}: expected boolean`];
  if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) errs.push(`${at}: not in enum`);
  if (typeof v === 'string' && s.maxLength !== undefined && [...v].length > s.maxLength) errs.push(`${at}: longer than maxLength`);
  if (typeof v === 'number') {
    if (s.minimum !== undefined && v < s.minimum) errs.push(`${at}: below minimum`);
    if (s.maximum !== undefined && v > s.maximum) errs.push(`${at}: above maximum`);
  }
  if (isObj) {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (!(r in o)) errs.push(`${at}: missing ${r}`);
    for (const [k, x] of Object.entries(o)) {
      const ps = s.properties?.[k];
      if (ps) errs.push(...schemaErrors(x, ps, `${at}.${k}`));
      else if (s.additionalProperties === false) errs.push(`${at}: unexpected ${k}`);
    }
  }
  if (Array.isArray(v) && s.items) v.forEach((x, i) => errs.push(...schemaErrors(x, s.items!, `${at}[${i}]`)));
  return errs;
}
