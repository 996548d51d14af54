// Constrained decoding (issue 12): the JSON-schema subset, the refusals, the automaton on hand-written texts, and
// 50 seeded generations each on stories260K and on random-weight tiny models whose output must parse and
// validate whatever the weights.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { readArena } from '../../native/ts/arena.ts';
import { Engine, type GenerateEvent } from '../../native/ts/engine.ts';
import { jsonConstraint, jsonGrammar, validateInstance, validateJsonSchema, VocabIndex, Grammar, compileJsonSchema } from '../../native/ts/grammar/index.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { makeTinyModel } from '../helpers/make-model.ts';
import { rng } from '../../services/simulator/rng.ts';
import { needsData } from '../helpers/requires.ts';

const enc = new TextEncoder();

/** A grammar over a byte vocabulary (id = byte) plus multi-byte tokens, EOS = 256. */
function byteGrammar(schema: Record<string, unknown> | null, extra: string[] = []): Grammar {
  const bytes = [...Array.from({ length: 256 }, (_, i) => Uint8Array.of(i)), new Uint8Array(0), ...extra.map((t) => enc.encode(t))];
  const node = schema ? compileJsonSchema(schema) : compileJsonSchema({ type: 'object' });
  return new Grammar(node, new VocabIndex(bytes, bytes.length), [256]);
}

/** Feeds a text byte by byte (checking each byte is in the mask first); true if it ends complete. */
function feedText(g: Grammar, text: string): 'complete' | 'prefix' | 'rejected' {
  const m = g.matcher();
  const mask = new Uint32Array(g.index.words);
  for (const b of enc.encode(text)) {
    mask.fill(0);
    m.fillMask(mask, 0);
    const allowed = ((mask[b >> 5] >>> (b & 31)) & 1) === 1;
    const ok = m.accept(b);
    assert.equal(allowed, ok, `mask and accept agree on byte ${b} of ${JSON.stringify(text)}`);
    if (!ok) return 'rejected';
  }
  mask.fill(0);
  m.fillMask(mask, 0);
  const eos = ((mask[256 >> 5] >>> (256 & 31)) & 1) === 1;
  assert.equal(eos, m.isComplete());
  return m.isComplete() ? 'complete' : 'prefix';
}

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 12 },
    age: { type: 'integer' },
    score: { type: 'number' },
    role: { enum: ['admin', 'user', 'guest'] },
    active: { type: 'boolean' },
    nick: { type: ['string', 'null'], maxLength: 6 },
    tags: { type: 'array', items: { $ref: '#/$defs/tag' }, minItems: 1, maxItems: 3 },
    home: { type: 'object', properties: { city: { type: 'string', maxLength: 8 }, zip: { const: '0000' } }, required: ['city'], additionalProperties: false },
    pet: { anyOf: [{ type: 'object', properties: { kind: { const: 'cat' }, lives: { type: 'integer' } }, required: ['kind', 'lives'], additionalProperties: false }, { type: 'null' }] },
  },
  required: ['name', 'age', 'role', 'tags', 'pet'],
  additionalProperties: false,
  $defs: { tag: { type: 'string', enum: ['red', 'green', 'blue'] } },
};

describe('JSON schema subset', () => {
  it('accepts the supported subset and refuses the rest, naming each keyword', () => {
    assert.equal(validateJsonSchema(PERSON), null);
    assert.equal(validateJsonSchema({ type: 'object', title: 'x', description: 'y', properties: { a: { type: 'string', description: 'z', default: 'q' } } }), null);
    const msg = validateJsonSchema({ type: 'object', properties: { a: { type: 'string', pattern: '^a', format: 'email' }, n: { type: 'number', minimum: 0 } }, patternProperties: {} });
    assert.ok(msg);
    for (const k of ['#/patternProperties', '#/properties/a/pattern', '#/properties/a/format', '#/properties/n/minimum']) assert.ok(msg.includes(k), `${msg} names ${k}`);
    assert.match(validateJsonSchema({ $ref: '#/$defs/a', $defs: { a: { type: 'object', properties: { b: { $ref: '#/$defs/a' } } } } }) ?? '', /recursive/);
    assert.match(validateJsonSchema({ type: 'object', properties: {}, required: ['x'] }) ?? '', /required property "x"/);
    assert.match(validateJsonSchema({ type: 'object', additionalProperties: { type: 'string' } }) ?? '', /additionalProperties/);
    assert.match(validateJsonSchema('nope') ?? '', /object/);
  });

  it('the automaton accepts valid documents, rejects invalid ones, and allows EOS only when complete', () => {
    const g = byteGrammar(PERSON);
    const good = '{"name": "Ann", "age": -12, "role": "user", "tags": ["red", "blue"], "pet": {"kind": "cat", "lives": 9}}';
    assert.equal(validateInstance(PERSON, JSON.parse(good)).length, 0);
    assert.equal(feedText(g, good), 'complete');
    // Whitespace between tokens is one byte at most (automaton.ts MAX_WS): a newline, not a newline and an indent.
    assert.equal(feedText(g, '{\n"name": "\\u00e9\\n",\n"age": 0,\n"score": 1.5e-3,\n"role": "admin",\n"active": true,\n"nick": null,\n"tags": ["green"],\n"home": {"city": "Oslo", "zip": "0000"},\n"pet": null\n}'), 'complete');
    assert.equal(feedText(g, '{\n  "name": "Ann", "age": 1}'), 'rejected');
    assert.equal(feedText(g, good.slice(0, 40)), 'prefix');
    for (const bad of [
      '{"age": 1}', // a required property skipped
      '{"name": "Ann", "name": "x"}', // repeated
      '{"name": "", "age": 1}', // minLength
      '{"name": "abcdefghijklm"', // maxLength
      '{"name": "A", "age": 1.5', // integer
      '{"name": "A", "age": 01', // leading zero
      '{"name": "A", "age": 1, "role": "root"', // enum
      '{"name": "A", "age": 1, "role": "user", "tags": []', // minItems
      '{"name": "A", "age": 1, "role": "user", "tags": ["red", "red", "red", "red"]', // maxItems
      '{"name": "A", "age": 1, "role": "user", "tags": ["red"], "pet": {"kind": "dog"', // anyOf
      '{"name": "A", "age": 1, "role": "user", "tags": ["red"], "pet": null, "x": 1', // additionalProperties
      '{"name": "A\u0001"', // control character
      ' {', // leading whitespace
      '{' + ' '.repeat(17), // whitespace run past the bound
    ]) assert.equal(feedText(g, bad), 'rejected', bad);
    // Invalid UTF-8 in a string is never produced.
    const m = g.matcher();
    for (const b of enc.encode('{"name": "')) assert.ok(m.accept(b));
    assert.equal(m.accept(0xe9), true, 'a lead byte');
    assert.equal(m.accept(0x22), false, 'a quote inside an unfinished character');
    assert.equal(m.accept(0x41), false, 'ASCII inside an unfinished character');
  });

  it('json_object: any object, nested, bounded depth', () => {
    const g = byteGrammar(null);
    assert.equal(feedText(g, '{"a": [1, {"b": null}, "x", true], "c": {}}'), 'complete');
    assert.equal(feedText(g, '[1]'), 'rejected', 'the top level is an object');
    assert.equal(feedText(g, '{"a": ' + '['.repeat(40)), 'rejected', 'nesting is bounded');
  });

  it('multi-byte tokens are allowed exactly when every byte is', () => {
    const g = byteGrammar({ type: 'object', properties: { a: { type: 'string' } }, required: ['a'], additionalProperties: false }, ['{"a": "', '", ', 'x"}', '"}', 'hello']);
    const m = g.matcher();
    const mask = new Uint32Array(g.index.words);
    const has = (t: number) => ((mask[t >> 5] >>> (t & 31)) & 1) === 1;
    m.fillMask(mask, 0);
    assert.ok(has(257) && !has(258) && !has(259) && !has(261), 'only the opening token fits at the start');
    assert.ok(m.accept(257));
    mask.fill(0); m.fillMask(mask, 0);
    assert.ok(has(261) && has(259) && has(260) && !has(258), 'in the string: text and closers; not ", "');
    assert.ok(m.accept(259));
    assert.ok(m.isTerminated());
  });
});

/** A seeded generator of 32-bit unsigned ints (the simulators' mulberry32, scaled back to integers). */
function prng(seed: number): () => number {
  const r = rng(seed);
  return () => Math.floor(r() * 4294967296);
}

/**
 * Samples a document with `maxTokens` tokens at most, each token drawn uniformly from the budgeted mask (an adversary
 * of the closure: uniform bytes open strings, arrays and keys as often as they can). Returns the text and how it ended.
 */
function sampleBudgeted(g: Grammar, maxTokens: number, seed: number, prefer?: (t: number) => boolean): { text: string; end: 'eos' | 'terminated' | 'length' } {
  const m = g.matcher();
  const mask = new Uint32Array(g.index.words);
  const rnd = prng(seed);
  const out: Uint8Array[] = [];
  for (let n = 0; n < maxTokens; n++) {
    m.fillMask(mask, 0, maxTokens - n);
    const allowed: number[] = [];
    for (let t = 0; t < g.index.V; t++) if ((mask[t >> 5] >>> (t & 31)) & 1) allowed.push(t);
    assert.ok(allowed.length > 0, `a token is always allowed (step ${n} of ${maxTokens})`);
    const pool = prefer && allowed.some(prefer) && rnd() % 4 !== 0 ? allowed.filter(prefer) : allowed;
    const t = pool[rnd() % pool.length];
    assert.ok(m.accept(t), `token ${t} from the mask is accepted`);
    if (g.eosIds.includes(t)) return { text: new TextDecoder().decode(Buffer.concat(out)), end: 'eos' };
    out.push(g.index.bytes[t]);
    if (m.isTerminated()) return { text: new TextDecoder().decode(Buffer.concat(out)), end: 'terminated' };
  }
  assert.equal(m.closingTokens(), 0, 'the budget ran out on a complete document');
  return { text: new TextDecoder().decode(Buffer.concat(out)), end: 'length' };
}

describe('closing within max_tokens (budget-aware masks)', () => {
  const closing = (g: Grammar, text: string | Uint8Array) => {
    const m = g.matcher();
    for (const b of typeof text === 'string' ? enc.encode(text) : text) assert.ok(m.accept(b), `${String(text)} is a valid prefix`);
    return m.closingTokens();
  };

  it('knows the fewest tokens that close the current value', () => {
    const g = byteGrammar(null);
    assert.equal(g.minTokens(), 2, '{} in a byte vocabulary');
    assert.equal(byteGrammar(null, ['{}']).minTokens(), 1, 'one token when the vocabulary has {}');
    for (const [text, n] of [
      ['{', 1], ['{"a": [1, {"b": "xy', 4], ['{"a": [1, {"b": "xy\\', 5], ['{"a": [1, {"b": "\\u00', 6], ['{"a": -', 2],
      ['{"a": 1.', 2], ['{"a": 1e', 2], ['{"a": tr', 3], ['{"a":', 2], ['{"a"', 3], ['{"a" ', 3], ['{"a": 1,', 5], ['{"a": [', 2],
      ['{"a": {}}', 0], ['{"a": "\xc3', 2], [Uint8Array.of(...enc.encode('{"a": "'), 0xe0), 4], [Uint8Array.of(...enc.encode('{"a": "'), 0xf0, 0x90), 4],
    ] as const) assert.equal(closing(g, text), n, String(text));
    const multi = byteGrammar(null, ['"}]}', '}]}']);
    assert.equal(closing(multi, '{"a": [1, {"b": "xy'), 1, 'one token spells "}]}');
    assert.equal(closing(multi, '{"a": [1, {"b": 2'), 1, 'a number ends before }]}');
    // A schema: required properties still to come are part of the closure, optional ones are not.
    const s = byteGrammar(PERSON);
    const minimal = '{"name":"a","age":0,"role":"user","tags":["red"],"pet":null}';
    assert.deepEqual(validateInstance(PERSON, JSON.parse(minimal)), []);
    assert.equal(s.minTokens(), enc.encode(minimal).length);
    assert.equal(closing(s, '{"name": "Ann", "age": 3'), enc.encode(',"role":"user","tags":["red"],"pet":null}').length);
    assert.equal(closing(s, '{"name": "Ann", "age": 3, "score": 1, "role": "guest", "tags": ["green", "b'), enc.encode('lue"],"pet":null}').length);
  });

  it('random walks end complete and parseable at every max_tokens from the minimum up (json_object and a schema)', () => {
    // json_object with a small vocabulary of openers next to the bytes: the walk prefers them, so documents nest.
    const openers = ['{"', '": [', '": {"', '": "', '[[[', '{"x": [{"y": [', '\\u12', 'é'];
    for (const [name, g, schema] of [['json_object', byteGrammar(null, openers), { type: 'object' }], ['PERSON', byteGrammar(PERSON, openers), PERSON]] as const) {
      const prefer = (t: number) => t > 256;
      const min = g.minTokens();
      for (let maxTokens = min; maxTokens < min + 40; maxTokens++) {
        for (let seed = 0; seed < 6; seed++) {
          const r = sampleBudgeted(g, maxTokens, seed * 1000 + maxTokens, prefer);
          let v: unknown;
          assert.doesNotThrow(() => { v = JSON.parse(r.text); }, `${name} max_tokens ${maxTokens} seed ${seed} (${r.end}): ${JSON.stringify(r.text)}`);
          assert.deepEqual(validateInstance(schema, v), [], `${name}: ${r.text}`);
        }
      }
    }
  });

  it('a budget below the minimum still closes as soon as it can (the gateway refuses such a max_tokens first)', () => {
    const g = byteGrammar(PERSON);
    const r = sampleBudgeted(g, g.minTokens() + 200, 3);
    assert.doesNotThrow(() => JSON.parse(r.text), r.text);
    const m = g.matcher();
    const mask = new Uint32Array(g.index.words);
    m.fillMask(mask, 0, 1);
    assert.ok(mask.some((w) => w !== 0), 'an overrun budget still allows the tokens that close soonest');
  });
});

const GEN_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 8 },
    n: { type: 'integer' },
    ok: { type: 'boolean' },
    tags: { type: 'array', items: { enum: ['a', 'b', 'cc'] }, maxItems: 2 },
    sub: { anyOf: [{ type: 'object', properties: { x: { type: 'number' } }, required: ['x'], additionalProperties: false }, { type: 'null' }] },
  },
  required: ['name', 'n', 'sub'],
  additionalProperties: false,
};

async function runMany(engine: Engine, source: ModelSource, tok: Tokenizer, prompt: number[], spec: Parameters<typeof jsonConstraint>[3], runs: number) {
  const schema = spec.type === 'json_schema' ? spec.schema : { type: 'object' };
  const constraint = jsonConstraint(tok, source.config.vocabSize, source.config.eosTokenIds, spec);
  let stops = 0;
  for (let seed = 0; seed < runs; seed++) {
    let text = '';
    let done: Extract<GenerateEvent, { type: 'done' }> | null = null;
    for await (const e of engine.generate({ prompt, maxTokens: 700, temperature: 1, topP: 1, topK: 0, seed, constraint })) {
      if (e.type === 'token') text += e.text; else done = e;
    }
    assert.ok(done);
    // 'length' only when the budget ran out exactly as the document closed (budget-aware masks): complete either way.
    if (done.finishReason !== 'length') stops++;
    let v: unknown;
    assert.doesNotThrow(() => { v = JSON.parse(text); }, `seed ${seed}: ${JSON.stringify(text)}`);
    assert.deepEqual(validateInstance(schema, v), [], `seed ${seed}: ${text}`);
    if (spec.type === 'json_object') assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v));
  }
  return stops;
}

describe('constrained generation: output parses and validates whatever the weights', () => {
  it('stories260K (SentencePiece with byte fallback): 50 seeded runs of a json_schema, 10 of json_object', { skip: needsData() }, async () => {
    const source = await openModel(STORIES260K_GGUF);
    const tok = await loadTokenizer(source);
    const engine = await Engine.createOnHostArena(await readArena(source), source, tok, { maxContext: 1024, maxBatch: 4 });
    try {
      assert.equal(await runMany(engine, source, tok, [1], { type: 'json_schema', schema: GEN_SCHEMA }, 50), 50);
      // json_object has unbounded strings and a story model rarely closes one: the budget closes it by maxTokens.
      await runMany(engine, source, tok, [1], { type: 'json_object' }, 10);
    } finally { await engine.close(); }
  });

  for (const family of ['llama3', 'llama'] as const) {
    it(`random-weight tiny ${family} (${family === 'llama3' ? 'byte-level BPE, tokenizer.json' : 'SentencePiece GGUF'}): 50 seeded runs`, async () => {
      const path = await makeTinyModel({ family, format: family === 'llama3' ? 'hf' : 'gguf', dtype: 'f32', seed: 11 });
      const source = await openModel(path);
      const tok = await loadTokenizer(source);
      const engine = await Engine.createOnHostArena(await readArena(source), source, tok, { maxContext: 1024 });
      try {
        const prompt = [...(tok.bosId !== null ? [tok.bosId] : []), ...tok.encode('Give me JSON:')];
        assert.equal(await runMany(engine, source, tok, prompt, { type: 'json_schema', schema: GEN_SCHEMA }, 50), 50);
        // json_object's strings are unbounded: the budget closes them. 20 seeds at max_tokens 8..27, each a complete
        // object, 'length' only when the budget is spent exactly.
        const constraint = jsonConstraint(tok, source.config.vocabSize, source.config.eosTokenIds, { type: 'json_object' });
        for (let seed = 0; seed < 20; seed++) {
          let text = '';
          let n = 0;
          for await (const e of engine.generate({ prompt, maxTokens: 8 + seed, temperature: 1.5, topP: 1, topK: 0, seed, constraint })) if (e.type === 'token') { text += e.text; n++; }
          assert.ok(n <= 8 + seed, `seed ${seed}: ${n} tokens within max_tokens`);
          let v: unknown;
          assert.doesNotThrow(() => { v = JSON.parse(text); }, `seed ${seed} (max_tokens ${8 + seed}): ${JSON.stringify(text)}`);
          assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `seed ${seed}: an object`);
        }
      } finally { await engine.close(); }
    });
  }

  it('greedy + n: 2 + logprobs under a constraint: every alternative listed is an allowed token', async () => {
    const path = await makeTinyModel({ family: 'llama3', format: 'hf', dtype: 'f32', seed: 12 });
    const source = await openModel(path);
    const tok = await loadTokenizer(source);
    const engine = await Engine.createOnHostArena(await readArena(source), source, tok, { maxContext: 1024 });
    try {
      const g = jsonGrammar(tok, source.config.vocabSize, source.config.eosTokenIds, { type: 'json_schema', schema: GEN_SCHEMA });
      const texts = ['', ''];
      for await (const e of engine.generate({ prompt: tok.encode('x'), maxTokens: 700, temperature: 0, topP: 1, topK: 0, n: 2, logprobs: 3, constraint: () => g.matcher() })) {
        if (e.type !== 'token') { assert.deepEqual(e.finishReasons, ['stop', 'stop']); continue; }
        texts[e.choice] += e.text;
        for (const alt of e.topLogprobs ?? []) assert.ok(Number.isFinite(alt.logprob), 'masked ids are never alternatives');
      }
      assert.equal(texts[0], texts[1], 'greedy choices agree');
      assert.deepEqual(validateInstance(GEN_SCHEMA, JSON.parse(texts[0])), []);
    } finally { await engine.close(); }
  });
});

describe('grammar errors', () => {
  let tok: Tokenizer;
  let source: ModelSource;
  before(async () => {
    source = await openModel(await makeTinyModel({ family: 'llama3', format: 'hf', dtype: 'f32', seed: 13 }));
    tok = await loadTokenizer(source);
  });
  after(() => {});
  it('a schema that accepts nothing is a SchemaError (400 response_format), never output that does not validate', () => {
    for (const [schema, msg] of [
      [{ type: [] }, /type is an empty list/],
      [{ type: 'integer', enum: [1.5] }, /no enum value passes/],
      [{ type: 'string', const: 3 }, /no const value passes/],
      [{ type: 'string', maxLength: 1, enum: ['ab'] }, /no enum value passes/],
    ] as const) {
      assert.throws(() => jsonConstraint(tok, source.config.vocabSize, [], { type: 'json_schema', schema }), msg, JSON.stringify(schema));
    }
  });

  it('enum values that fail the keywords beside them are not generated; the others are', () => {
    const texts = (schema: Record<string, unknown>) => {
      const n = compileJsonSchema(schema);
      assert.equal(n.k, 'lit');
      return (n as Extract<typeof n, { k: 'lit' }>).texts.map((t) => new TextDecoder().decode(t));
    };
    assert.deepEqual(texts({ type: 'string', enum: ['a', 1, 'b', null] }), ['"a"', '"b"']);
    assert.deepEqual(texts({ type: 'string', nullable: true, enum: ['a', null, 2] }), ['"a"', 'null']);
    assert.deepEqual(texts({ type: 'string', maxLength: 2, enum: ['ab', 'abc'] }), ['"ab"']);
    assert.deepEqual(texts({ enum: [1, 'x', null] }), ['1', '"x"', 'null']);
  });

  it('jsonConstraint throws SchemaError naming unsupported keywords', () => {
    assert.throws(() => jsonConstraint(tok, source.config.vocabSize, [], { type: 'json_schema', schema: { type: 'string', format: 'uuid' } }), /#\/format/);
  });
});
